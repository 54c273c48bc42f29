"""Celery tasks of the model bridge, on the `scoring` queue (counterpoint/celery.py)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from annotation.models import Job
from annotation.services.jobs import job_claim, job_finish, job_log, job_progress_reporter
from counterpoint.errors import ServiceError

SOFT_LIMIT_S = int(getattr(settings, "CELERY_TASK_SOFT_TIME_LIMIT", 3600))
HARD_LIMIT_S = int(getattr(settings, "CELERY_TASK_TIME_LIMIT", 3900))


@shared_task(
    name="models_bridge.tasks.bulk_score",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=SOFT_LIMIT_S,
    time_limit=HARD_LIMIT_S,
    ignore_result=True,
)
def bulk_score_task(job_id: int) -> None:
    """Run scoring job `job_id`. Only the run that claims the job works; a job left RUNNING
    by a dead worker is claimed again after the hard time limit and resumes from its
    cursor; scores already stored are never recomputed."""
    from celery.exceptions import SoftTimeLimitExceeded

    from models_bridge.adapters.torchscript import configure_torch_threads
    from models_bridge.services.bulk import bulk_score_run

    if not job_claim(job_id=job_id, stale_after_s=HARD_LIMIT_S + 60):
        return
    configure_torch_threads()
    job = Job.objects.get(pk=job_id)
    job_log(job_id=job_id, message=f"bulk scoring started: {job.params}")
    try:
        summary = bulk_score_run(job=job, progress=job_progress_reporter(job_id=job_id))
    except Exception as exc:
        # Record the failure and keep the cursor in job.result, so a resume continues there.
        if isinstance(exc, ServiceError):
            message = exc.message
        elif isinstance(exc, SoftTimeLimitExceeded):
            message = "stopped at the time limit; resume to continue from the cursor"
        else:
            message = f"{type(exc).__name__}: {exc}"
        job_log(job_id=job_id, message=f"failed: {message}")
        cursor_state = Job.objects.values_list("result", flat=True).get(pk=job_id)
        job_finish(job_id=job_id, status=Job.Status.FAILED, error=message, result=cursor_state)
        if isinstance(exc, ServiceError | SoftTimeLimitExceeded):
            return
        raise  # an unforeseen bug: let the worker log it with its traceback
    job_log(
        job_id=job_id,
        message=f"done: {summary['computed']} computed, {summary['cached']} from the cache",
    )
    job_finish(job_id=job_id, status=Job.Status.SUCCEEDED, result=summary)
