"""Celery tasks of the campaign domain (docs/architecture.md "Conventions"): each takes a job's primary key, claims it
with a conditional update (so a redelivered message does nothing), calls one service, and
records the outcome on the Job row. Routed to the `io` queue (counterpoint/celery.py)."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from annotation.importers.errors import group_errors
from annotation.models import Job
from annotation.services.imports import import_job_run
from annotation.services.jobs import job_claim, job_finish, job_log, job_progress_reporter
from counterpoint.errors import ServiceError

logger = logging.getLogger(__name__)

IMPORT_SOFT_LIMIT_S = int(getattr(settings, "CELERY_TASK_SOFT_TIME_LIMIT", 3600))
IMPORT_HARD_LIMIT_S = int(getattr(settings, "CELERY_TASK_TIME_LIMIT", 3900))
# A job row holds at most this many bad lines (a million-line file of errors stays readable);
# the count of all of them is kept beside.
MAX_ERRORS_IN_RESULT = 1000


def _capped(errors: object) -> tuple[object, int]:
    if isinstance(errors, list):
        return errors[:MAX_ERRORS_IN_RESULT], len(errors)
    return errors, 0


@shared_task(
    name="annotation.tasks.import_run",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=IMPORT_SOFT_LIMIT_S,
    time_limit=IMPORT_HARD_LIMIT_S,
    ignore_result=True,
)
def import_run(job_id: int) -> None:
    """Run import job `job_id`. Safe to run twice: only the claiming run works, and a job left
    RUNNING by a worker that died (older than the hard time limit) can be claimed again;
    the import itself is all-or-nothing, so a re-run starts clean."""
    if not job_claim(job_id=job_id, stale_after_s=IMPORT_HARD_LIMIT_S + 60):
        return
    job = Job.objects.select_related("created_by").get(pk=job_id)
    job_log(
        job_id=job_id,
        message=f"import started ({job.params.get('format')} into {job.params.get('dataset')!r})",
    )
    try:
        report = import_job_run(
            job=job,
            progress=job_progress_reporter(job_id=job_id),
            log=lambda msg: job_log(job_id=job_id, message=msg),
        )
    except ServiceError as exc:
        job_log(job_id=job_id, message=f"failed: {exc.message}")
        details, count = _capped(exc.details)
        groups, left_off = group_errors(exc.details if isinstance(exc.details, list) else [])
        job_finish(
            job_id=job_id,
            status=Job.Status.FAILED,
            error=exc.message,
            result={
                "code": exc.code,
                "details": details,
                "details_total": count,
                "error_groups": groups,
                "error_groups_left_off": left_off,
            },
        )
        return
    except SoftTimeLimitExceeded:
        job_finish(
            job_id=job_id,
            status=Job.Status.FAILED,
            error=f"the import ran over its time limit of {IMPORT_SOFT_LIMIT_S} s; nothing was imported",
            result={"code": "job_time_limit"},
        )
        return
    except Exception as exc:
        logger.exception("import job %s crashed", job_id)
        job_finish(
            job_id=job_id,
            status=Job.Status.FAILED,
            error=f"the import stopped on an internal error ({type(exc).__name__}); nothing was imported",
            result={"code": "job_internal_error"},
        )
        return
    if report.dataset is not None:
        Job.objects.filter(pk=job_id).update(dataset=report.dataset)
    summary = (
        f"imported {report.created} examples ({report.skipped_existing} already there, "
        f"{len(report.errors)} bad lines skipped), {report.media_created} new media, "
        f"{report.media_reused} reused, in {report.seconds:.1f} s"
    )
    job_log(job_id=job_id, message=summary)
    result = report.as_dict()
    result["errors"], result["errors_total"] = _capped(result["errors"])
    job_finish(job_id=job_id, status=Job.Status.SUCCEEDED, result=result)


@shared_task(
    name="annotation.tasks.expire_stale_leases",
    acks_late=True,
    soft_time_limit=60,
    time_limit=90,
    ignore_result=True,
)
def expire_stale_leases() -> int:
    """Periodic sweep (celery beat, every minute): leases past `expires_at` return their
    examples to the pool even when nobody calls lease in that campaign. Leasing also expires
    lazily, so this only keeps counters and dashboards current; running it twice is harmless."""
    from annotation.services.assignments import SWEEP_BATCH, assignment_expire_stale

    total = 0
    # Bounded: at most 20 batches a run; the next run picks up the rest.
    for _ in range(20):
        n = assignment_expire_stale()
        total += n
        if n < SWEEP_BATCH:
            break
    return total
