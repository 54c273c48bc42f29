"""The schema file has one spelling per key (label_space, not labels), refuses unknown keys by
naming the accepted ones, and may type metadata so CSV cells arrive as numbers and booleans."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.importers import errors as E
from annotation.importers.schema_file import load_schema_file
from annotation.models import Example
from annotation.services.imports import manifest_import
from counterpoint.errors import ValidationFailed
from tests.annotation.test_import_api import post, zipped
from tests.fixtures_import.builders import line, png, snapshot, write_images, write_jsonl

SCHEMA: dict[str, Any] = {
    "modalities": [{"name": "image", "kind": "image"}, {"name": "text", "kind": "text"}],
    "label_space": ["yes", "no"],
    "metadata": {"age": "integer", "score": "number", "smoker": "boolean", "note": "string"},
}


def _schema(tmp_path: Path, body: dict[str, Any]) -> Path:
    p = tmp_path / "schema.json"
    p.write_text(json.dumps(body))
    return p


@pytest.mark.parametrize("key", ["labels", "colour"])
def test_unknown_keys_are_refused_with_the_accepted_ones_named(tmp_path: Path, key: str) -> None:
    p = _schema(tmp_path, {"modalities": ["image:image"], key: ["a", "b"]})
    with pytest.raises(ValidationFailed) as exc:
        load_schema_file(p)
    assert exc.value.code == E.SCHEMA_FILE_UNKNOWN_KEY
    assert "modalities, label_space, metadata, description" in exc.value.message
    assert exc.value.details == {
        "unknown": [key],
        "accepted": ["modalities", "label_space", "metadata", "description"],
    }


def test_metadata_types_must_be_known(tmp_path: Path) -> None:
    p = _schema(tmp_path, {**SCHEMA, "metadata": {"age": "int"}})
    with pytest.raises(ValidationFailed) as exc:
        load_schema_file(p)
    assert exc.value.code == E.SCHEMA_FILE_INVALID and "string, integer, number, boolean" in str(
        exc.value.message
    )


@pytest.mark.django_db
def test_command_refuses_labels_key_and_writes_nothing(tmp_path: Path) -> None:
    write_images(tmp_path, **{"a.png": png()})
    path = write_jsonl(tmp_path, [line("a")])
    schema = _schema(tmp_path, {"modalities": ["image:image", "text:text"], "labels": ["yes"]})
    before = snapshot()
    with pytest.raises(CommandError) as exc:
        call_command(
            "import_dataset", "--format", "jsonl", "--manifest", str(path), "--dataset", "pets",
            "--schema", str(schema), stderr=io.StringIO(),
        )  # fmt: skip
    assert "[schema_file_unknown_key]" in str(exc.value) and "label_space" in str(exc.value)
    assert snapshot() == before


@pytest.mark.django_db
def test_csv_metadata_is_typed_from_the_schema_file(tmp_path: Path) -> None:
    write_images(tmp_path, **{"a.png": png()})
    (tmp_path / "m.csv").write_text(
        "id,image,text,label,meta.age,meta.score,meta.smoker,meta.note,meta.free\n"
        "1,img/a.png,is it red?,yes,42,0.5,yes,007,x\n"
        "2,img/a.png,is it red?,no,,1e3,0,,\n"
    )
    manifest_import(
        dataset_name="pets",
        manifest_path=tmp_path / "m.csv",
        fmt="csv",
        schema_path=_schema(tmp_path, SCHEMA),
    )
    meta = {e.external_id: e.metadata for e in Example.objects.all()}
    assert meta == {
        "1": {"age": 42, "score": 0.5, "smoker": True, "note": "007", "free": "x"},
        "2": {"score": 1000.0, "smoker": False},
    }


@pytest.mark.django_db
def test_mistyped_metadata_is_a_named_error_on_its_line(tmp_path: Path) -> None:
    write_images(tmp_path, **{"a.png": png()})
    (tmp_path / "m.csv").write_text(
        "id,image,text,label,meta.age\n1,img/a.png,q,yes,forty\n2,img/a.png,q,yes,40\n"
    )
    schema = _schema(tmp_path, SCHEMA)
    with pytest.raises(ValidationFailed) as exc:
        manifest_import(
            dataset_name="pets", manifest_path=tmp_path / "m.csv", fmt="csv", schema_path=schema
        )
    assert [(d["line"], d["field"], d["code"]) for d in exc.value.details] == [
        (2, "metadata.age", E.FIELD_TYPE)
    ]
    # JSONL values are JSON already: checked against the declared type, not converted.
    path = write_jsonl(
        tmp_path, [line("a", metadata={"age": "40"}), line("b", metadata={"age": 4})]
    )
    with pytest.raises(ValidationFailed) as exc:
        manifest_import(dataset_name="pets", manifest_path=path, fmt="jsonl", schema_path=schema)
    assert [(d["line"], d["field"], d["code"]) for d in exc.value.details] == [
        (1, "metadata.age", E.FIELD_TYPE)
    ]
    assert not Example.objects.exists()


@pytest.mark.django_db
def test_import_job_types_csv_metadata_from_an_uploaded_schema(
    api: Any, manager: Any, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = True
    form = {
        "format": "csv",
        "dataset": "pets",
        "manifest": SimpleUploadedFile(
            "m.csv", b"id,image,text,label,meta.age\n1,img/a.png,q,yes,42\n", "text/csv"
        ),
        "schema": SimpleUploadedFile(
            "schema.json", json.dumps(SCHEMA).encode(), "application/json"
        ),
        "media": zipped({"img/a.png": png()}),
    }
    r = post(api(manager), django_capture_on_commit_callbacks, form)
    assert r.status_code == 202, r.json()
    assert Example.objects.get().metadata == {"age": 42}
