"""Perturbation ladders (annotation/perturbations.py, docs/perturbation.md): determinism from
(value, perturbation, level, seed, key), identity at the first rung, an effect that grows with
the level on every rung of the default ladder, and valid values (PNG of the same size)."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
from PIL import Image, ImageDraw

from annotation import perturbations as pt
from annotation.minimality import decode_rgb, tokenize
from annotation.services.media import check_image_bytes

IMAGE_NAMES = [p.name for p in pt.PERTURBATIONS.values() if p.kind == "image"]
TEXT_NAMES = [p.name for p in pt.PERTURBATIONS.values() if p.kind == "text"]
SENTENCE = "what colour is the large circle in the middle of the picture , and is it blue ?"


def photo(width: int = 64, height: int = 48) -> bytes:
    """Shapes on a gradient: edges for blur and pixelation to smear, mid-tones for noise."""
    x = np.linspace(30, 220, width, dtype=np.float32)
    base = np.stack([np.tile(x, (height, 1))] * 3, axis=2).astype(np.uint8)
    img = Image.fromarray(base, mode="RGB")
    draw = ImageDraw.Draw(img)
    draw.ellipse((8, 8, 30, 30), fill=(200, 30, 40))
    draw.rectangle((36, 20, 58, 44), fill=(20, 90, 210))
    for i in range(0, width, 4):
        draw.line((i, 0, i, 5), fill=(0, 0, 0))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def mean_abs_change(a: bytes, b: bytes) -> float:
    return float(np.abs(decode_rgb(a).astype(int) - decode_rgb(b).astype(int)).mean())


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_image_ladder_is_deterministic_valid_and_monotone(name: str) -> None:
    original = photo()
    p = pt.perturbation_get(name)
    ladder = pt.check_ladder(p, list(p.default_ladder))
    outs = [pt.perturb_image(original, name=name, level=lv, seed=7, key="ex1") for lv in ladder]
    # Identity at the first rung: the same pixels.
    assert np.array_equal(decode_rgb(outs[0]), decode_rgb(original))
    for level, out in zip(ladder, outs, strict=True):
        checked = check_image_bytes(out)
        assert checked.mime_type == "image/png"
        assert (checked.width, checked.height) == (64, 48)
        assert out == pt.perturb_image(original, name=name, level=level, seed=7, key="ex1")
    changes = [mean_abs_change(original, out) for out in outs]
    assert changes[0] == 0
    assert all(b > a for a, b in itertools.pairwise(changes)), changes


@pytest.mark.parametrize("name", ["gaussian_noise", "occlusion"])
def test_image_randomness_depends_on_seed_and_example(name: str) -> None:
    original = photo()
    a = pt.perturb_image(original, name=name, level=0.4, seed=1, key="ex1")
    assert a != pt.perturb_image(original, name=name, level=0.4, seed=2, key="ex1")
    assert a != pt.perturb_image(original, name=name, level=0.4, seed=1, key="ex2")


def test_occlusion_rungs_are_nested_and_cover_the_fraction() -> None:
    original = photo(64, 64)
    masks = []
    for level in (0.25, 0.5):
        out = decode_rgb(pt.perturb_image(original, name="occlusion", level=level, seed=3, key="k"))
        grey = np.all(out == 127, axis=2)
        masks.append(grey)
        assert grey.mean() == pytest.approx(level, abs=1 / 64)
    assert np.all(masks[1][masks[0]])


def test_gaussian_noise_scales_one_noise_field() -> None:
    flat = Image.new("RGB", (32, 32), (128, 128, 128))
    buf = io.BytesIO()
    flat.save(buf, format="PNG")
    lo = decode_rgb(
        pt.perturb_image(buf.getvalue(), name="gaussian_noise", level=0.05, seed=0, key="k")
    )
    hi = decode_rgb(
        pt.perturb_image(buf.getvalue(), name="gaussian_noise", level=0.1, seed=0, key="k")
    )
    d_lo, d_hi = lo.astype(int) - 128, hi.astype(int) - 128
    # Same signs, about twice the size (rounding aside): the same draws, scaled.
    assert np.all(np.sign(d_lo[d_lo != 0]) == np.sign(d_hi[d_lo != 0]))
    assert np.abs(d_hi).std() / np.abs(d_lo).std() == pytest.approx(2.0, rel=0.05)
    assert d_hi.std() == pytest.approx(0.1 * 255, rel=0.05)


@pytest.mark.parametrize("name", TEXT_NAMES)
def test_text_ladder_is_deterministic_and_monotone(name: str) -> None:
    p = pt.perturbation_get(name)
    outs = [
        pt.perturb_text(SENTENCE, name=name, level=lv, seed=5, key="ex") for lv in p.default_ladder
    ]
    assert outs[0] == SENTENCE
    assert outs == [
        pt.perturb_text(SENTENCE, name=name, level=lv, seed=5, key="ex") for lv in p.default_ladder
    ]
    words = SENTENCE.split()
    if name == "word_dropout":
        effect = [len(words) - len(o.split()) for o in outs]
        # Nested: every surviving word at a higher rate survived at the lower one.
        for a, b in itertools.pairwise(outs):
            kept_a = a.split()
            it = iter(kept_a)
            assert all(w in it for w in b.split())
    elif name == "word_shuffle":
        effect = [sum(x != y for x, y in zip(words, o.split(), strict=True)) for o in outs]
        assert all(sorted(o.split()) == sorted(words) for o in outs)
    else:
        effect = [sum(x != y for x, y in zip(SENTENCE, o, strict=True)) for o in outs]
        assert all(len(o) == len(SENTENCE) for o in outs)
        assert all(o.count(" ") == SENTENCE.count(" ") for o in outs)
    assert effect[0] == 0
    assert all(b > a for a, b in itertools.pairwise(effect)), effect


def test_word_dropout_at_rate_one_leaves_nothing_and_tokens_stay_words() -> None:
    assert pt.perturb_text(SENTENCE, name="word_dropout", level=1.0, seed=0, key="k") == ""
    noisy = pt.perturb_text(SENTENCE, name="char_noise", level=0.5, seed=0, key="k")
    assert len(tokenize(noisy)) >= 1


def test_tabular_noise_moves_numeric_features_in_mad_units() -> None:
    row = {"age": 40, "income": "52000", "city": "Leeds", "flat": 3}
    mad = {"age": 10.0, "income": 8000.0, "city": None, "flat": 0.0}
    outs = [
        pt.perturb_tabular(row, name="feature_noise", level=lv, seed=1, key="r", mad=mad)
        for lv in (0.0, 0.5, 1.0, 2.0)
    ]
    assert outs[0] == row
    assert all(o["city"] == "Leeds" and o["flat"] == 3 for o in outs)  # no usable MAD: untouched
    # The same draw z per feature: the move in MADs is level · z.
    z_age = (outs[1]["age"] - 40) / 10.0 / 0.5
    for level, out in zip((0.5, 1.0, 2.0), outs[1:], strict=True):
        assert (out["age"] - 40) / 10.0 == pytest.approx(level * z_age, abs=1e-5)
    scaled = [abs(o["age"] - 40) / 10 + abs(float(o["income"]) - 52000) / 8000 for o in outs]
    assert all(b > a for a, b in itertools.pairwise(scaled))
    shuffled = dict(reversed(list(row.items())))
    assert (
        pt.perturb_tabular(shuffled, name="feature_noise", level=1.0, seed=1, key="r", mad=mad)
        == outs[2]
    )


@pytest.mark.parametrize(
    ("name", "levels"),
    [
        ("gaussian_noise", [0.1, 0.2]),  # first rung not the identity
        ("gaussian_noise", [0.0]),  # one rung
        ("blur", [0.0, 2.0, 1.0]),  # not increasing
        ("occlusion", [0.0, 1.5]),  # past the maximum
        ("pixelation", [0.0, 2.0]),  # pixelation's identity is a block of 1
        ("word_dropout", [0.0, "a"]),
        ("word_dropout", [0.0, float("nan")]),
    ],
)
def test_bad_ladders_are_refused_with_a_code(name: str, levels: list[object]) -> None:
    with pytest.raises(pt.PerturbationError) as err:
        pt.check_ladder(pt.perturbation_get(name), levels)
    assert err.value.code == "perturbation_ladder_invalid"


def test_unknown_or_mismatched_perturbation_is_refused() -> None:
    with pytest.raises(pt.PerturbationError) as err:
        pt.perturbation_get("melt")
    assert err.value.code == "perturbation_unknown"
    with pytest.raises(pt.PerturbationError) as err:
        pt.perturb_text("a b", name="blur", level=1.0, seed=0, key="k")
    assert err.value.code == "perturbation_kind"


def test_every_default_ladder_is_valid() -> None:
    for p in pt.PERTURBATIONS.values():
        assert pt.check_ladder(p, list(p.default_ladder))[0] == p.identity


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_a_whole_ladder_at_once_is_the_same_bytes(name: str) -> None:
    original = photo()
    ladder = list(pt.perturbation_get(name).default_ladder)
    at_once = pt.perturb_image_levels(original, name=name, levels=ladder, seed=4, key="k")
    assert at_once == [
        pt.perturb_image(original, name=name, level=lv, seed=4, key="k") for lv in ladder
    ]
