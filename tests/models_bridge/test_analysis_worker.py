"""An analysis job started through the REST endpoint and shared by two real `celery worker`
processes on Redis: the EMAP row blocks are spread over them and combined once."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from annotation.models import Job
from models_bridge.analysis.data import predicted_labels
from models_bridge.analysis.methods import emap_setup, emap_stream
from models_bridge.models import AnalysisBlock, AnalysisResult
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
def test_two_workers_share_one_emap_job(
    evqa_campaign, evqa_people, settings: Any, tmp_path: Path
) -> None:
    queue = f"test-analysis-{uuid.uuid4().hex[:12]}"
    settings.JOBS_QUEUE_OVERRIDE = queue
    settings.CELERY_TASK_ALWAYS_EAGER = False
    mv = model_register(
        dataset=evqa_campaign.dataset, kind="torchscript", location="easyvqa-cross-attention"
    )
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    procs = [_start_worker(queue, log) for log in logs]
    try:
        r = client_for(evqa_people["manager"]).post(
            f"/api/v1/campaigns/{evqa_campaign.pk}/analyses/",
            {
                "model": mv.pk,
                "methods": ["emap"],
                "params": {"block_rows": 1, "block_tasks": 3, "path": "black-box"},
            },
            format="json",
        )
        assert r.status_code == 202, r.content
        job = _wait_for(r.json()["job"]["id"], procs[0], logs[0])
        assert job.status == Job.Status.SUCCEEDED, (
            f"{job.error}\n{logs[0].read_text(errors='replace')[-4000:]}"
        )
        blocks = AnalysisBlock.objects.filter(job=job, block__gte=0)
        assert blocks.count() == 12
        assert set(blocks.values_list("status", flat=True)) == {AnalysisBlock.Status.DONE}
        result = AnalysisResult.objects.get(job=job, method="emap").result
        assert result["variant"] == "exact black-box"
        data, pairs = emap_setup(campaign=evqa_campaign, model_version=mv, params={})
        direct = emap_stream(pairs, n=data.n, block_rows=12, progress=lambda d, t: None)
        assert [e["predicted_emap"] for e in result["examples"]] == predicted_labels(
            mv, direct.emap
        )
        scores = np.array([e["interaction"] for e in result["examples"]])
        np.testing.assert_allclose(
            scores, np.linalg.norm(direct.logits - direct.emap, axis=1), atol=1e-4
        )
    finally:
        for proc in procs:
            _stop_worker(proc)
        _forget_queue(queue)
