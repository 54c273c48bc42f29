"""Registered packages live in managed, content-addressed storage (issue 7, C2), a version is
bound to the dataset it was checked against, and an entry point that does not import is
refused at registration with a hint about PYTHONPATH (C3)."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.management import CommandError, call_command

from annotation.models import Dataset
from models_bridge.adapters.base import Batch
from models_bridge.models import ModelVersion
from models_bridge.services.loading import adapter_cache_clear, adapter_for
from tests.conftest import client_for
from tests.models_bridge.conftest import package_dir

pytestmark = pytest.mark.django_db
TEXTS = ["is there a circle?", "what color is the shape?"]


def stored(media_root: Path) -> list[str]:
    root = media_root / "models"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def retrain(folder: Path) -> None:
    """New weights written into the same folder, as a training script would."""
    module = torch.jit.load(str(folder / "model.pt"))
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.5)
    module.save(str(folder / "model.pt"))


def zipped(folder: Path) -> io.BytesIO:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in ("model.json", "model.pt"):
            zf.write(folder / name, name)
    buf.seek(0)
    buf.name = "model.zip"
    return buf


def test_command_registers_a_copy_and_retraining_the_folder_changes_nothing(
    evqa, tmp_path, settings
):
    folder = tmp_path / "my-model"
    shutil.copytree(package_dir("easyvqa-text-only"), folder)
    call_command("register_model", str(folder), dataset=evqa.name, stdout=io.StringIO())
    mv = ModelVersion.objects.get()
    assert mv.location == f"media:models/{mv.package_sha256}"
    files = stored(Path(settings.MEDIA_ROOT))
    assert files == [
        mv.package_sha256,
        f"{mv.package_sha256}/model.json",
        f"{mv.package_sha256}/model.pt",
    ]
    before = adapter_for(mv).predict(Batch({"text": TEXTS}))

    retrain(folder)
    adapter_cache_clear()  # a new process
    after = adapter_for(mv).predict(Batch({"text": TEXTS}))
    assert np.array_equal(before, after)
    # The retrained folder under the same version is refused, and stores nothing.
    with pytest.raises(CommandError, match="model_version_immutable"):
        call_command("register_model", str(folder), dataset=evqa.name, stdout=io.StringIO())
    assert stored(Path(settings.MEDIA_ROOT)) == files


def test_uploads_duplicates_other_datasets_and_refusals_leave_no_files(
    evqa_campaign, staff, tmp_path, settings
):
    media = Path(settings.MEDIA_ROOT)
    api = client_for(staff)
    folder = package_dir("easyvqa-text-only")

    def upload(dataset_id: int):  # type: ignore[no-untyped-def]
        return api.post(
            "/api/v1/models/",
            {"dataset": dataset_id, "kind": "torchscript", "package": zipped(folder)},
            format="multipart",
        )

    # Refused (the labels do not fit): nothing stored.
    misfit = Dataset.objects.create(
        name="misfit", modalities=[{"name": "text", "kind": "text"}], label_space=["a", "b"]
    )
    r = upload(misfit.pk)
    assert (r.status_code, r.json()["error"]["code"]) == (400, "label_map_unmapped")
    assert stored(media) == [] and not ModelVersion.objects.exists()

    r = upload(evqa_campaign.dataset_id)
    assert r.status_code == 201, r.content
    first = r.json()["id"]
    files = stored(media)
    assert len(files) == 3

    # The same zip again: the same version, no new file.
    r = upload(evqa_campaign.dataset_id)
    assert r.status_code == 201 and r.json()["id"] == first
    assert stored(media) == files

    # The same zip for another dataset: refused, not a version bound elsewhere.
    other = Dataset.objects.create(
        name="other-vqa",
        modalities=[{"name": "text", "kind": "text"}, {"name": "image", "kind": "image"}],
        label_space=list(evqa_campaign.dataset.label_space),
    )
    r = upload(other.pk)
    assert r.status_code == 409, r.content
    error = r.json()["error"]
    assert error["code"] == "model_version_other_dataset"
    assert error["details"] == {"model": first, "dataset": evqa_campaign.dataset_id}
    assert stored(media) == files and ModelVersion.objects.count() == 1


def test_an_entrypoint_that_does_not_import_is_refused_with_a_hint(evqa, staff):
    r = client_for(staff).post(
        "/api/v1/models/",
        {
            "dataset": evqa.pk,
            "kind": "entrypoint",
            "location": "lab_models_not_on_path.vqa:make_adapter",
            "name": "lab",
            "version": "1",
        },
        format="json",
    )
    assert r.status_code == 400, r.content
    error = r.json()["error"]
    assert error["code"] == "entrypoint_not_importable"
    assert error["details"]["module"] == "lab_models_not_on_path.vqa"
    assert "PYTHONPATH" in error["message"] and "worker" in error["message"]
    with pytest.raises(CommandError, match="entrypoint_not_importable"):
        call_command(
            "register_model",
            "lab_models_not_on_path.vqa:make_adapter",
            dataset=evqa.name,
            kind="entrypoint",
            name="lab",
            model_version="1",
            stdout=io.StringIO(),
        )
    assert not ModelVersion.objects.exists()
