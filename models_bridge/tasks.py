"""Celery tasks of the model bridge, on the `scoring` queue (counterpoint/celery.py)."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings

from annotation.job_runner import JobOutcome, JobRun, run_job

SOFT_LIMIT_S = int(getattr(settings, "CELERY_TASK_SOFT_TIME_LIMIT", 3600))
HARD_LIMIT_S = int(getattr(settings, "CELERY_TASK_TIME_LIMIT", 3900))


def _bulk_work(run: JobRun) -> JobOutcome:
    from models_bridge.adapters.torchscript import configure_torch_threads
    from models_bridge.services.bulk import bulk_score_run

    configure_torch_threads()
    summary = bulk_score_run(job=run.job, progress=run.progress)
    return JobOutcome(
        result=summary,
        message=f"done: {summary['computed']} computed, {summary['cached']} from the cache",
    )


@shared_task(
    bind=True,
    name="models_bridge.tasks.bulk_score",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=SOFT_LIMIT_S,
    time_limit=HARD_LIMIT_S,
    ignore_result=True,
)
def bulk_score_task(self: Any, job_id: int) -> None:
    """Run scoring job `job_id`. Only the run that claims the job works; a job whose worker
    died (heartbeat older than the lease) is taken over by the next delivery and resumes from
    its cursor; scores already stored are never recomputed. A failed job keeps its cursor."""
    run_job(
        task=self,
        job_id=job_id,
        what="bulk scoring",
        start_message=lambda job: f"bulk scoring started: {job.params}",
        work=_bulk_work,
        soft_limit_s=SOFT_LIMIT_S,
        hard_limit_s=HARD_LIMIT_S,
        on_failure="resume to continue from the cursor",
        keep_result_on_failure=True,
    )


EDIT_SCORE_RETRIES = 3


@shared_task(
    bind=True,
    name="models_bridge.tasks.edit_score",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=300,
    time_limit=360,
    ignore_result=True,
)
def edit_score_task(self: Any, edit_id: int) -> None:
    """Score a newly stored edit against every campaign model (sent on commit by the submit).
    Safe to run twice: only missing keys are computed, from the Score cache when present, and
    written per key under a row lock. A model that is down is retried with backoff a few
    times; after that its score stays pending until a bulk job fills it."""
    from models_bridge.adapters.torchscript import configure_torch_threads
    from models_bridge.services.bulk import edit_score

    configure_torch_threads()
    outcome = edit_score(edit_id=edit_id)
    if outcome["unavailable"] and not (self.request.called_directly or self.request.is_eager):
        if self.request.retries < EDIT_SCORE_RETRIES:
            raise self.retry(countdown=30 * 2**self.request.retries, max_retries=EDIT_SCORE_RETRIES)


ANALYSIS_SOFT_LIMIT_S = SOFT_LIMIT_S
ANALYSIS_HARD_LIMIT_S = HARD_LIMIT_S


def _analysis_work(run: JobRun) -> JobOutcome:
    from models_bridge.adapters.torchscript import configure_torch_threads
    from models_bridge.services.analysis import analysis_run

    configure_torch_threads()
    summary = analysis_run(job=run.job, progress=run.progress, log=run.log)
    return JobOutcome(result=summary, message=f"done: {', '.join(summary['methods'])}")


@shared_task(
    bind=True,
    name="analysis.run",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=ANALYSIS_SOFT_LIMIT_S,
    time_limit=ANALYSIS_HARD_LIMIT_S,
    ignore_result=True,
)
def analysis_run_task(self: Any, job_id: int) -> None:
    """Run analysis job `job_id` (routed to the `analysis` queue by its name). Safe to run
    twice: the claim lets one run work, a method whose result is stored is not run again, and
    EMAP row blocks already done are read back, not recomputed."""
    run_job(
        task=self,
        job_id=job_id,
        what="the analysis",
        start_message=lambda job: (
            f"analysis started: {', '.join(job.params.get('methods') or [])} "
            f"on {job.params.get('model')}"
        ),
        work=_analysis_work,
        soft_limit_s=ANALYSIS_SOFT_LIMIT_S,
        hard_limit_s=ANALYSIS_HARD_LIMIT_S,
        on_failure="the results and EMAP blocks stored so far are kept; start it again to resume",
    )


@shared_task(
    name="analysis.emap_blocks",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=ANALYSIS_SOFT_LIMIT_S,
    time_limit=ANALYSIS_HARD_LIMIT_S,
    ignore_result=True,
)
def analysis_emap_blocks_task(job_id: int) -> int:
    """Help a running analysis job with its EMAP row blocks: claim and compute blocks until
    none is left (models_bridge.services.analysis). A message that arrives after the job
    finished, or before its blocks exist, does nothing."""
    from models_bridge.adapters.torchscript import configure_torch_threads
    from models_bridge.services.analysis import emap_blocks_help

    configure_torch_threads()
    return emap_blocks_help(job_id=job_id)
