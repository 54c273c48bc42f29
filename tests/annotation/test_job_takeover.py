"""A job whose worker died is taken over by the next delivery of its task, exactly once
(heartbeat + lease on the job row); the lost run's late writes match nothing. (Resuming a
scoring job whose worker is gone: tests/models_bridge/test_bulk.py.)"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from annotation.job_runner import JobOutcome, JobRun, run_job
from annotation.models import Job
from annotation.services.jobs import (
    job_claim,
    job_create,
    job_finish,
    job_heartbeat,
    job_lease_s,
    job_progress,
)
from annotation.tasks import import_run
from tests.conftest import requires_postgres
from tests.factories import UserFactory


def _import_job() -> Job:
    return job_create(
        kind=Job.Kind.IMPORT,
        created_by=UserFactory(),
        params={"format": "easyvqa", "split": "test", "limit": 5, "seed": 0, "dataset": "evqa"},
    )


def _claimed_by_a_dead_worker(job: Job) -> str:
    """The state a worker that was SIGKILLed leaves: it claimed the job, beat once, and then
    nothing for longer than the lease."""
    long_ago = timezone.now() - timedelta(seconds=3 * job_lease_s())
    token = job_claim(job_id=job.pk, now=long_ago)
    assert token is not None
    return token


@pytest.mark.django_db
def test_a_dead_workers_job_is_taken_over_by_the_next_delivery_exactly_once() -> None:
    job = _import_job()
    dead = _claimed_by_a_dead_worker(job)

    import_run(job.pk)  # the redelivered message, run by the next worker

    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.result["created"] == 5 and job.dataset.examples.count() == 5
    assert any("taken over" in line["message"] for line in job.log)
    assert job.claim_token != dead
    # The lost worker, were it only paused, can neither report nor overwrite the result.
    assert job_progress(job_id=job.pk, done=1, total=5, token=dead) is False
    assert job_finish(job_id=job.pk, status=Job.Status.FAILED, error="late", token=dead) is False
    finished = job.finished_at
    import_run(job.pk)  # a further delivery finds it finished
    job.refresh_from_db()
    assert (job.status, job.finished_at, job.dataset.examples.count()) == (
        Job.Status.SUCCEEDED,
        finished,
        5,
    )


@pytest.mark.django_db
def test_a_live_run_keeps_its_job_and_two_takeovers_have_one_winner() -> None:
    job = _import_job()
    live = job_claim(job_id=job.pk)
    assert live is not None
    import_run(job.pk)  # a duplicate delivery while the run beats: nothing happens
    job.refresh_from_db()
    assert (job.status, job.claim_token, job.dataset) == (Job.Status.RUNNING, live, None)

    later = timezone.now() + timedelta(seconds=2 * job_lease_s())  # no beat since: lease over
    first = job_claim(job_id=job.pk, now=later)
    second = job_claim(job_id=job.pk, now=later)
    assert first is not None and second is None
    assert job_heartbeat(job_id=job.pk, token=live) is False  # the old run learns it lost


@pytest.mark.django_db
def test_a_run_that_lost_its_lease_stops_without_writing_the_outcome() -> None:
    job = _import_job()
    seen: dict[str, Any] = {}

    def work(run: JobRun) -> JobOutcome:
        # Meanwhile this worker looked dead and another delivery took the job over.
        later = timezone.now() + timedelta(seconds=2 * job_lease_s())
        seen["winner"] = job_claim(job_id=job.pk, now=later)
        run.progress(1, 2)  # raises JobLeaseLost: the job is the other run's now
        raise AssertionError("not reached")

    status = run_job(
        task=None,
        job_id=job.pk,
        what="the test",
        start_message=lambda _job: "started",
        work=work,
        soft_limit_s=60,
        hard_limit_s=90,
        on_failure="nothing happened",
    )
    job.refresh_from_db()
    assert status is None
    assert (job.status, job.claim_token) == (Job.Status.RUNNING, seen["winner"])
    assert job_finish(job_id=job.pk, status=Job.Status.SUCCEEDED, token=seen["winner"])


@requires_postgres()
@pytest.mark.django_db(transaction=True)
def test_concurrent_takeovers_on_postgres_have_exactly_one_winner() -> None:
    job = _import_job()
    _claimed_by_a_dead_worker(job)
    n = 4
    barrier = threading.Barrier(n)
    tokens: list[str | None] = []
    lock = threading.Lock()

    def take() -> None:
        try:
            barrier.wait(timeout=10)
            token = job_claim(job_id=job.pk)
            with lock:
                tokens.append(token)
        finally:
            connection.close()

    threads = [threading.Thread(target=take) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    winners = [t for t in tokens if t is not None]
    assert len(tokens) == n and len(winners) == 1
    job.refresh_from_db()
    assert job.claim_token == winners[0]


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_thread_keeps_a_long_step_from_looking_dead() -> None:
    from annotation.job_runner import _Heartbeat

    job = _import_job()
    token = _claimed_by_a_dead_worker(job)  # as if the step had run for three leases
    stale = Job.objects.get(pk=job.pk).heartbeat_at
    with _Heartbeat(job_id=job.pk, token=token, interval_s=0.01):
        for _ in range(1000):  # bounded; the thread beats within a few intervals
            if Job.objects.get(pk=job.pk).heartbeat_at != stale:
                break
            threading.Event().wait(0.01)
    assert Job.objects.get(pk=job.pk).heartbeat_at != stale
    assert job_claim(job_id=job.pk) is None  # the lease is alive again


@pytest.mark.django_db
def test_an_import_taken_over_leaves_its_uploads_to_the_new_run(tmp_path: Any) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from annotation.services.imports import _staging_dir, import_job_create, import_job_run
    from annotation.services.jobs import JobLeaseLost
    from tests.factories import CampaignFactory, MembershipFactory

    manager = UserFactory(username="tia-takeover")
    MembershipFactory(campaign=CampaignFactory(), user=manager, role="manager")
    body = b'{"external_id": "a", "values": {"text": "is it red?"}}\n'
    job = import_job_create(
        created_by=manager,
        fmt="jsonl",
        dataset_name="taken",
        manifest=SimpleUploadedFile("m.jsonl", body),
        modalities="text:text",
        label_space="yes,no",
    )
    staging = _staging_dir(job.params["staging"])

    def lost(done: int, total: int) -> None:
        raise JobLeaseLost("taken over")

    with pytest.raises(JobLeaseLost):
        import_job_run(job=job, progress=lost)
    assert staging.exists()
    report = import_job_run(job=job)  # the run that took over
    assert report.created == 1 and not staging.exists()
