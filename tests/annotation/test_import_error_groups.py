"""A systematic mistake is reported once with its line ranges, and the list is capped, in the
command's output, the service's message and the import job's result (annotation.importers.errors)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.importers import errors as E
from annotation.importers.errors import LineError, group_errors, line_ranges
from annotation.models import Job
from annotation.services.imports import manifest_import
from counterpoint.errors import ValidationFailed
from tests.annotation.test_import_api import manifest_form, post
from tests.fixtures_import.builders import line, png, snapshot, write_images, write_jsonl

FLAGS = ("--modalities", "image:image,text:text", "--labels", "yes,no")


def test_line_ranges_merge_consecutive_lines() -> None:
    assert line_ranges([7, 1, 2, 3, 3, 9, 10]) == [(1, 3), (7, 7), (9, 10)]
    assert line_ranges([]) == []


def test_identical_errors_form_one_group_and_groups_are_capped() -> None:
    same = [LineError(n, "", E.FIELD_UNKNOWN, "unknown field 'modalities'") for n in range(1, 601)]
    distinct = [LineError(700 + n, "label", E.LABEL_UNKNOWN, f"label 'x{n}'") for n in range(30)]
    groups, left_off = group_errors([*distinct, *same], limit=20)
    assert len(groups) == 20 and left_off == 11
    assert groups[0] == {
        "lines": "lines 1-600",
        "count": 600,
        "first_line": 1,
        "field": "",
        "code": E.FIELD_UNKNOWN,
        "message": "unknown field 'modalities'",
    }
    assert groups[1]["lines"] == "line 700"
    # Dicts (the `details` of a ServiceError) group like LineErrors.
    assert group_errors([e.as_dict() for e in same])[0][0]["count"] == 600


def _systematic(tmp_path: Path, n: int = 600) -> Path:
    write_images(tmp_path, **{"a.png": png()})
    return write_jsonl(tmp_path, [line(f"x{i}", modalities="image,text") for i in range(n)] + ["{"])


@pytest.mark.django_db
def test_command_prints_one_line_per_kind_of_error_and_names_the_flag(tmp_path: Path) -> None:
    path = _systematic(tmp_path)
    before = snapshot()
    err = io.StringIO()
    with pytest.raises(CommandError) as exc:
        call_command(
            "import_dataset", "--format", "jsonl", "--manifest", str(path), "--dataset", "pets",
            *FLAGS, stderr=err,
        )  # fmt: skip
    printed = [ln for ln in err.getvalue().splitlines() if ln.strip()]
    assert len(printed) == 2
    assert printed[0].startswith("  lines 1-600, modalities: unknown field(s) 'modalities'")
    assert printed[0].endswith("[field_unknown]")
    assert printed[1].startswith("  line 601, line:") and "[json_malformed]" in printed[1]
    assert "--skip-invalid" in str(exc.value) and "skip_invalid" not in str(exc.value)
    assert snapshot() == before


@pytest.mark.django_db
def test_command_caps_the_list_of_groups(tmp_path: Path) -> None:
    write_images(tmp_path, **{"a.png": png()})
    path = write_jsonl(tmp_path, [line(f"x{i}", label=f"bad{i}") for i in range(25)])
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command(
            "import_dataset", "--format", "jsonl", "--manifest", str(path), "--dataset", "pets",
            *FLAGS, stderr=err,
        )  # fmt: skip
    printed = [ln for ln in err.getvalue().splitlines() if ln.strip()]
    assert len(printed) == 21 and printed[-1] == "  … and 5 more kinds of error"


@pytest.mark.django_db
def test_service_message_groups_and_names_the_api_option(tmp_path: Path) -> None:
    path = _systematic(tmp_path)
    with pytest.raises(ValidationFailed) as exc:
        manifest_import(
            dataset_name="pets",
            manifest_path=path,
            fmt="jsonl",
            modalities=["image:image", "text:text"],
            label_space=["yes", "no"],
        )
    assert exc.value.message.count("unknown field") == 1
    assert "lines 1-600" in exc.value.message and "with skip_invalid." in exc.value.message
    assert len(exc.value.details) == 601  # clients still get every line


@pytest.mark.django_db
def test_failed_import_job_result_holds_the_groups(
    api: Any, manager: Any, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = True
    records = [line(f"x{i}", modalities="a") for i in range(50)]
    r = post(api(manager), django_capture_on_commit_callbacks, manifest_form(records))
    assert r.status_code == 202
    job = Job.objects.get(pk=r.json()["id"])
    assert job.status == Job.Status.FAILED
    assert job.result["error_groups_left_off"] == 0
    assert [(g["lines"], g["code"]) for g in job.result["error_groups"]] == [
        ("lines 1-50", "field_unknown")
    ]
    assert "skip_invalid" in job.error
