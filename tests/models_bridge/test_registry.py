"""Registration: manifest checks against the dataset, immutability, health, permissions."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from annotation.models import Dataset
from counterpoint.errors import Conflict, ValidationFailed
from models_bridge.models import ModelVersion
from models_bridge.services.registry import (
    REFERENCE_MODELS,
    campaign_models_set,
    label_map_build,
    model_health,
    model_register,
    reference_models_register,
)
from tests.conftest import client_for
from tests.models_bridge.conftest import package_dir, reference_names

pytestmark = pytest.mark.django_db


def copy_pkg(tmp_path: Path, name: str = "easyvqa-text-only", **edits) -> Path:  # type: ignore[no-untyped-def]
    d = tmp_path / f"{name}-{len(list(tmp_path.iterdir()))}"
    shutil.copytree(package_dir(name), d)
    if edits:
        raw = json.loads((d / "model.json").read_text())
        raw.update(edits)
        (d / "model.json").write_text(json.dumps(raw))
    return d


# --- pure label mapping ---------------------------------------------------------------
def test_label_map_identity_explicit_and_many_to_one():
    assert label_map_build(model_labels=["yes", "no"], dataset_labels=["no", "yes"]) == {
        "yes": "yes",
        "no": "no",
    }
    assert label_map_build(
        model_labels=["y", "n", "nope"],
        dataset_labels=["yes", "no"],
        explicit={"y": "yes", "n": "no", "nope": "no"},
    ) == {"y": "yes", "n": "no", "nope": "no"}


@pytest.mark.parametrize(
    ("explicit", "code"),
    [
        (None, "label_map_unmapped"),
        ({"zzz": "yes"}, "label_map_unknown_source"),
        ({"maybe": "perhaps"}, "label_map_unknown_target"),
    ],
)
def test_label_map_errors_name_the_labels(explicit, code):
    with pytest.raises(ValidationFailed) as exc:
        label_map_build(
            model_labels=["yes", "maybe"], dataset_labels=["yes", "no"], explicit=explicit
        )
    assert exc.value.code == code
    named = {
        "label_map_unmapped": "maybe",
        "label_map_unknown_source": "zzz",
        "label_map_unknown_target": "perhaps",
    }
    assert named[code] in exc.value.message


# --- registration ----------------------------------------------------------------------
def test_register_reads_the_manifest(evqa):
    mv = model_register(dataset=evqa, kind="torchscript", location="easyvqa-additive")
    assert (mv.name, mv.version, mv.kind, mv.factorized) == (
        "easyvqa-additive",
        "1",
        "torchscript",
        True,
    )
    assert sorted(mv.modalities) == ["image", "text"]
    assert mv.label_map == {label: label for label in mv.labels}
    assert len(mv.package_sha256) == 64
    assert "vocab" not in mv.manifest["preprocessing"]["text"]


def test_registration_is_idempotent_and_versions_are_immutable(evqa, tmp_path):
    d = copy_pkg(tmp_path)
    first = model_register(dataset=evqa, kind="torchscript", location=str(d))
    assert model_register(dataset=evqa, kind="torchscript", location=str(d)).pk == first.pk
    (d / "model.pt").write_bytes((d / "model.pt").read_bytes() + b"\0")  # "new weights"
    with pytest.raises(Conflict) as exc:
        model_register(dataset=evqa, kind="torchscript", location=str(d))
    assert exc.value.code == "model_version_immutable"
    assert ModelVersion.objects.count() == 1


def test_unmapped_labels_are_an_error_and_a_label_map_fixes_them(db, tmp_path):
    ds = Dataset.objects.create(
        name="yesno",
        modalities=[{"name": "text", "kind": "text"}, {"name": "image", "kind": "image"}],
        label_space=["yes", "no", "other"],
    )
    with pytest.raises(ValidationFailed) as exc:
        model_register(dataset=ds, kind="torchscript", location="easyvqa-text-only")
    assert exc.value.code == "label_map_unmapped"
    assert "circle" in exc.value.message and "yes" not in exc.value.details["unmapped"]
    labels = json.loads((package_dir("easyvqa-text-only") / "model.json").read_text())["labels"]
    mapping = {label: "other" for label in labels if label not in ("yes", "no")}
    mv = model_register(
        dataset=ds, kind="torchscript", location="easyvqa-text-only", label_map=mapping
    )
    assert mv.label_map["circle"] == "other" and mv.label_map["yes"] == "yes"


@pytest.mark.parametrize(
    ("modalities", "code"),
    [
        ([{"name": "image", "kind": "image"}], "model_modality_unknown"),
        ([{"name": "text", "kind": "image"}], "model_modality_kind"),
    ],
)
def test_modalities_must_exist_with_matching_kinds(db, modalities, code):
    ds = Dataset.objects.create(name="other", modalities=modalities, label_space=["yes", "no"])
    with pytest.raises(ValidationFailed) as exc:
        model_register(dataset=ds, kind="torchscript", location="easyvqa-text-only")
    assert exc.value.code == code
    assert not ModelVersion.objects.exists()


def test_unknown_package_and_kind(evqa):
    with pytest.raises(ValidationFailed) as exc:
        model_register(dataset=evqa, kind="torchscript", location="no-such-model")
    assert exc.value.code == "package_not_found"
    with pytest.raises(ValidationFailed) as exc:
        model_register(dataset=evqa, kind="onnx", location="x")
    assert exc.value.code == "model_kind"


def test_entrypoint_registration_and_scoring(db):
    from models_bridge.services.scoring import score

    ds = Dataset.objects.create(
        name="kw", modalities=[{"name": "text", "kind": "text"}], label_space=["yes", "no"]
    )
    mv = model_register(
        dataset=ds,
        kind="entrypoint",
        location="tests.models_bridge.example_entrypoint:make_adapter",
        name="keyword",
        version="1",
        options={"keyword": "circle"},
    )
    assert (mv.labels, mv.modalities, mv.manifest["options"]) == (
        ["yes", "no"],
        ["text"],
        {"keyword": "circle"},
    )
    out = score(model_version=mv, inputs=[{"text": "a circle"}, {"text": "a square"}])
    assert [r.predicted_label for r in out] == ["yes", "no"]
    with pytest.raises(ValidationFailed) as exc:
        score(model_version=mv, inputs=[{"text": "x" * 300}])
    assert exc.value.code == "text_too_long"


def test_health(evqa, tmp_path):
    mv = model_register(dataset=evqa, kind="torchscript", location=str(copy_pkg(tmp_path)))
    assert model_health(model_version=mv)["status"] == "ok"
    from models_bridge.services.loading import adapter_cache_clear, resolve_location

    adapter_cache_clear()
    (resolve_location(mv.location) / "model.pt").write_bytes(b"garbage")
    health = model_health(model_version=mv)
    assert health["status"] == "unavailable" and "changed" in health["detail"]


def test_reference_models_register_is_idempotent(evqa):
    for name in REFERENCE_MODELS:
        package_dir(name)
    first = reference_models_register(dataset=evqa)
    again = reference_models_register(dataset=evqa)
    assert [m.pk for m in first] == [m.pk for m in again]
    assert [m.name for m in first] == reference_names()


def test_reference_models_missing(evqa, tmp_path):
    with override_settings(MODELS_DIR=tmp_path), pytest.raises(Exception) as exc:
        reference_models_register(dataset=evqa)
    assert exc.value.code == "reference_models_missing"  # type: ignore[attr-defined]


def test_campaign_models_must_fit_the_dataset(evqa_campaign, db):
    other = Dataset.objects.create(
        name="o", modalities=[{"name": "text", "kind": "text"}], label_space=["yes", "no"]
    )
    mv = model_register(
        dataset=other,
        kind="entrypoint",
        location="tests.models_bridge.example_entrypoint:make_adapter",
        name="keyword",
        version="1",
    )
    campaign_models_set(campaign=evqa_campaign, model_versions=[mv])  # yes/no fit easy-VQA
    ds2 = Dataset.objects.create(
        name="p", modalities=[{"name": "image", "kind": "image"}], label_space=["yes", "no"]
    )
    from annotation.services.campaigns import campaign_create

    c2 = campaign_create(dataset=ds2, name="c2")
    with pytest.raises(ValidationFailed) as exc:
        campaign_models_set(campaign=c2, model_versions=[mv])
    assert exc.value.code == "model_modality_unknown"


def test_register_model_command(evqa, tmp_path):
    out = io.StringIO()
    call_command("register_model", "easyvqa-text-only", dataset=evqa.name, stdout=out)
    assert "easyvqa-text-only@1" in out.getvalue()
    with pytest.raises(CommandError, match=r"model_modality_unknown|label_map"):
        ds = Dataset.objects.create(
            name="z", modalities=[{"name": "image", "kind": "image"}], label_space=["a"]
        )
        call_command("register_model", "easyvqa-text-only", dataset=ds.name, stdout=out)


# --- REST ----------------------------------------------------------------------------------
def test_annotator_cannot_register_and_manager_can(evqa_campaign, evqa_people):
    body = {
        "dataset": evqa_campaign.dataset_id,
        "kind": "torchscript",
        "location": "easyvqa-text-only",
    }
    r = client_for(evqa_people["shown"]).post("/api/v1/models/", body, format="json")
    assert (r.status_code, r.json()["error"]["code"]) == (403, "manager_required")
    r = client_for(evqa_people["outsider"]).post("/api/v1/models/", body, format="json")
    assert r.status_code == 403
    # managers need to see the dataset: make the manager its creator
    Dataset.objects.filter(pk=evqa_campaign.dataset_id).update(created_by=evqa_people["manager"])
    r = client_for(evqa_people["manager"]).post("/api/v1/models/", body, format="json")
    assert r.status_code == 201, r.content
    mv_id = r.json()["id"]
    r = client_for(evqa_people["manager"]).get(f"/api/v1/models/{mv_id}/health/")
    assert r.json()["status"] == "ok"
    r = client_for(evqa_people["manager"]).put(
        f"/api/v1/campaigns/{evqa_campaign.pk}/models/", {"models": [mv_id]}, format="json"
    )
    assert r.status_code == 200 and [m["id"] for m in r.json()] == [mv_id]
    r = client_for(evqa_people["shown"]).put(
        f"/api/v1/campaigns/{evqa_campaign.pk}/models/", {"models": []}, format="json"
    )
    assert r.status_code == 403


def test_manager_paths_are_confined_and_zips_can_be_uploaded(evqa_campaign, evqa_people, tmp_path):
    Dataset.objects.filter(pk=evqa_campaign.dataset_id).update(created_by=evqa_people["manager"])
    api = client_for(evqa_people["manager"])
    outside = copy_pkg(tmp_path)
    r = api.post(
        "/api/v1/models/",
        {"dataset": evqa_campaign.dataset_id, "kind": "torchscript", "location": str(outside)},
        format="json",
    )
    assert (r.status_code, r.json()["error"]["code"]) == (403, "package_path_forbidden")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in ("model.json", "model.pt"):
            zf.write(outside / name, name)
    buf.seek(0)
    buf.name = "model.zip"
    r = api.post(
        "/api/v1/models/",
        {"dataset": evqa_campaign.dataset_id, "kind": "torchscript", "package": buf},
        format="multipart",
    )
    assert r.status_code == 201, r.content
    assert r.json()["location"].startswith("media:models/")
    bad = io.BytesIO(b"not a zip")
    bad.name = "bad.zip"
    r = api.post(
        "/api/v1/models/",
        {"dataset": evqa_campaign.dataset_id, "kind": "torchscript", "package": bad},
        format="multipart",
    )
    assert (r.status_code, r.json()["error"]["code"]) == (400, "package_unreadable")


def test_register_errors_over_rest_are_4xx(evqa_campaign, staff):
    api = client_for(staff)
    r = api.post(
        "/api/v1/models/",
        {"dataset": evqa_campaign.dataset_id, "kind": "torchscript", "location": "missing"},
        format="json",
    )
    assert (r.status_code, r.json()["error"]["code"]) == (400, "package_not_found")
    r = api.post(
        "/api/v1/models/",
        {"dataset": 999999, "kind": "torchscript", "location": "x"},
        format="json",
    )
    assert r.status_code == 404
    r = api.get("/api/v1/models/999999/")
    assert r.status_code == 404


def test_model_list_visibility(evqa_campaign, evqa_people, staff):
    model_register(dataset=evqa_campaign.dataset, kind="torchscript", location="easyvqa-text-only")
    assert client_for(staff).get("/api/v1/models/").json()["count"] == 1
    assert client_for(evqa_people["outsider"]).get("/api/v1/models/").json()["count"] == 0
