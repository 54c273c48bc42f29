"""Analysis results in the campaign export (docs/exports.md "Analyses"): the finished
results at the moment of the request, as analyses/<job>-<method>.json, listed in the
datasheet; the archive stays a function of its snapshot."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import transaction

from annotation.models import Job
from annotation.services.exports import Snapshot, export_build, export_job_create
from annotation.tasks import export_run
from models_bridge.models import AnalysisResult
from models_bridge.services.analysis import analysis_start
from models_bridge.tasks import analysis_run_task
from tests.annotation.annotator_helpers import add_annotators, text_campaign
from tests.annotation.export_helpers import do_work
from tests.factories import UserFactory
from tests.models_bridge.test_analysis_methods import keyword_model

pytestmark = pytest.mark.django_db


def start(campaign: Any, mv: Any, user: Any) -> Job:
    with transaction.atomic():
        return analysis_start(
            campaign=campaign,
            model_version=mv,
            methods=["counterfactual"],
            params={"resamples": 50},
            created_by=user,
            enqueue=False,
        )


def export(campaign: Any, user: Any) -> tuple[Job, Path]:
    job = export_job_create(campaign=campaign, created_by=user, fmt="jsonl")
    export_run(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    return job, Path(settings.MEDIA_ROOT) / job.result_file.name


def test_finished_analyses_are_in_the_export_and_the_archive_stays_its_snapshot(
    tmp_path: Path,
) -> None:
    campaign = text_campaign(6, redundancy=1)
    do_work(campaign, add_annotators(campaign, 2))
    manager = UserFactory(username="mia")
    mv = keyword_model(campaign)
    done = start(campaign, mv, manager)
    analysis_run_task(done.pk)
    waiting = start(campaign, mv, manager)  # not run yet: not finished at the request

    job, archive = export(campaign, manager)
    name = f"analyses/{done.pk}-counterfactual.json"
    stored = AnalysisResult.objects.get(job=done, method="counterfactual")
    assert job.params["analysis_results"] == [stored.pk]
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        assert name in names
        assert not any(n.startswith(f"analyses/{waiting.pk}-") for n in names)
        assert json.loads(zf.read(name)) == stored.result
        readme = zf.read("README.md").decode()
    assert "## Analyses" in readme
    assert f"| `{name}` | {done.pk} | counterfactual | {mv} |" in readme
    assert "| analysis results | 1 |" in readme
    assert f"- `{name}`" in readme  # and among the files

    # The other job finishes later: the same snapshot still gives the same bytes.
    analysis_run_task(waiting.pk)
    again = export_build(
        campaign=campaign,
        fmt="jsonl",
        snapshot=Snapshot.from_params(job.params),
        dest=tmp_path / "again.zip",
    )
    assert again.sha256 == job.result["sha256"]
    # A new export has both.
    _job2, archive2 = export(campaign, manager)
    with zipfile.ZipFile(archive2) as zf:
        got = sorted(n for n in zf.namelist() if n.startswith("analyses/"))
    assert got == sorted([name, f"analyses/{waiting.pk}-counterfactual.json"])


def test_an_export_requested_before_analyses_were_exported_has_none(tmp_path: Path) -> None:
    campaign = text_campaign(4, redundancy=1)
    do_work(campaign, add_annotators(campaign, 1))
    manager = UserFactory(username="mia")
    job = start(campaign, keyword_model(campaign), manager)
    analysis_run_task(job.pk)
    export_job = export_job_create(campaign=campaign, created_by=manager, fmt="csv")
    params = {k: v for k, v in export_job.params.items() if k != "analysis_results"}
    report = export_build(
        campaign=campaign,
        fmt="csv",
        snapshot=Snapshot.from_params(params),
        dest=tmp_path / "old.zip",
    )
    assert not any(f.startswith("analyses/") for f in report.files)
    with zipfile.ZipFile(tmp_path / "old.zip") as zf:
        assert "No analysis of this campaign had finished" in zf.read("README.md").decode()
