"""Exports carry perturbation studies (docs/exports.md, docs/perturbation.md): one
perturbation.jsonl per archive, in every format, one row per perturbed item with the values
people and models saw (images copied under media/) and the human labels up to the snapshot."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from django.conf import settings

from annotation.models import Job
from annotation.services.exports import export_job_create
from annotation.services.perturbation_tasks import perturbation_label_submit, perturbation_lease
from annotation.services.perturbations import perturbation_study_create
from annotation.tasks import export_run, perturbation_build_run

pytestmark = pytest.mark.django_db


def _export(campaign, fmt, user):  # type: ignore[no-untyped-def]
    job = export_job_create(campaign=campaign, created_by=user, fmt=fmt)
    export_run(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, (job.error, job.log)
    return zipfile.ZipFile(Path(settings.MEDIA_ROOT) / job.result_file.name)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_perturbed_items_and_labels_are_exported(campaign, examples, manager, annotator, fmt):  # type: ignore[no-untyped-def]
    study = perturbation_study_create(
        campaign=campaign,
        created_by=manager,
        name="noise",
        modality="image",
        perturbation="gaussian_noise",
        levels=[0, 0.2, 0.4],
    )
    perturbation_build_run(study.job_id)
    study.refresh_from_db()
    leased = perturbation_lease(study=study, annotator=annotator).assignment
    assert leased is not None
    leased.campaign = campaign
    perturbation_label_submit(assignment=leased, label="no", confidence=2)
    archive = _export(campaign, fmt, manager)
    rows = [json.loads(line) for line in archive.read("perturbation.jsonl").splitlines()]
    assert len(rows) == 15  # 5 examples x 3 levels
    labelled = [r for r in rows if r["labels"]]
    assert len(labelled) == 1
    assert labelled[0]["perturbed_item_id"] == leased.perturbed_item_id
    assert labelled[0]["labels"][0] | {"time_spent_ms": 0} == {
        "annotator": "ana-annotator",
        "label": "no",
        "confidence": 2,
        "is_gold": False,
        "time_spent_ms": 0,
    }
    names = set(archive.namelist())
    for r in rows:
        assert r["study"] == "noise" and r["perturbation"] == "gaussian_noise"
        assert r["input_image"]["path"] in names  # the very bytes people and models saw
        assert isinstance(r["input_text"], str)
    for r in rows:  # the item reproducible from (example, perturbation, level, seed)
        assert r["seed"] == study.seed and r["level"] == study.levels[r["level_index"]]
    readme = archive.read("README.md").decode()
    assert "## Columns of `perturbation.jsonl`" in readme
    assert "| `seed` | int |" in readme and "| `labels` | json |" in readme


def test_no_study_no_file(campaign, examples, manager):  # type: ignore[no-untyped-def]
    assert "perturbation.jsonl" not in _export(campaign, "jsonl", manager).namelist()
