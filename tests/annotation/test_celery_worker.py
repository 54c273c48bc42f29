"""An import through the REST endpoint, run by a real `celery worker` process on Redis (not
eager mode): the worker sees the committed Job, claims it, imports, and records the result.

Runs when CELERY_BROKER_URL is redis:// (CI sets redis://127.0.0.1:6379/0); skipped otherwise.
The worker listens on a queue unique to this run, so stale messages from other runs or other
workers on the same broker never reach it and it never steals theirs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from annotation.models import Example, Job, Media
from tests.factories import CampaignFactory, MembershipFactory, UserFactory
from tests.fixtures_import.builders import data_uri, line, png

BROKER = os.environ.get("CELERY_BROKER_URL", "")
ROOT = Path(__file__).resolve().parents[2]
JOB_TIMEOUT_S = 120

# Every real-worker test module uses these marks: a worker needs a broker other processes
# can reach, and the embedded filesystem one is per checkout.
REAL_WORKER_MARKS = [
    pytest.mark.skipif(
        not BROKER.startswith("redis://"),
        reason="needs a Redis broker: set CELERY_BROKER_URL=redis://127.0.0.1:6379/0 (CI does)",
    ),
    pytest.mark.slow,
]
pytestmark = REAL_WORKER_MARKS


def _database_url() -> str:
    """The URL of the database this test uses (pytest-django's test database, e.g. test_<name>
    on PostgreSQL), so the worker reads and writes the same rows."""
    conf = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{conf['NAME']}"
    if connection.vendor == "postgresql":
        auth = quote(conf.get("USER") or "")
        if conf.get("PASSWORD"):
            auth += ":" + quote(conf["PASSWORD"])
        host = conf.get("HOST") or "127.0.0.1"
        port = conf.get("PORT") or 5432
        return f"postgres://{auth}@{host}:{port}/{conf['NAME']}"
    pytest.skip(f"no worker database URL for vendor {connection.vendor}")
    return ""


def _start_worker(queue: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "counterpoint.settings_test",
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": BROKER,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "CELERY_TASK_ALWAYS_EAGER": "0",
    }
    cmd = [
        str(Path(sys.executable).with_name("celery")),
        "-A", "counterpoint", "worker",
        "-Q", queue,
        "--pool", "solo", "--concurrency", "1",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        "--hostname", f"{queue}@localhost",
        "--loglevel", "INFO",
    ]  # fmt: skip
    with log.open("wb") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop_worker(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()  # warm shutdown
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _forget_queue(queue: str) -> None:
    """Remove the queue's keys from Redis (best effort)."""
    try:
        import redis

        client = redis.Redis.from_url(BROKER)
        client.delete(queue, f"_kombu.binding.{queue}")
        client.close()
    except Exception:
        pass


def _wait_for(job_id: int, proc: subprocess.Popen[bytes], log: Path) -> Job:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        job = Job.objects.get(pk=job_id)
        if job.status in (Job.Status.SUCCEEDED, Job.Status.FAILED):
            return job
        if proc.poll() is not None:
            pytest.fail(
                f"the worker exited with {proc.returncode}:\n{log.read_text(errors='replace')[-4000:]}"
            )
        time.sleep(0.25)
    pytest.fail(
        f"job {job_id} did not finish in {JOB_TIMEOUT_S} s; worker log:\n{log.read_text(errors='replace')[-4000:]}"
    )


@pytest.mark.django_db(transaction=True)
def test_import_through_rest_runs_on_a_real_worker(api: Any, settings: Any, tmp_path: Path) -> None:
    queue = f"test-io-{uuid.uuid4().hex[:12]}"
    settings.JOBS_QUEUE_OVERRIDE = queue
    settings.CELERY_TASK_ALWAYS_EAGER = False
    manager = UserFactory(username="wendy-worker-manager")
    MembershipFactory(campaign=CampaignFactory(), user=manager, role="manager")
    log = tmp_path / "worker.log"
    proc = _start_worker(queue, log)
    try:
        body = "\n".join(
            json.dumps(r)
            for r in [
                line("a", image=data_uri(png())),
                line("b", image=data_uri(png((0, 0, 255))), label="no"),
                line("c", image=data_uri(png())),
            ]
        )
        from django.core.files.uploadedfile import SimpleUploadedFile

        r = api(manager).post(
            "/api/v1/imports/",
            {
                "format": "jsonl",
                "dataset": "worker-pets",
                "modalities": "image:image,text:text",
                "labels": "yes,no",
                "manifest": SimpleUploadedFile("m.jsonl", body.encode()),
            },
            format="multipart",
        )
        assert r.status_code == 202, r.content
        job = _wait_for(r.json()["id"], proc, log)
        assert job.status == Job.Status.SUCCEEDED, (
            f"{job.error}\n{log.read_text(errors='replace')[-4000:]}"
        )
        assert job.result["created"] == 3 and job.result["media_created"] == 2
        assert job.started_at is not None and job.finished_at is not None
        assert job.dataset is not None and job.dataset.name == "worker-pets"
        assert sorted(
            Example.objects.filter(dataset=job.dataset).values_list("external_id", flat=True)
        ) == ["a", "b", "c"]
        assert Media.objects.count() == 2
        for media in Media.objects.all():
            assert (Path(settings.MEDIA_ROOT) / media.file.name).is_file()
        assert not (Path(settings.MEDIA_ROOT) / "_imports").exists()
        assert f"{queue}@localhost" in log.read_text(errors="replace")
    finally:
        _stop_worker(proc)
        _forget_queue(queue)
