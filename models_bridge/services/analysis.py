"""Analysis jobs (docs/analysis.md): start one for (campaign, model, methods), run its
methods in a worker, store each method's result once, and share an exact EMAP grid among
any number of workers through the row-block table.

Row blocks: the coordinator (the run holding the job) writes one AnalysisBlock row per
block plus the combining row (block -1), sends helper tasks, and then works on blocks
itself like every helper: a block is claimed by a conditional update (pending, or running
with a claim older than the job lease: its worker died), computed, and stored with its
partial sums by the claim's token only. A done block is never claimed again, so a resumed
job recomputes nothing it finished. When every block is done, the combining row is claimed
the same way and the combined f and EMAP are stored on it: the combine runs once, and a
coordinator taken over after it reads the stored figures."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from annotation.models import Campaign, Job
from annotation.services.jobs import job_create, job_enqueue, job_lease_s
from counterpoint.errors import ValidationFailed
from models_bridge.analysis.emap import BlockPartial, EmapSums, combine, row_blocks
from models_bridge.analysis.pairs import Pairs
from models_bridge.models import AnalysisBlock, AnalysisResult, ModelVersion
from models_bridge.services.registry import model_fits_dataset

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
# Units of job progress per method, so a job of several methods moves evenly.
METHOD_UNITS = 1000
POLL_S = 0.2


def analysis_start(
    *,
    campaign: Campaign,
    model_version: ModelVersion,
    methods: list[str],
    params: dict[str, Any] | None,
    created_by: Any,
    enqueue: bool = True,
) -> Job:
    """Create an analysis job and (with `enqueue`) send it to an `analysis` worker on commit.
    Unknown methods are a 400 naming the known ones; nothing is stored then."""
    from models_bridge.analysis.registry import methods_check, methods_start_check

    names = methods_check(list(methods))
    if params is not None and not isinstance(params, dict):
        raise ValidationFailed("params must be an object", code="analysis_params")
    model_fits_dataset(model_version=model_version, dataset=campaign.dataset)
    methods_start_check(
        names=names, campaign=campaign, model_version=model_version, params=dict(params or {})
    )
    job = job_create(
        kind=Job.Kind.ANALYSIS,
        created_by=created_by,
        params={
            "model_version": model_version.pk,
            "model": str(model_version),
            "methods": names,
            "params": dict(params or {}),
        },
        campaign=campaign,
        dataset=campaign.dataset,
    )
    if enqueue:
        from models_bridge.tasks import analysis_run_task

        job_enqueue(job=job, task=analysis_run_task)
    return job


def _job_scope(job: Job) -> tuple[Campaign, ModelVersion, dict[str, Any]]:
    campaign = Campaign.objects.select_related("dataset").get(pk=int(job.campaign_id or 0))
    mv = ModelVersion.objects.select_related("dataset").get(pk=int(job.params["model_version"]))
    return campaign, mv, dict(job.params.get("params") or {})


def analysis_result_store(*, job_id: int, method: str, result: dict[str, Any]) -> AnalysisResult:
    """Store a method's result once; a second store of the same (job, method) keeps the first."""
    AnalysisResult.objects.bulk_create(
        [AnalysisResult(job_id=job_id, method=method, result=result)], ignore_conflicts=True
    )
    return AnalysisResult.objects.get(job_id=job_id, method=method)


