"""score(): batched, cached in the Score table, probabilities over the dataset's labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from annotation.models import Example
from models_bridge.models import Score
from models_bridge.reference import data as ref_data
from models_bridge.services.registry import model_register
from models_bridge.services.scoring import input_hash, score
from tests.models_bridge.conftest import counting, package_dir

pytestmark = pytest.mark.django_db


def register(ds, name):  # type: ignore[no-untyped-def]
    package_dir(name)
    return model_register(dataset=ds, kind="torchscript", location=name)


def test_second_score_of_same_inputs_makes_no_model_call(evqa):
    mv = register(evqa, "easyvqa-additive")
    counter = counting(mv)
    rows = [e.values for e in Example.objects.filter(dataset=evqa)]
    first = score(model_version=mv, inputs=rows, batch_size=5)
    assert counter.calls == 3  # 12 rows in batches of 5
    assert Score.objects.filter(model_version=mv).count() == len(rows)
    second = score(model_version=mv, inputs=rows)
    assert counter.calls == 3
    assert all(r.cached for r in second)
    assert [r.probabilities for r in second] == [r.probabilities for r in first]


def test_duplicate_inputs_in_one_call_are_scored_once(evqa):
    mv = register(evqa, "easyvqa-text-only")
    counter = counting(mv)
    ex = Example.objects.filter(dataset=evqa).first()
    out = score(model_version=mv, inputs=[ex.values, dict(ex.values), ex.values])
    assert counter.rows == 1
    assert out[0] == out[1] == out[2]


def test_text_only_model_hash_ignores_the_image(evqa):
    mv = register(evqa, "easyvqa-text-only")
    a, b = Example.objects.filter(dataset=evqa)[:2]
    assert input_hash(
        mv.modalities, {"text": "is there a circle?", "image": a.values["image"]}
    ) == input_hash(mv.modalities, {"text": "is there a circle?", "image": b.values["image"]})


def test_scores_match_the_module_on_reference_preprocessing(evqa):
    """The loader's preprocessing must reproduce the training pipeline's tensors: compare
    against the module run on tensors built by models_bridge.reference.data."""
    path = package_dir("easyvqa-additive")
    mv = register(evqa, "easyvqa-additive")
    module = torch.jit.load(str(path / "model.pt")).eval()
    import json

    spec = json.loads((path / "model.json").read_text())
    tok = ref_data.Tokenizer.from_spec(spec["preprocessing"]["text"])
    norm = ref_data.ImageNorm(
        tuple(spec["preprocessing"]["image"]["mean"]), tuple(spec["preprocessing"]["image"]["std"])
    )
    import easy_vqa

    texts, _, image_ids = easy_vqa.get_test_questions()
    paths = easy_vqa.get_test_image_paths()
    n = Example.objects.filter(dataset=evqa).count()
    images = torch.from_numpy(
        np.stack([ref_data.read_image(paths[image_ids[i]]) for i in range(n)])
    )
    with torch.no_grad():
        logits = module({"text": tok.encode(texts[:n]), "image": norm.apply(images)}).numpy()
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    rows = [e.values for e in Example.objects.filter(dataset=evqa).order_by("id")]
    got = score(model_version=mv, inputs=rows)
    for i, r in enumerate(got):
        probs = np.array([r.probabilities[label] for label in spec["labels"]])
        np.testing.assert_allclose(probs, expected[i], rtol=1e-4, atol=1e-6)
        assert r.predicted_label == spec["labels"][int(np.argmax(expected[i]))]
