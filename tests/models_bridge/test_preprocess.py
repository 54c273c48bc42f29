"""Preprocessing from model.json, checked against the training pipeline's own
implementation (models_bridge.reference.data) and against exact properties."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from models_bridge.preprocess import (
    ImagePreprocessor,
    ImageValue,
    InputError,
    SpecError,
    TabularPreprocessor,
    TextPreprocessor,
    preprocessor_from_spec,
    softmax,
)
from models_bridge.reference import data as ref_data
from tests.models_bridge.conftest import package_dir

SPEC = {"kind": "text", "vocab": ["<pad>", "<unk>", "is", "there", "a", "circle"], "max_length": 6}


def test_tokenizer_pads_lowercases_and_marks_unknown_words():
    t = TextPreprocessor.from_spec(SPEC)
    assert t.ids("Is there a CIRCLE?") == [2, 3, 4, 5, 0, 0]
    assert t.ids("is there a hexagon") == [2, 3, 4, 1, 0, 0]
    assert t.ids("") == [0] * 6
    assert t(["a", "is a"]).dtype == np.int64


def test_more_tokens_than_max_length_is_an_error_never_a_truncation():
    t = TextPreprocessor.from_spec(SPEC)
    assert t.ids("a a a a a a") == [4] * 6
    with pytest.raises(InputError) as exc:
        t.ids("a a a a a a a")
    assert exc.value.code == "text_too_long"


def test_text_matches_the_training_tokenizer():
    spec = json.loads((package_dir("easyvqa-text-only") / "model.json").read_text())[
        "preprocessing"
    ]["text"]
    ours = TextPreprocessor.from_spec(spec)
    theirs = ref_data.Tokenizer.from_spec(spec)
    import easy_vqa

    texts = [*easy_vqa.get_test_questions()[0][:300], "What is THE colour of the hexagon?", ""]
    np.testing.assert_array_equal(ours(texts), theirs.encode(texts).numpy())


def test_image_matches_the_training_pipeline():
    spec = json.loads((package_dir("easyvqa-image-only") / "model.json").read_text())[
        "preprocessing"
    ]["image"]
    import easy_vqa

    paths = list(easy_vqa.get_test_image_paths().values())[:5]
    ours = ImagePreprocessor.from_spec(spec)(
        [ImageValue(sha256=str(i), path=p) for i, p in enumerate(paths)]
    )
    norm = ref_data.ImageNorm(tuple(spec["mean"]), tuple(spec["std"]))
    import torch

    theirs = norm.apply(torch.from_numpy(np.stack([ref_data.read_image(p) for p in paths]))).numpy()
    np.testing.assert_array_equal(ours, theirs)


def test_image_is_resized_and_normalised():
    pre = ImagePreprocessor.from_spec(
        {"kind": "image", "size": [4, 2], "mean": [0.5] * 3, "std": [0.5] * 3}
    )
    buf = io.BytesIO()
    Image.new("RGB", (8, 4), (255, 0, 255)).save(buf, format="PNG")
    out = pre([buf.getvalue()])
    assert out.shape == (1, 3, 2, 4) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0, 0], 1.0)
    np.testing.assert_array_equal(out[0, 1], -1.0)


def test_undecodable_image():
    pre = ImagePreprocessor.from_spec({"kind": "image", "size": [4, 4]})
    with pytest.raises(InputError) as exc:
        pre([b"\x89PNG\r\n\x1a\nnot really"])
    assert exc.value.code == "image_undecodable"


def test_tabular():
    pre = TabularPreprocessor.from_spec(
        {"kind": "tabular", "features": ["a", "b"], "mean": [1, 1], "std": [2, 2]}
    )
    np.testing.assert_array_equal(pre([{"b": 5, "a": 3}]), [[1.0, 2.0]])
    with pytest.raises(InputError) as exc:
        pre([{"a": 1}])
    assert exc.value.code == "tabular_feature_missing"


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "video"},
        {"kind": "text", "vocab": [], "max_length": 3},
        {"kind": "text", "vocab": ["a"], "max_length": 0},
        {"kind": "image", "size": [64]},
        {"kind": "image", "size": [64, 64], "std": [0, 1, 1]},
    ],
)
def test_bad_specs(spec):
    with pytest.raises(SpecError):
        preprocessor_from_spec(spec, "m")


def test_softmax_rows_sum_to_one_and_keep_order():
    p = softmax(np.array([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]]))
    np.testing.assert_allclose(p.sum(1), 1.0)
    np.testing.assert_allclose(p[1], 1 / 3)
    assert p[0].argmax() == 0
