"""manage.py import_dataset: summary on success; every bad line and a non-zero exit on failure."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.models import Dataset, Example
from tests.fixtures_import.builders import line, png, snapshot, write_images, write_jsonl

pytestmark = pytest.mark.django_db


def call(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_dataset", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_jsonl_with_flags(tmp_path: Path) -> None:
    write_images(tmp_path, **{"a.png": png()})
    path = write_jsonl(tmp_path, [line("a"), line("b", label="no")])
    out, _ = call(
        "--format", "jsonl", "--manifest", str(path), "--dataset", "pets",
        "--modalities", "image:image,text:text", "--labels", "yes,no",
    )  # fmt: skip
    assert "2 examples imported" in out and "media 1 new" in out
    assert Dataset.objects.get(name="pets").label_space == ["yes", "no"]


def test_schema_file_and_csv(tmp_path: Path) -> None:
    write_images(tmp_path, **{"a.png": png()})
    (tmp_path / "schema.json").write_text(
        json.dumps(
            {
                "modalities": [
                    {"name": "photo", "kind": "image"},
                    {"name": "caption", "kind": "text"},
                ],
                "label_space": ["cat", "dog"],
            }
        )
    )
    (tmp_path / "m.csv").write_text("external_id,photo,caption,label\n1,img/a.png,a cat,cat\n")
    out, _ = call(
        "--format",
        "csv",
        "--manifest",
        str(tmp_path / "m.csv"),
        "--dataset",
        "pets",
        "--schema",
        str(tmp_path / "schema.json"),
    )
    assert "1 examples imported" in out
    assert Example.objects.get().values["caption"] == "a cat"


def test_failure_prints_every_bad_line_and_exits_non_zero(tmp_path: Path) -> None:
    write_images(tmp_path, **{"a.png": png()})
    path = write_jsonl(
        tmp_path, [line("a"), "{broken", line("c", label="maybe"), line("d", image="../x.png")]
    )
    before = snapshot()
    err = io.StringIO()
    with pytest.raises(CommandError) as exc:
        call_command(
            "import_dataset", "--format", "jsonl", "--manifest", str(path), "--dataset", "pets",
            "--modalities", "image:image,text:text", "--labels", "yes,no", stderr=err,
        )  # fmt: skip
    assert exc.value.returncode == 1 and "import_invalid" in str(exc.value)
    printed = err.getvalue()
    assert "line 2, line:" in printed and "[json_malformed]" in printed
    assert "line 3, label:" in printed and "[label_unknown]" in printed
    assert "line 4, values.image:" in printed and "[path_traversal]" in printed
    assert snapshot() == before


def test_skip_invalid_reports_the_rest(tmp_path: Path) -> None:
    write_images(tmp_path, **{"a.png": png()})
    path = write_jsonl(tmp_path, [line("a"), line("b", label="maybe")])
    out, err = call(
        "--format", "jsonl", "--manifest", str(path), "--dataset", "pets",
        "--modalities", "image:image,text:text", "--labels", "yes,no", "--skip-invalid",
    )  # fmt: skip
    assert "1 examples imported" in out and "1 bad lines skipped" in out
    assert "line 2, label:" in err


def test_easyvqa_sample_and_missing_arguments() -> None:
    out, _ = call(
        "--format",
        "easyvqa",
        "--split",
        "test",
        "--limit",
        "12",
        "--seed",
        "1",
        "--dataset",
        "evqa",
    )
    assert "12 examples imported" in out
    out, _ = call(
        "--format",
        "easyvqa",
        "--split",
        "test",
        "--limit",
        "12",
        "--seed",
        "1",
        "--dataset",
        "evqa",
    )
    assert "0 examples imported, 12 already present" in out
    with pytest.raises(CommandError, match="--split"):
        call("--format", "easyvqa")
    with pytest.raises(CommandError, match="--manifest"):
        call("--format", "jsonl", "--dataset", "x")
