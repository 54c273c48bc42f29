"""A real `celery worker` is SIGKILLed in the middle of an import job; a second worker takes
the job over once its lease ran out and finishes it exactly once.

The broker gives an unacknowledged message back only after its visibility timeout (an hour on
Redis by default), so the test sends the task's message again itself, as that redelivery
would. The second worker may get it while the dead run's lease is still fresh: it then checks
back after one lease, which is the path a too-early redelivery takes in production too."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotation.models import Example, Job
from tests.annotation.test_celery_worker import (
    REAL_WORKER_MARKS,
    _forget_queue,
    _start_worker,
    _stop_worker,
    _wait_for,
)
from tests.factories import CampaignFactory, MembershipFactory, UserFactory

LINES = 40_000
LEASE_S = 3

pytestmark = REAL_WORKER_MARKS


@pytest.mark.django_db(transaction=True)
def test_a_killed_workers_job_is_finished_once_by_the_next_worker(
    api: Any, settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from annotation.tasks import import_run

    queue = f"test-takeover-{uuid.uuid4().hex[:12]}"
    settings.JOBS_QUEUE_OVERRIDE = queue
    settings.CELERY_TASK_ALWAYS_EAGER = False
    monkeypatch.setenv("JOB_LEASE_SECONDS", str(LEASE_S))  # read by the worker processes
    manager = UserFactory(username="kim-killed-worker")
    MembershipFactory(campaign=CampaignFactory(), user=manager, role="manager")
    body = "\n".join(
        json.dumps({"external_id": f"q{i}", "values": {"text": f"is shape {i} red?"}})
        for i in range(LINES)
    )
    first = _start_worker(queue, tmp_path / "first.log")
    second = None
    try:
        r = api(manager).post(
            "/api/v1/imports/",
            {
                "format": "jsonl",
                "dataset": "killed-worker",
                "modalities": "text:text",
                "labels": "yes,no",
                "manifest": SimpleUploadedFile("m.jsonl", body.encode()),
            },
            format="multipart",
        )
        assert r.status_code == 202, r.content
        job_id = r.json()["id"]
        deadline = time.monotonic() + 60
        # Kill once the run has started its work (claimed and logged its start), not in the
        # instant between the claim and the first log line.
        while not any(
            e["message"].startswith("import started")
            for e in Job.objects.values_list("log", flat=True).get(pk=job_id) or []
        ):
            assert time.monotonic() < deadline, (tmp_path / "first.log").read_text()[-3000:]
            time.sleep(0.01)
        first.kill()  # SIGKILL mid-job: no cleanup, no finish, the message unacknowledged
        first.wait(timeout=10)
        dead = Job.objects.get(pk=job_id)
        assert dead.status == Job.Status.RUNNING, "the import finished before the kill"
        assert not Example.objects.filter(dataset__name="killed-worker").exists()

        second = _start_worker(queue, tmp_path / "second.log")
        import_run.apply_async(args=[job_id], queue=queue)  # the broker's redelivery
        job = _wait_for(job_id, second, tmp_path / "second.log")
        assert job.status == Job.Status.SUCCEEDED, (
            f"{job.error}\n{(tmp_path / 'second.log').read_text(errors='replace')[-4000:]}"
        )
        assert job.claim_token != dead.claim_token
        assert job.result["created"] == LINES
        assert Example.objects.filter(dataset__name="killed-worker").count() == LINES
        messages = [entry["message"] for entry in job.log]
        assert sum("taken over" in m for m in messages) == 1
        assert sum(m.startswith("import started") for m in messages) == 2
        assert not (Path(settings.MEDIA_ROOT) / "_imports").exists()
    finally:
        if second is not None:
            _stop_worker(second)
        _stop_worker(first)
        _forget_queue(queue)
