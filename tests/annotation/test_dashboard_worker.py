"""A big campaign's dashboard refreshed by a real `celery worker` on Redis (not eager): the
request serves "computing" and enqueues one refresh after its commit, the worker claims the
snapshot, computes and stores the figures, and the next request serves them. Skipped
without a Redis broker (tests/annotation/test_celery_worker.py)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from annotation.models import DashboardSnapshot
from tests.annotation.test_celery_worker import (
    JOB_TIMEOUT_S,
    REAL_WORKER_MARKS,
    _forget_queue,
    _start_worker,
    _stop_worker,
)
from tests.annotation.test_dashboard_api import _annotate, _world
from tests.conftest import client_for

pytestmark = [*REAL_WORKER_MARKS, pytest.mark.django_db(transaction=True)]


def test_worker_computes_a_big_campaigns_figures(settings: Any, tmp_path: Path) -> None:
    campaign, manager, annotators = _world()
    for user in annotators:
        _annotate(campaign, user, "no", "yes")
    settings.DASHBOARD_INLINE_MAX_ANNOTATIONS = 1  # three annotations: a "big" campaign
    queue = f"test-dash-{uuid.uuid4().hex[:12]}"
    settings.JOBS_QUEUE_OVERRIDE = queue
    log = tmp_path / "worker.log"
    proc = _start_worker(queue, log)
    try:
        client = client_for(manager)
        url = f"/api/v1/campaigns/{campaign.pk}/dashboard/"
        first = client.get(url).json()
        assert first["snapshot"]["state"] == "computing" and first["snapshot"]["refreshing"]
        deadline = time.monotonic() + JOB_TIMEOUT_S
        snap = DashboardSnapshot.objects.get(campaign=campaign)
        while snap.computed_at is None and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text(errors="replace")[-4000:]
            time.sleep(0.25)
            snap.refresh_from_db()
        assert snap.computed_at is not None, log.read_text(errors="replace")[-4000:]
        assert snap.claim_token == "" and snap.requested_at is None
        body = client.get(url).json()
        assert body["snapshot"]["state"] == "ready"
        assert body["progress"]["annotations"] == 3
    finally:
        _stop_worker(proc)
        _forget_queue(queue)
