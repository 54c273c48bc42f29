"""Exports: one stored archive per job however often the task runs, streamed in bounded
batches, loadable by `datasets` and pandas, with a datasheet and documented CSV columns."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import pytest
from django.conf import settings

from annotation import export_format
from annotation.models import Annotation, Job, Membership
from annotation.services import exports
from annotation.services.exports import (
    export_build,
    export_job_create,
    export_snapshot,
)
from annotation.tasks import export_run
from tests.annotation.annotator_helpers import add_annotators, member, text_campaign
from tests.annotation.export_helpers import do_work, unzip

pytestmark = pytest.mark.django_db


@pytest.fixture
def worked(campaign, examples, manager, annotator, annotator2, validator):  # type: ignore[no-untyped-def]
    """The conftest campaign (image + text) with two annotations, two text edits after a
    scored draft each, and one validation."""
    campaign.validations_required = 1
    campaign.validations_to_verify = 1
    campaign.save(update_fields=["validations_required", "validations_to_verify"])
    do_work(campaign, [annotator, annotator2], validator)
    return campaign


def _export(campaign, fmt, user):  # type: ignore[no-untyped-def]
    job = export_job_create(campaign=campaign, created_by=user, fmt=fmt)
    export_run(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, (job.error, job.log)
    return job, Path(settings.MEDIA_ROOT) / job.result_file.name


def _exports_dir() -> list[str]:
    return sorted(p.name for p in (Path(settings.MEDIA_ROOT) / "exports").iterdir())


def test_running_the_task_twice_stores_one_file(worked, manager):
    job = export_job_create(campaign=worked, created_by=manager, fmt="jsonl")
    assert export_run(job.pk) is None  # Celery tasks return nothing; the row says how it went
    job.refresh_from_db()
    first = (job.status, job.result_file.name, job.result)
    export_run(job.pk)  # a redelivered message: the job is no longer PENDING
    job.refresh_from_db()
    assert (job.status, job.result_file.name, job.result) == first
    assert job.status == Job.Status.SUCCEEDED
    assert _exports_dir() == [Path(job.result_file.name).name]
    name = Path(job.result_file.name).name
    assert name.startswith(export_format.slug(worked.name) + "-")
    assert name.endswith(f"-{job.result['sha256'][:16]}.zip")


def test_a_taken_over_export_stores_the_same_one_file(worked, manager):
    """A worker died after its rename; the job's lease runs out and the redelivery builds
    again: the snapshot gives the same bytes, so the same name, and a work the finish
    refused does not delete the winner's file."""
    from datetime import timedelta

    from annotation.services.jobs import job_claim

    job = export_job_create(campaign=worked, created_by=manager, fmt="csv")
    dead = job_claim(job_id=job.pk)
    assert dead
    report = exports.export_job_run(job=job, progress=lambda d, t: None)  # the dead run's file
    Job.objects.filter(pk=job.pk).update(heartbeat_at=job.created_at - timedelta(hours=1))
    export_run(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert job.result_file.name == report.rel_path
    exports.export_discard(rel_path=report.rel_path)  # the dead run's refused finish
    assert _exports_dir() == [report.name]


def test_a_dead_runs_temporary_file_is_swept(worked, manager):
    import os
    import time

    root = Path(settings.MEDIA_ROOT) / "exports"
    root.mkdir(parents=True, exist_ok=True)
    old, fresh = root / ".tmp-dead.zip", root / ".tmp-live.zip"
    old.write_bytes(b"half")
    fresh.write_bytes(b"being written")
    past = time.time() - settings.CELERY_TASK_TIME_LIMIT - 120
    os.utime(old, (past, past))
    job, _path = _export(worked, "jsonl", manager)
    assert _exports_dir() == sorted([fresh.name, Path(job.result_file.name).name])


def test_export_is_a_snapshot_of_the_request_time(worked, manager, examples):
    job = export_job_create(campaign=worked, created_by=manager, fmt="jsonl")
    later = member(worked, "late-annotator")
    do_work(worked, [later])
    export_run(job.pk)
    job.refresh_from_db()
    assert job.result["rows"] == {"annotations": 2, "pairs": 2}


def test_jsonl_rows_and_pairs(worked, manager, tmp_path):
    job, path = _export(worked, "jsonl", manager)
    # Images are summed up in one line of the file list, however many there are.
    assert job.result["files"] == [
        "annotations.jsonl",
        "pairs.jsonl",
        f"media/ ({job.result['media_files']} images named <sha256>.<ext>)",
        "README.md",
    ]
    out = unzip(path, tmp_path / "x")
    annotations = [json.loads(line) for line in (out / "annotations.jsonl").open()]
    pairs = [json.loads(line) for line in (out / "pairs.jsonl").open()]
    assert len(annotations) == Annotation.objects.filter(campaign=worked).count() == 2
    assert len(pairs) == 2
    a = annotations[0]
    assert a["reliance"] == "specialization" and a["confidence"] == 4
    assert a["evidence"][0]["type"] == "span"
    image = a["input_image"]
    assert (out / image["path"]).exists() and image["path"] == f"media/{image['sha256']}.png"
    verified = [p for p in pairs if p["status"] == "verified"]
    assert len(verified) == 1
    p = verified[0]
    assert p["validations"][0]["validator"] == "vera-validator"
    assert p["validations_count"] == 1 and p["validations_agree"] == 1
    assert p["attempts_count"] == 1
    assert p["original_text"] != p["edited_text"]
    assert p["original_image"] == p["edited_image"]  # untouched modality
    assert p["minimality_value"] == p["minimality"]["minimality"] > 0
    assert p["target_label"] == "yes" and p["original_label"] == "no"
    assert p["rationale"] == "the word decides it"
    assert set(p) == {c.name for c in export_format.columns("pairs", worked.dataset.modalities)}


def test_csv_columns_are_the_documented_ones(worked, manager, tmp_path):
    _job, path = _export(worked, "csv", manager)
    out = unzip(path, tmp_path / "x")
    readme = (out / "README.md").read_text()
    for table in ("annotations", "pairs"):
        with (out / f"{table}.csv").open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        cols = export_format.columns(table, worked.dataset.modalities)
        assert list(rows[0]) == [c.name for c in cols]
        for col in cols:  # every column is explained in the datasheet
            assert f"| `{col.name}` | {col.kind} |" in readme
    with (out / "pairs.csv").open(newline="") as fh:
        row = next(csv.DictReader(fh))
    assert isinstance(json.loads(row["minimality"]), dict)  # nested fields as JSON strings
    assert isinstance(json.loads(row["validations"]), list)
    assert (out / row["original_image"]).exists()


def test_datasheet_has_campaign_settings_counts_and_agreement(worked, manager, tmp_path):
    worked.instructions = "Label the **shape**."
    worked.save(update_fields=["instructions"])
    _job, path = _export(worked, "jsonl", manager)
    readme = (unzip(path, tmp_path / "x") / "README.md").read_text()
    assert f"# {worked.name}" in readme
    assert "Label the **shape**." in readme
    assert "| redundancy | 3 |" in readme
    assert "| annotations | 2 |" in readme
    assert "## Agreement" in readme


def test_agreement_figures_come_from_agreement_module(manager):
    campaign = text_campaign(3, redundancy=2)
    users = add_annotators(campaign, 2)
    for _ in range(3):
        do_work(campaign, users)
    snap = export_snapshot(campaign=campaign)
    figures = exports.export_agreement(campaign=campaign, snap=snap)
    assert figures["units"] == 3 and figures["raters"] == 2
    # Every annotator gave "no" everywhere: no variation, alpha undefined (nan) or 1.
    assert figures["fleiss_raters"] == 2 and figures["fleiss_units"] == 3


def test_parquet_loads_in_datasets_and_pandas(worked, manager, tmp_path):
    import datasets
    import pandas as pd

    _job, path = _export(worked, "parquet", manager)
    out = unzip(path, tmp_path / "x")
    pairs = datasets.load_dataset(
        "parquet", data_files=str(out / "pairs.parquet"), split="train", cache_dir=tmp_path / "c"
    )
    assert isinstance(pairs.features["original_image"], datasets.Image)
    assert isinstance(pairs.features["edited_image"], datasets.Image)
    assert pairs.num_rows == 2
    img = pairs[0]["original_image"]
    assert img.size == (8, 8)
    assert json.loads(pairs[0]["minimality"])["minimality"] > 0
    frame = pd.read_parquet(out / "annotations.parquet")
    assert len(frame) == 2
    assert set(frame["annotator"]) == {"ana-annotator", "ben-annotator"}
    assert frame["input_image"].iloc[0]["bytes"][:4] == b"\x89PNG"


def test_hf_layout_loads_by_config(worked, manager, tmp_path):
    import datasets

    _job, path = _export(worked, "hf", manager)
    out = unzip(path, tmp_path / "x")
    assert (out / "README.md").read_text().startswith("---\nconfigs:")
    pairs = datasets.load_dataset(str(out), "pairs", split="train", cache_dir=tmp_path / "c")
    assert isinstance(pairs.features["edited_image"], datasets.Image)
    annotations = datasets.load_dataset(
        str(out), "annotations", split="train", cache_dir=tmp_path / "c"
    )
    assert annotations.num_rows == 2


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_streamed_in_bounded_batches(fmt, tmp_path):
    """Memory holds one batch: with 4 rows per batch, 10 annotations are written in three
    flushes of at most 4 rows, each read by its own keyset query (not one list of all)."""
    campaign = text_campaign(10, redundancy=1)
    users = add_annotators(campaign, 10)
    do_work(campaign, users)
    snap = export_snapshot(campaign=campaign)
    flushes: list[tuple[str, int]] = []
    report = export_build(
        campaign=campaign,
        fmt=fmt,
        snapshot=snap,
        dest=tmp_path / "a.zip",
        batch_rows=4,
        on_flush=lambda table, n: flushes.append((table, n)),
    )
    assert flushes == [(table, n) for table in ("annotations", "pairs") for n in (4, 4, 2)]
    assert report.max_rows_per_flush == 4
    assert report.rows == {"annotations": 10, "pairs": 10}


def test_same_snapshot_same_bytes(worked, tmp_path):
    snap = export_snapshot(campaign=worked)
    a = export_build(campaign=worked, fmt="parquet", snapshot=snap, dest=tmp_path / "a.zip")
    b = export_build(campaign=worked, fmt="parquet", snapshot=snap, dest=tmp_path / "b.zip")
    assert a.sha256 == b.sha256
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        assert sorted(zf.namelist()) == ["README.md", "annotations.parquet", "pairs.parquet"]


def test_unknown_format_is_refused(worked, manager):
    from counterpoint.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as err:
        export_job_create(campaign=worked, created_by=manager, fmt="xml")
    assert err.value.code == "export_format"
    assert not Job.objects.filter(kind=Job.Kind.EXPORT).exists()


def test_role_guard_helper(worked, manager, annotator):
    from annotation.access import export_for_user
    from counterpoint.errors import Forbidden

    job = export_job_create(campaign=worked, created_by=manager, fmt="jsonl")
    assert export_for_user(user=manager, campaign_id=worked.pk, export_id=job.pk) == job
    with pytest.raises(Forbidden):
        export_for_user(user=annotator, campaign_id=worked.pk, export_id=job.pk)
    _ = Membership
