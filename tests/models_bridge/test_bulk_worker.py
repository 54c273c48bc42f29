"""A bulk scoring job started through the REST endpoint and run by a real `celery worker`
process on Redis (reusing the worker helpers of tests/annotation/test_celery_worker.py)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from annotation.models import Example, Job
from models_bridge.models import Score
from models_bridge.services.registry import model_register
from tests.annotation.test_celery_worker import (
    REAL_WORKER_MARKS,
    _forget_queue,
    _start_worker,
    _stop_worker,
    _wait_for,
)
from tests.conftest import client_for

pytestmark = REAL_WORKER_MARKS


@pytest.mark.django_db(transaction=True)
def test_bulk_scoring_runs_on_a_real_worker(
    evqa_campaign, evqa_people, settings: Any, tmp_path: Path
) -> None:
    queue = f"test-scoring-{uuid.uuid4().hex[:12]}"
    settings.JOBS_QUEUE_OVERRIDE = queue
    settings.CELERY_TASK_ALWAYS_EAGER = False
    mv = model_register(
        dataset=evqa_campaign.dataset, kind="torchscript", location="easyvqa-additive"
    )
    log = tmp_path / "worker.log"
    proc = _start_worker(queue, log)
    try:
        r = client_for(evqa_people["manager"]).post(
            f"/api/v1/campaigns/{evqa_campaign.pk}/bulk-score/", {"model": mv.pk}, format="json"
        )
        assert r.status_code == 202, r.content
        job = _wait_for(r.json()["job"]["id"], proc, log)
        n = Example.objects.filter(dataset=evqa_campaign.dataset).count()
        assert job.status == Job.Status.SUCCEEDED, (
            f"{job.error}\n{log.read_text(errors='replace')[-4000:]}"
        )
        assert (job.progress_done, job.progress_total, job.result["computed"]) == (n, n, n)
        assert Score.objects.filter(model_version=mv).count() == n
    finally:
        _stop_worker(proc)
        _forget_queue(queue)


@pytest.mark.django_db(transaction=True)
def test_a_submitted_edit_is_scored_by_a_real_worker(
    evqa_campaign, evqa_people, settings: Any, tmp_path: Path
) -> None:
    import time

    from annotation.models import CounterfactualEdit
    from models_bridge.services.registry import campaign_models_set
    from tests.models_bridge.test_edit_scores import _submit_edit

    queue = f"test-edit-score-{uuid.uuid4().hex[:12]}"
    settings.JOBS_QUEUE_OVERRIDE = queue
    settings.CELERY_TASK_ALWAYS_EAGER = False
    models = [
        model_register(dataset=evqa_campaign.dataset, kind="torchscript", location=name)
        for name in ("easyvqa-text-only", "easyvqa-additive")
    ]
    campaign_models_set(campaign=evqa_campaign, model_versions=models)
    log = tmp_path / "worker.log"
    proc = _start_worker(queue, log)
    try:
        edit = _submit_edit(evqa_campaign, evqa_people["shown"])  # sent on commit
        deadline = time.monotonic() + 120
        while set(CounterfactualEdit.objects.get(pk=edit.pk).scores) != {
            str(mv.pk) for mv in models
        }:
            assert proc.poll() is None, log.read_text(errors="replace")[-4000:]
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-4000:]
            time.sleep(0.25)
        scores = CounterfactualEdit.objects.get(pk=edit.pk).scores
        assert all(set(entry) - {"emap"} == {"original", "edit"} for entry in scores.values())
        assert "models_bridge.tasks.edit_score" in log.read_text(errors="replace")
    finally:
        _stop_worker(proc)
        _forget_queue(queue)
