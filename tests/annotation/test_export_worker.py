"""An export started through the REST endpoint, run by a real `celery worker` on Redis: the
worker claims the job, writes the archive, records it; the same message delivered again
changes nothing and stores no second file.

Runs when CELERY_BROKER_URL is redis:// (CI sets it); skipped otherwise."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from annotation.models import Job
from annotation.tasks import export_run
from tests.annotation.annotator_helpers import add_annotators, member, text_campaign
from tests.annotation.export_helpers import do_work
from tests.annotation.test_celery_worker import (
    _forget_queue,
    _start_worker,
    _stop_worker,
    _wait_for,
    pytestmark,
)
from tests.conftest import client_for

_ = pytestmark  # the same skip (no Redis) and slow mark as the import's worker test


@pytest.mark.django_db(transaction=True)
def test_export_runs_on_a_real_worker_and_redelivery_stores_no_second_file(
    settings: Any, tmp_path: Path
) -> None:
    queue = f"test-io-{uuid.uuid4().hex[:12]}"
    settings.JOBS_QUEUE_OVERRIDE = queue
    settings.CELERY_TASK_ALWAYS_EAGER = False
    campaign = text_campaign(4, redundancy=1, name="Worker export")
    manager = member(campaign, "wes-manager", "manager")
    do_work(campaign, add_annotators(campaign, 3))
    log = tmp_path / "worker.log"
    proc = _start_worker(queue, log)
    try:
        r = client_for(manager).post(
            f"/api/v1/campaigns/{campaign.pk}/exports/", {"format": "parquet"}, format="json"
        )
        assert r.status_code == 202, r.content
        job = _wait_for(r.json()["id"], proc, log)
        assert job.status == Job.Status.SUCCEEDED, f"{job.error}\n{log.read_text()[-3000:]}"
        first = (job.result_file.name, job.result, job.finished_at)
        exports_dir = Path(settings.MEDIA_ROOT) / "exports"
        assert [p.name for p in exports_dir.iterdir()] == [Path(first[0]).name]

        export_run.apply_async(args=[job.pk], queue=queue)  # the message delivered again
        deadline = time.monotonic() + 60
        while (
            log.read_text(errors="replace").count("export_run[") < 4 and time.monotonic() < deadline
        ):
            time.sleep(0.25)  # received + succeeded, twice
        assert log.read_text(errors="replace").count("export_run[") >= 4
        job.refresh_from_db()
        assert (job.result_file.name, job.result, job.finished_at) == first
        assert [p.name for p in exports_dir.iterdir()] == [Path(first[0]).name]
    finally:
        _stop_worker(proc)
        _forget_queue(queue)
