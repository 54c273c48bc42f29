"""The committed reference easy-VQA packages (fixtures/models/) honour their contract.

Plain pytest; no Django settings or database. Inputs are built here from model.json with
an independent implementation of the "counterpoint-torchscript/1" preprocessing spec, so
these tests also pin down what the loader has to do.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import easy_vqa
import numpy as np
import pytest
import torch
from PIL import Image

from models_bridge.reference import data as ref_data

MODELS_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "models"
NAMES = [
    "easyvqa-text-only",
    "easyvqa-image-only",
    "easyvqa-additive",
    "easyvqa-multiplicative",
    "easyvqa-cross-attention",
    "easyvqa-cross-attention-4h",
]
FUSION = [
    "easyvqa-additive",
    "easyvqa-multiplicative",
    "easyvqa-cross-attention",
    "easyvqa-cross-attention-4h",
]
HEADS = "easyvqa-cross-attention-4h"  # easyvqa-cross-attention@2
BASE_EXPORTS = {"forward", "encode_text", "encode_image", "fuse"}
HEAD_EXPORTS = {"attention", "attention_heads", "fuse_with_head_mask", "forward_with_head_mask"}
SUBSET_SIZE = 500
SHAPES = {"circle", "rectangle", "triangle"}

# TorchScript is the package format (docs/models.md); its deprecation notice is noise here.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


@cache
def meta(name: str) -> dict[str, Any]:
    return json.loads((MODELS_DIR / name / "model.json").read_text())


@cache
def module(name: str) -> torch.jit.ScriptModule:
    m = torch.jit.load(str(MODELS_DIR / name / "model.pt"))
    m.eval()
    return m


def qtype(answer: str) -> str:
    if answer in ("yes", "no"):
        return "yes_no"
    return "shape" if answer in SHAPES else "colour"


# -- spec implementation (what a loader does with model.json) --------------------------


def spec_tokens(texts: list[str], spec: dict[str, Any]) -> torch.Tensor:
    index = {w: i for i, w in enumerate(spec["vocab"])}
    rows = []
    for text in texts:
        words = re.findall(spec["token_pattern"], text.lower() if spec["lowercase"] else text)
        assert len(words) <= spec["max_length"], text
        ids = [index.get(w, spec["unk_id"]) for w in words]
        rows.append(ids + [spec["pad_id"]] * (spec["max_length"] - len(ids)))
    return torch.tensor(rows, dtype=torch.long)


def spec_images(paths: list[str], spec: dict[str, Any]) -> torch.Tensor:
    size = tuple(spec["size"])
    out = []
    for path in paths:
        with Image.open(path) as im:
            im = im.convert(spec["mode"])
            if im.size != size:
                im = im.resize(size, Image.Resampling.BILINEAR)
            x = np.asarray(im, dtype=np.float32) / 255.0
        x = (x - np.asarray(spec["mean"], dtype=np.float32)) / np.asarray(
            spec["std"], dtype=np.float32
        )
        out.append(torch.from_numpy(x.transpose(2, 0, 1).copy()))
    return torch.stack(out)


def spec_inputs(name: str, texts: list[str], paths: list[str]) -> dict[str, torch.Tensor]:
    pre = meta(name)["preprocessing"]
    inputs: dict[str, torch.Tensor] = {}
    if "text" in meta(name)["modalities"]:
        inputs["text"] = spec_tokens(texts, pre["text"])
    if "image" in meta(name)["modalities"]:
        inputs["image"] = spec_images(paths, pre["image"])
    return inputs


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def subset() -> dict[str, list]:
    """A fixed random 500-question subset of the easy-VQA test split."""
    texts, answers, image_ids = easy_vqa.get_test_questions()
    paths = easy_vqa.get_test_image_paths()
    picked = sorted(random.Random(0).sample(range(len(texts)), SUBSET_SIZE))
    return {
        "index": picked,
        "texts": [texts[i] for i in picked],
        "answers": [answers[i] for i in picked],
        "paths": [paths[image_ids[i]] for i in picked],
    }


@pytest.fixture(scope="module")
def predictions(subset: dict[str, list]) -> dict[str, list[str]]:
    preds = {}
    with torch.inference_mode():
        for name in NAMES:
            logits = module(name)(spec_inputs(name, subset["texts"], subset["paths"]))
            assert logits.shape == (SUBSET_SIZE, len(meta(name)["labels"]))
            preds[name] = [meta(name)["labels"][i] for i in logits.argmax(dim=1).tolist()]
    return preds


@pytest.fixture(scope="module")
def training_data() -> ref_data.EasyVQA:
    return ref_data.load_easy_vqa()


def accuracy(preds: list[str], answers: list[str], only: str | None = None) -> float:
    pairs = [(p, a) for p, a in zip(preds, answers, strict=True) if only in (None, qtype(a))]
    return sum(p == a for p, a in pairs) / len(pairs)


# -- package contents -------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_package_metadata_and_exports(name: str) -> None:
    m = meta(name)
    assert m["format"] == "counterpoint-torchscript/1"
    assert m["name"] == ("easyvqa-cross-attention" if name == HEADS else name)
    assert m["labels"] == list(easy_vqa.get_answers())
    assert m["factorized"] is True
    expected = BASE_EXPORTS | {
        "easyvqa-cross-attention": {"attention"},
        HEADS: HEAD_EXPORTS,
    }.get(name, set())
    assert set(m["exports"]) == expected
    scripted = module(name)
    for export in m["exports"]:
        assert hasattr(scripted, export), export
    assert set(m["preprocessing"]) == set(m["modalities"])
    for key in ("seed", "epochs", "train_examples", "seconds"):
        assert key in m["training"]
    for key in ("", "_yes_no", "_colour", "_shape"):
        assert 0.0 <= m["metrics"][f"test_accuracy{key}"] <= 1.0
    for f in ("model.json", "model.pt"):
        assert (MODELS_DIR / name / f).stat().st_size < 5 * 1024 * 1024


def test_modalities() -> None:
    assert meta("easyvqa-text-only")["modalities"] == ["text"]
    assert meta("easyvqa-image-only")["modalities"] == ["image"]
    for name in FUSION:
        assert sorted(meta(name)["modalities"]) == ["image", "text"]


@pytest.mark.parametrize("name", NAMES)
def test_forward_equals_fuse_of_encodings(name: str, subset: dict[str, list]) -> None:
    texts, paths = subset["texts"][:16], subset["paths"][:16]
    inputs = spec_inputs(name, texts, paths)
    # Both keys are always supplied to the encoders: a unimodal model must ignore
    # the other modality and return a (B, 0) encoding for it.
    tokens = spec_tokens(texts, meta("easyvqa-multiplicative")["preprocessing"]["text"])
    images = spec_images(paths, meta("easyvqa-multiplicative")["preprocessing"]["image"])
    m = module(name)
    with torch.inference_mode():
        enc = {"text": m.encode_text(tokens), "image": m.encode_image(images)}
        assert enc["text"].shape[0] == enc["image"].shape[0] == 16
        if name == "easyvqa-text-only":
            assert enc["image"].shape == (16, 0)
        if name == "easyvqa-image-only":
            assert enc["text"].shape == (16, 0)
        torch.testing.assert_close(m.fuse(enc), m(inputs), atol=1e-5, rtol=1e-5)


# -- accuracy bounds from the issue ----------------------------------------------------


@pytest.mark.parametrize(
    "name", ["easyvqa-multiplicative", "easyvqa-cross-attention", "easyvqa-cross-attention-4h"]
)
def test_interaction_models_solve_the_task(
    name: str, subset: dict[str, list], predictions: dict[str, list[str]]
) -> None:
    assert accuracy(predictions[name], subset["answers"]) > 0.95


def test_text_only_matches_the_language_prior(
    subset: dict[str, list], predictions: dict[str, list[str]]
) -> None:
    # The prior: the most frequent training answer for each exact question text.
    train_texts, train_answers, _ = easy_vqa.get_train_questions()
    by_text: dict[str, Counter[str]] = {}
    for text, answer in zip(train_texts, train_answers, strict=True):
        by_text.setdefault(text, Counter())[answer] += 1
    prior = [by_text[t].most_common(1)[0][0] for t in subset["texts"]]
    answers = subset["answers"]
    prior_yes_no = accuracy(prior, answers, "yes_no")
    text_yes_no = accuracy(predictions["easyvqa-text-only"], answers, "yes_no")
    assert abs(text_yes_no - prior_yes_no) <= 0.03
    # Without the image it cannot name the colour or shape much better than chance
    # given the question (3 shapes, 8 colours).
    assert accuracy(predictions["easyvqa-text-only"], answers, "shape") < 0.6
    assert accuracy(predictions["easyvqa-text-only"], answers, "colour") < 0.4


def test_image_only_cannot_answer_yes_no(
    subset: dict[str, list], predictions: dict[str, list[str]]
) -> None:
    preds, answers = predictions["easyvqa-image-only"], subset["answers"]
    # Without the question, whether the answer is "yes" or "no" is a coin flip: each
    # image is asked about present and absent properties alike.
    assert accuracy(preds, answers, "yes_no") < 0.6


def test_additive_is_clearly_worse_on_yes_no(
    subset: dict[str, list], predictions: dict[str, list[str]]
) -> None:
    answers = subset["answers"]
    additive = accuracy(predictions["easyvqa-additive"], answers, "yes_no")
    for name in ("easyvqa-multiplicative", "easyvqa-cross-attention", HEADS):
        assert additive < accuracy(predictions[name], answers, "yes_no") - 0.05
    # Colour and shape questions need no interaction (the question type is a text
    # bias, the value an image bias), so additive fusion does fine there.
    for qt in ("colour", "shape"):
        assert accuracy(predictions["easyvqa-additive"], answers, qt) > 0.9


# -- structural properties --------------------------------------------------------------


def test_additive_is_exactly_additive(subset: dict[str, list]) -> None:
    name = "easyvqa-additive"
    m = module(name)
    texts, paths = subset["texts"][:5], subset["paths"][-4:]
    pre = meta(name)["preprocessing"]
    tokens, images = spec_tokens(texts, pre["text"]), spec_images(paths, pre["image"])
    with torch.inference_mode():
        g, h = m.encode_text(tokens), m.encode_image(images)
        assert g.shape == (5, 13) and h.shape == (4, 13)
        pairs_t = tokens.repeat_interleave(4, dim=0)
        pairs_v = images.repeat(5, 1, 1, 1)
        # fuse is the bare sum of the head logits...
        assert torch.equal(
            m.fuse({"text": g.repeat_interleave(4, dim=0), "image": h.repeat(5, 1)}),
            g.repeat_interleave(4, dim=0) + h.repeat(5, 1),
        )
        # ...and the full model on every (t_i, v_j) pair is g(t_i) + h(v_j).
        f = m({"text": pairs_t, "image": pairs_v}).view(5, 4, 13)
    torch.testing.assert_close(f, g[:, None, :] + h[None, :, :], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["easyvqa-cross-attention", HEADS])
def test_cross_attention_weights(subset: dict[str, list], name: str) -> None:
    m, layout = module(name), meta(name)["encoding_layout"]
    pre = meta(name)["preprocessing"]
    inputs = spec_inputs(name, subset["texts"][:8], subset["paths"][:8])
    with torch.inference_mode():
        attn = m.attention(inputs)
        enc_t, enc_v = m.encode_text(inputs["text"]), m.encode_image(inputs["image"])
    regions = layout["image"]["shape"][0]
    assert attn.shape == (8, pre["text"]["max_length"], regions)
    assert regions == 64
    assert (attn >= 0).all()
    torch.testing.assert_close(attn.sum(dim=-1), torch.ones(8, attn.shape[1]), atol=1e-5, rtol=0)
    # The documented encoding layout matches what the encoders return.
    assert enc_t.shape == (8, layout["text"]["flattened"])
    assert enc_v.shape == (8, layout["image"]["flattened"])
    tok = enc_t.view(8, *layout["text"]["shape"])
    mask = tok[:, :, layout["text"]["mask_channel"]]
    assert torch.equal(mask, (inputs["text"] != pre["text"]["pad_id"]).float())
    if name != HEADS:
        assert "heads" not in meta(name)
        return
    # Per head: (B, heads, L, R), each row a softmax; `attention` is their mean.
    heads = meta(name)["heads"]["count"]
    with torch.inference_mode():
        per_head = m.attention_heads(inputs)
    assert heads == 4
    assert per_head.shape == (8, heads, attn.shape[1], regions)
    torch.testing.assert_close(per_head.sum(dim=-1), torch.ones(8, heads, attn.shape[1]))
    torch.testing.assert_close(per_head.mean(dim=1), attn, atol=1e-6, rtol=0)


# -- the head mask ----------------------------------------------------------------------


def eager_cross_attention() -> torch.nn.Module:
    """The eager network with the package's weights (for editing one head's parameters)."""
    from models_bridge.reference import nets

    name = HEADS
    pre = meta(name)["preprocessing"]["text"]
    net = nets.build(
        "easyvqa-cross-attention",
        len(pre["vocab"]),
        pre["max_length"],
        len(meta(name)["labels"]),
        heads=meta(name)["heads"]["count"],
    )
    net.load_state_dict(module(name).state_dict())
    return net.eval()


def test_head_mask_with_every_head_on_is_the_plain_model(subset: dict[str, list]) -> None:
    name = HEADS
    m = module(name)
    heads = meta(name)["heads"]["count"]
    inputs = spec_inputs(name, subset["texts"][:16], subset["paths"][:16])
    with torch.inference_mode():
        enc = {"text": m.encode_text(inputs["text"]), "image": m.encode_image(inputs["image"])}
        plain = m(inputs)
        assert torch.equal(m.fuse_with_head_mask(enc, torch.ones(heads)), m.fuse(enc))
        assert torch.equal(m.forward_with_head_mask(inputs, torch.ones(heads)), plain)
        per_example = m.forward_with_head_mask(inputs, torch.ones(16, heads))
    assert torch.equal(per_example, plain)


@pytest.mark.parametrize("head", range(4))
def test_a_masked_head_contributes_nothing(subset: dict[str, list], head: int) -> None:
    """Masking head h gives exactly the network whose head h reads zero values, and nothing
    head h computes (its queries, keys, values) can move the masked logits."""
    name = HEADS
    inputs = spec_inputs(name, subset["texts"][:16], subset["paths"][:16])
    net = eager_cross_attention()
    heads, hd = net.heads, net.head_dim
    mask = torch.ones(heads)
    mask[head] = 0.0
    rows = slice(head * hd, (head + 1) * hd)
    with torch.no_grad():
        masked = net.forward_with_head_mask(inputs, mask)
        silenced = eager_cross_attention()
        silenced.value.weight[rows] = 0.0
        silenced.value.bias[rows] = 0.0
        assert torch.equal(silenced(inputs), masked)
        scrambled = eager_cross_attention()
        gen = torch.Generator().manual_seed(head)
        for lin in (scrambled.query, scrambled.key, scrambled.value):
            lin.weight[rows] = torch.randn(lin.weight[rows].shape, generator=gen)
            lin.bias[rows] = torch.randn(lin.bias[rows].shape, generator=gen)
        assert torch.equal(scrambled.forward_with_head_mask(inputs, mask), masked)
        # ...while the unmasked model does depend on that head.
        assert not torch.equal(scrambled(inputs), net(inputs))
        # The scripted package masks the same way (to float tolerance: another executor).
        torch.testing.assert_close(
            module(name).forward_with_head_mask(inputs, mask), masked, atol=1e-5, rtol=0
        )
        # A per-example (B, heads) mask masks each row by its own entry.
        mixed = torch.ones(16, heads)
        mixed[::2, head] = 0.0
        out = net.forward_with_head_mask(inputs, mixed)
    torch.testing.assert_close(out[::2], masked[::2], atol=1e-6, rtol=0)
    torch.testing.assert_close(out[1::2], net(inputs)[1::2], atol=1e-6, rtol=0)


# -- preprocessing reproduces training -----------------------------------------------


@pytest.mark.parametrize("name", [n for n in NAMES if n != "easyvqa-image-only"])
def test_tokenizer_reproduces_training_ids(name: str, training_data: ref_data.EasyVQA) -> None:
    spec = meta(name)["preprocessing"]["text"]
    assert spec["vocab"][spec["pad_id"]] == "<pad>"
    assert spec["vocab"][spec["unk_id"]] == "<unk>"
    # Room above the longest easy-VQA question, so the loader never has to truncate.
    train_texts = training_data.train.texts
    longest = max(len(re.findall(spec["token_pattern"], t.lower())) for t in train_texts)
    assert spec["max_length"] > longest
    assert torch.equal(spec_tokens(train_texts, spec), training_data.train.tokens)
    assert torch.equal(spec_tokens(training_data.test.texts, spec), training_data.test.tokens)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "easyvqa-text-only"])
def test_image_preprocessing_reproduces_training(
    name: str, subset: dict[str, list], training_data: ref_data.EasyVQA
) -> None:
    spec = meta(name)["preprocessing"]["image"]
    rows = training_data.test.image_rows[subset["index"][:32]]
    trained = training_data.norm.apply(training_data.test.images[rows])
    torch.testing.assert_close(spec_images(subset["paths"][:32], spec), trained, atol=1e-6, rtol=0)