def analysis_run(*, job: Job, progress: Progress, log: Callable[[str], None]) -> dict[str, Any]:
    """Run the job's methods in order; a method with a stored result (a resumed job) is not
    run again."""
    from models_bridge.analysis.registry import METHODS, methods_check

    campaign, mv, params = _job_scope(job)
    names = methods_check(list(job.params.get("methods") or []))
    done = {
        r.method: r
        for r in AnalysisResult.objects.filter(job_id=job.pk).only("id", "method", "result")
    }
    total = METHOD_UNITS * len(names)
    summary: dict[str, Any] = {"model": str(mv), "methods": names, "results": {}}
    for k, name in enumerate(names):
        row = done.get(name)
        if row is None:

            def method_progress(d: int, t: int, k: int = k) -> None:
                progress(k * METHOD_UNITS + (METHOD_UNITS * d) // max(1, t), total)

            started = time.perf_counter()
            result = METHODS[name](
                campaign=campaign,
                model_version=mv,
                params={**params, "job_id": job.pk},
                progress=method_progress,
            )
            row = analysis_result_store(job_id=job.pk, method=name, result=result)
            log(f"{name}: done in {time.perf_counter() - started:.1f} s ({result.get('variant')})")
        else:
            log(f"{name}: stored by an earlier run, not run again")
        progress((k + 1) * METHOD_UNITS, total)
        summary["results"][name] = {"id": row.pk, "variant": row.result.get("variant")}
    return summary


def analysis_results(*, job: Job) -> list[AnalysisResult]:
    return list(AnalysisResult.objects.filter(job_id=job.pk).order_by("id"))


# --- row blocks -------------------------------------------------------------------------


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def emap_blocks_ensure(*, job_id: int, n: int, block_rows: int) -> int:
    """The job's block rows (and its combining row), written once; returns the block count."""
    blocks = row_blocks(n, block_rows)
    rows = [
        AnalysisBlock(job_id=job_id, block=k, start=s, stop=e) for k, (s, e) in enumerate(blocks)
    ]
    rows.append(AnalysisBlock(job_id=job_id, block=AnalysisBlock.COMBINE, start=0, stop=n))
    AnalysisBlock.objects.bulk_create(rows, ignore_conflicts=True)
    have = AnalysisBlock.objects.filter(job_id=job_id, block__gte=0).count()
    if have != len(blocks):
        raise ValidationFailed(
            f"job {job_id} already has {have} EMAP blocks, not {len(blocks)}: its parameters "
            "changed; start a new job",
            code="analysis_blocks_mismatch",
        )
    return len(blocks)


def _claimable(now: Any) -> Q:
    cutoff = now - timedelta(seconds=job_lease_s())
    return Q(status=AnalysisBlock.Status.PENDING) | Q(
        status=AnalysisBlock.Status.RUNNING, claimed_at__lt=cutoff
    )


def emap_block_claim(
    *, job_id: int, combine_step: bool = False
) -> tuple[AnalysisBlock, str] | None:
    """Claim the next block (or the combining row) by a conditional update; None when
    nothing is claimable now."""
    now = timezone.now()
    qs = AnalysisBlock.objects.filter(_claimable(now), job_id=job_id)
    qs = qs.filter(block=AnalysisBlock.COMBINE) if combine_step else qs.filter(block__gte=0)
    for blk in qs.order_by("block").only("id", "block", "start", "stop")[:8]:
        token = uuid.uuid4().hex
        won = (
            AnalysisBlock.objects.filter(_claimable(now), pk=blk.pk).update(
                status=AnalysisBlock.Status.RUNNING, claim_token=token, claimed_at=now
            )
            == 1
        )
        if won:
            return blk, token
    return None


def emap_block_store(*, block_id: int, token: str, data: bytes, seconds: float) -> bool:
    """Mark a claimed block done with its partial sums; False when the claim was lost."""
    return (
        AnalysisBlock.objects.filter(
            pk=block_id, status=AnalysisBlock.Status.RUNNING, claim_token=token
        ).update(
            status=AnalysisBlock.Status.DONE,
            partial=data,
            seconds=seconds,
            computed_by=_worker_name(),
        )
        == 1
    )


def emap_blocks_work(*, job_id: int, pairs: Pairs, n: int) -> int:
    """Claim and compute blocks of the job until none is claimable; returns how many."""
    from models_bridge.analysis.methods import compute_block

    count = 0
    while True:
        if not Job.objects.filter(pk=job_id, status=Job.Status.RUNNING).exists():
            return count
        claimed = emap_block_claim(job_id=job_id)
        if claimed is None:
            return count
        blk, token = claimed
        started = time.perf_counter()
        partial = compute_block(pairs, start=blk.start, stop=blk.stop, n=n)
        if emap_block_store(
            block_id=blk.pk,
            token=token,
            data=partial.packed(),
            seconds=time.perf_counter() - started,
        ):
            count += 1


def _combined_bytes(sums: EmapSums) -> bytes:
    return np.concatenate([sums.logits.ravel(), sums.emap.ravel()]).astype(np.float64).tobytes()


def _combined_from(data: bytes, n: int) -> EmapSums:
    arr = np.frombuffer(data, dtype=np.float64)
    half = arr.size // 2
    return EmapSums(logits=arr[:half].reshape(n, -1), emap=arr[half:].reshape(n, -1))


def emap_blocks_coordinate(
    *, job_id: int, pairs: Pairs, n: int, block_rows: int, progress: Progress
) -> tuple[EmapSums, str]:
    """The job's EMAP through the block table (see the module docstring)."""
    from models_bridge.tasks import analysis_emap_blocks_task

    total = emap_blocks_ensure(job_id=job_id, n=n, block_rows=block_rows)
    job = Job.objects.only("id", "params").get(pk=job_id)
    helpers = int((job.params.get("params") or {}).get("block_tasks", 0) or 0)
    pending = AnalysisBlock.objects.filter(
        job_id=job_id, block__gte=0, status=AnalysisBlock.Status.PENDING
    ).count()
    queue = getattr(settings, "JOBS_QUEUE_OVERRIDE", "") or None
    options: dict[str, Any] = {"queue": queue} if queue else {}
    for _ in range(min(helpers, pending)):
        # robust: a broker that is down costs only the help, this run does the blocks itself.
        transaction.on_commit(
            lambda: analysis_emap_blocks_task.apply_async(args=[job_id], **options), robust=True
        )
    while True:
        emap_blocks_work(job_id=job_id, pairs=pairs, n=n)
        done = AnalysisBlock.objects.filter(
            job_id=job_id, block__gte=0, status=AnalysisBlock.Status.DONE
        ).count()
        progress(done, total)
        if done == total:
            break
        time.sleep(POLL_S)  # other workers hold the remaining blocks
    c = len(pairs.adapter.labels)
    while True:
        row = AnalysisBlock.objects.get(job_id=job_id, block=AnalysisBlock.COMBINE)
        if row.status == AnalysisBlock.Status.DONE and row.partial is not None:
            return _combined_from(bytes(row.partial), n), "stored combine"
        claimed = emap_block_claim(job_id=job_id, combine_step=True)
        if claimed is not None:
            break
        time.sleep(POLL_S)
    blk, token = claimed
    partials = [
        BlockPartial.from_bytes(start=b.start, stop=b.stop, n=n, c=c, data=bytes(b.partial or b""))
        for b in AnalysisBlock.objects.filter(job_id=job_id, block__gte=0).only(
            "start", "stop", "partial"
        )
    ]
    started = time.perf_counter()
    sums = combine(partials, n=n)
    emap_block_store(
        block_id=blk.pk,
        token=token,
        data=_combined_bytes(sums),
        seconds=time.perf_counter() - started,
    )
    workers = sorted(
        set(
            AnalysisBlock.objects.filter(job_id=job_id, block__gte=0).values_list(
                "computed_by", flat=True
            )
        )
    )
    return sums, f"{total} row blocks over {len(workers)} worker process(es)"


def emap_blocks_help(*, job_id: int) -> int:
    """A helper task's work: compute the job's remaining blocks; returns how many."""
    from models_bridge.analysis.methods import emap_setup

    job = Job.objects.filter(pk=job_id, status=Job.Status.RUNNING).first()
    if job is None or not AnalysisBlock.objects.filter(job_id=job_id).exists():
        return 0
    campaign, mv, params = _job_scope(job)
    data, pairs = emap_setup(campaign=campaign, model_version=mv, params=params)
    return emap_blocks_work(job_id=job_id, pairs=pairs, n=data.n)
