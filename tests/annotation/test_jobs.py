"""Job helpers: claiming is a conditional update (one winner), finishing happens once, progress
and log are cheap updates; the import task does nothing on a second delivery."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.models import Job
from annotation.services.jobs import (
    MAX_LOG_LINES,
    job_claim,
    job_create,
    job_finish,
    job_heartbeat,
    job_log,
    job_progress,
    job_progress_reporter,
)
from annotation.tasks import import_run
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_claim_once_finish_once() -> None:
    job = job_create(kind=Job.Kind.IMPORT, created_by=UserFactory(), params={"x": 1})
    assert job.status == Job.Status.PENDING
    assert job_claim(job_id=job.pk) is not None
    assert job_claim(job_id=job.pk) is None
    job_progress(job_id=job.pk, done=3, total=10)
    job.refresh_from_db()
    assert (job.status, job.progress_done, job.progress_total) == (Job.Status.RUNNING, 3, 10)
    assert job.started_at is not None
    assert job_finish(job_id=job.pk, status=Job.Status.SUCCEEDED, result={"n": 1}) is True
    assert job_finish(job_id=job.pk, status=Job.Status.FAILED, error="late duplicate") is False
    job.refresh_from_db()
    assert (job.status, job.result, job.error) == (Job.Status.SUCCEEDED, {"n": 1}, "")
    assert job.finished_at is not None
    assert job_claim(job_id=job.pk, lease_s=0) is None  # finished jobs are never reclaimed


def test_a_running_job_with_a_live_heartbeat_is_not_reclaimed() -> None:
    job = job_create(kind=Job.Kind.EXPORT, created_by=None, params={})
    token = job_claim(job_id=job.pk)
    assert token is not None
    assert job_claim(job_id=job.pk) is None
    # Long after the start, a run that keeps beating keeps its job.
    assert job_heartbeat(job_id=job.pk, token=token, now=timezone.now() + timedelta(hours=2))
    assert job_claim(job_id=job.pk, now=timezone.now() + timedelta(hours=2)) is None


def test_progress_reporter_always_writes_the_last_step() -> None:
    job = job_create(kind=Job.Kind.IMPORT, created_by=None, params={})
    job_claim(job_id=job.pk)
    report = job_progress_reporter(job_id=job.pk, min_interval_s=3600)
    report(1, 50)  # the first call writes
    report(2, 50)  # within the interval: skipped
    job.refresh_from_db()
    assert job.progress_done == 1
    report(50, 50)
    job.refresh_from_db()
    assert (job.progress_done, job.progress_total) == (50, 50)


def test_log_is_appended_and_bounded() -> None:
    job = job_create(kind=Job.Kind.IMPORT, created_by=None, params={})
    for i in range(MAX_LOG_LINES + 5):
        job_log(job_id=job.pk, message=f"line {i}")
    job.refresh_from_db()
    assert len(job.log) == MAX_LOG_LINES
    assert (
        job.log[0]["message"] == "line 5" and job.log[-1]["message"] == f"line {MAX_LOG_LINES + 4}"
    )
    assert job.log[-1]["at"]


def test_unknown_kind_and_status_are_refused() -> None:
    with pytest.raises(ValueError):
        job_create(kind="dance", created_by=None, params={})
    job = job_create(kind=Job.Kind.IMPORT, created_by=None, params={})
    with pytest.raises(ValueError):
        job_finish(job_id=job.pk, status=Job.Status.PENDING)


def test_import_task_runs_once_and_a_second_delivery_does_nothing() -> None:
    job = job_create(
        kind=Job.Kind.IMPORT,
        created_by=UserFactory(),
        params={"format": "easyvqa", "split": "test", "limit": 7, "seed": 0, "dataset": "evqa"},
    )
    import_run(job.pk)  # called directly: the same code a worker runs
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.result["created"] == 7 and job.dataset.name == "evqa"
    assert (job.progress_done, job.progress_total) == (7, 7)
    first_finish = job.finished_at
    import_run(job.pk)
    job.refresh_from_db()
    assert job.finished_at == first_finish and job.result["created"] == 7
    assert job.dataset.examples.count() == 7


def test_import_task_records_a_validation_failure() -> None:
    job = job_create(
        kind=Job.Kind.IMPORT,
        created_by=None,
        params={"format": "easyvqa", "split": "validation", "dataset": "evqa"},
    )
    import_run(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.result["code"] == "easyvqa_split" and "validation" in job.error
