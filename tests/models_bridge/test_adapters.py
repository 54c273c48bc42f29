"""TorchScript package and Python entry point adapters (no database)."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from models_bridge.adapters.base import Batch, ImageValue, ModelError, NotFactorized
from models_bridge.adapters.entrypoint import EntryPointAdapter, parse_entrypoint
from models_bridge.adapters.package import PackageError, read_package
from models_bridge.adapters.torchscript import TorchScriptAdapter
from tests.models_bridge.conftest import package_dir


def evqa_rows(n: int = 6) -> list[dict]:
    import easy_vqa

    texts, _, image_ids = easy_vqa.get_test_questions()
    paths = easy_vqa.get_test_image_paths()
    rows = []
    for i in range(n):
        data = Path(paths[image_ids[i]]).read_bytes()
        import hashlib

        rows.append(
            {
                "text": texts[i],
                "image": ImageValue(sha256=hashlib.sha256(data).hexdigest(), data=data),
            }
        )
    return rows


def zip_package(src: Path, dest: Path, *, folder: str = "") -> Path:
    with zipfile.ZipFile(dest, "w") as zf:
        for name in ("model.json", "model.pt"):
            zf.write(src / name, f"{folder}{name}")
    return dest


def test_folder_and_zip_are_the_same_package(tmp_path):
    src = package_dir("easyvqa-text-only")
    folder = read_package(src)
    zipped = read_package(zip_package(src, tmp_path / "p.zip"))
    nested = read_package(zip_package(src, tmp_path / "q.zip", folder="pkg/"))
    assert folder.sha256 == zipped.sha256 == nested.sha256
    a = TorchScriptAdapter.from_package(zipped)
    batch = Batch.from_rows(evqa_rows(), ["text"])
    np.testing.assert_array_equal(
        a.predict(batch), TorchScriptAdapter.from_package(folder).predict(batch)
    )


def test_factorized_interface_reproduces_forward():
    """fuse(encode_text, encode_image) is forward, exposed for fast EMAP."""
    a = TorchScriptAdapter.load(package_dir("easyvqa-additive"))
    rows = evqa_rows()
    batch = Batch.from_rows(rows, ["image", "text"])
    enc = {m: a.encode(m, [r[m] for r in rows]) for m in ("text", "image")}
    assert enc["text"].shape[0] == enc["image"].shape[0] == len(rows)
    np.testing.assert_allclose(a.fuse(enc).numpy(), a.predict(batch), rtol=1e-5, atol=1e-5)
    # Additive: swapping images between examples changes logits by exactly the image term.
    swapped = {"text": enc["text"], "image": enc["image"].flip(0)}
    np.testing.assert_allclose(
        a.fuse(swapped).numpy() - a.fuse(enc).numpy(),
        (enc["image"].flip(0) - enc["image"]).numpy(),
        rtol=1e-5,
        atol=1e-5,
    )


def test_attention_export_of_cross_attention():
    a = TorchScriptAdapter.load(package_dir("easyvqa-cross-attention"))
    batch = Batch.from_rows(evqa_rows(3), ["image", "text"])
    att = a.attention(batch)
    length = a.manifest.preprocessing["text"]["max_length"]
    assert att.shape[:2] == (3, length)
    np.testing.assert_allclose(att.sum(-1), 1.0, rtol=1e-5)


def test_encode_of_a_modality_the_model_does_not_read():
    a = TorchScriptAdapter.load(package_dir("easyvqa-text-only"))
    with pytest.raises(NotFactorized):
        a.encode("image", [b""])
    with pytest.raises(NotFactorized):
        a.attention(Batch.from_rows(evqa_rows(1), ["text"]))


def test_module_runs_in_eval_mode():
    a = TorchScriptAdapter.load(package_dir("easyvqa-image-only"))
    assert not a.module.training
    batch = Batch.from_rows(evqa_rows(4), ["image"])
    np.testing.assert_array_equal(a.predict(batch), a.predict(batch))


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda d: (d / "model.pt").unlink(), "package_layout"),
        (lambda d: (d / "model.json").write_text("{not json"), "manifest_invalid"),
        (lambda d: _edit(d, format="other/1"), "manifest_format"),
        (lambda d: _edit(d, labels=[]), "manifest_invalid"),
        (lambda d: _edit(d, modalities=["text", "audio"]), "manifest_invalid"),
        (lambda d: _edit(d, exports=["forward", "encode_text"]), "manifest_invalid"),
        # a head mask without heads.count
        (
            lambda d: _edit(
                d, exports=["forward", "encode_text", "encode_image", "fuse", "fuse_with_head_mask"]
            ),
            "manifest_invalid",
        ),
    ],
)
def test_bad_packages_are_refused_with_a_named_rule(tmp_path, mutate, code):
    d = tmp_path / "pkg"
    shutil.copytree(package_dir("easyvqa-text-only"), d)
    mutate(d)
    with pytest.raises(PackageError) as exc:
        read_package(d)
    assert exc.value.code == code


def test_exports_the_module_lacks(tmp_path):
    d = tmp_path / "pkg"
    shutil.copytree(package_dir("easyvqa-text-only"), d)
    _edit(d, exports=["forward", "encode_text", "encode_image", "fuse", "attention"])
    with pytest.raises(PackageError) as exc:
        TorchScriptAdapter.load(d)
    assert exc.value.code == "package_exports"


def test_weights_that_are_not_torchscript(tmp_path):
    d = tmp_path / "pkg"
    shutil.copytree(package_dir("easyvqa-text-only"), d)
    torch.save({"w": torch.zeros(2)}, d / "model.pt")  # a pickle, not a TorchScript archive
    with pytest.raises(PackageError) as exc:
        TorchScriptAdapter.load(d)
    assert exc.value.code == "package_unloadable"


def test_zip_with_lying_sizes_is_bounded(tmp_path, monkeypatch):
    from models_bridge.adapters import package as pkg

    monkeypatch.setattr(pkg, "MAX_WEIGHTS_BYTES", 1000)
    with pytest.raises(PackageError) as exc:
        read_package(zip_package(package_dir("easyvqa-text-only"), tmp_path / "p.zip"))
    assert exc.value.code == "package_too_large"


def _edit(d: Path, **changes) -> None:  # type: ignore[no-untyped-def]
    raw = json.loads((d / "model.json").read_text())
    raw.update(changes)
    (d / "model.json").write_text(json.dumps(raw))


# --- entry points ---------------------------------------------------------------------
def test_entrypoint_adapter_runs_a_model_that_will_not_script():
    a = EntryPointAdapter.load(
        "tests.models_bridge.example_entrypoint:make_adapter", {"keyword": "circle"}
    )
    assert (a.labels, a.modalities) == (["yes", "no"], ["text"])
    logits = a.predict(Batch({"text": ["is there a circle?", "is there a square?"]}))
    assert logits.argmax(1).tolist() == [0, 1]


@pytest.mark.parametrize(
    ("location", "code"),
    [
        ("not an entry point", "entrypoint_syntax"),
        ("tests.models_bridge.no_such_module:make", "entrypoint_not_importable"),
        ("tests.models_bridge.example_entrypoint:nothing_here", "entrypoint_import"),
        ("tests.models_bridge.example_entrypoint:LABELS", "entrypoint_import"),
    ],
)
def test_bad_entrypoints(location, code):
    with pytest.raises(PackageError) as exc:
        EntryPointAdapter.load(location)
    assert exc.value.code == code


def test_entrypoint_failures_are_model_errors():
    broken = EntryPointAdapter.load("tests.models_bridge.example_entrypoint:broken_adapter")
    with pytest.raises(ModelError, match="boom"):
        broken.predict(Batch({"text": ["x"]}))
    wrong = EntryPointAdapter.load("tests.models_bridge.example_entrypoint:wrong_shape_adapter")
    with pytest.raises(ModelError, match="shape"):
        wrong.predict(Batch({"text": ["x"]}))


def test_parse_entrypoint():
    assert parse_entrypoint("a.b.c:make") == ("a.b.c", "make")


class _TwoHeads:
    """A Python adapter with two 'heads', each adding its own logit column."""

    labels = ["a", "b"]
    modalities = ["text"]
    heads = 2

    def predict(self, batch: Batch) -> np.ndarray:
        return self.predict_with_head_mask(batch, np.ones(2, dtype=np.float32))

    def predict_with_head_mask(self, batch: Batch, mask: np.ndarray) -> np.ndarray:
        m = np.broadcast_to(mask, (batch.size, 2))
        return np.asarray(m, dtype=np.float32) * np.float32(1.5)


def test_entry_point_head_mask_is_checked_and_passed_through():
    from models_bridge.adapters.base import InputError

    a = EntryPointAdapter(_TwoHeads(), location="tests:two_heads")
    batch = Batch({"text": ["x", "y", "z"]})
    assert a.heads == 2
    np.testing.assert_array_equal(a.predict_with_head_mask(batch, [1.0, 0.0])[:, 1], 0.0)
    np.testing.assert_array_equal(
        a.predict_with_head_mask(batch, np.ones((3, 2))), a.predict(batch)
    )
    with pytest.raises(InputError) as exc:
        a.predict_with_head_mask(batch, [1.0, 0.0, 1.0])
    assert exc.value.code == "head_mask_shape"
    with pytest.raises(NotFactorized):
        a.attention_heads(batch)
