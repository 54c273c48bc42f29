"""The one scaffolding of every Job task (docs/architecture.md "Conventions"): claim the job (a conditional update
that is also a lease), log the start, keep the lease alive while one service does the work,
and finish SUCCEEDED or FAILED with a named code. Tasks only say what their work is.

Codes of a failed job's `result["code"]`: the ServiceError's own code, `job_time_limit` (the
soft time limit struck) or `job_internal_error` (a bug; the traceback goes to the worker log).

Lost workers: a delivery that cannot claim the job because another run holds a live lease
checks back after one lease (a Celery retry), so if that run's worker dies later its job is
still taken over; a run that finds its lease taken (JobLeaseLost) stops without writing."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery.exceptions import MaxRetriesExceededError, SoftTimeLimitExceeded
from django.db import connection

from annotation.models import Job
from annotation.services.jobs import (
    JobLeaseLost,
    job_claim,
    job_finish,
    job_heartbeat,
    job_lease_s,
    job_log,
    job_progress_reporter,
)
from counterpoint.errors import ServiceError

logger = logging.getLogger(__name__)

# A job row holds at most this many detail entries (a million-line file of errors stays
# readable); the count of all of them is kept beside.
MAX_DETAILS_IN_RESULT = 1000


@dataclass
class JobRun:
    """What the work of a claimed job gets: the row, its claim token, a progress callback
    (which also renews the lease) and the job's log."""

    job: Job
    token: str
    progress: Callable[[int, int], None]

    def log(self, message: str) -> None:
        job_log(job_id=self.job.pk, message=message)


@dataclass
class JobOutcome:
    result: Any
    message: str
    # A file the work stored (relative to MEDIA_ROOT), recorded on the job with its finish;
    # `discard` removes it when the finish is refused (the job is another run's now).
    result_file: str = ""
    discard: Callable[[], None] | None = None


def capped(items: Any) -> tuple[Any, int]:
    if isinstance(items, list):
        return items[:MAX_DETAILS_IN_RESULT], len(items)
    return items, 0


class _Heartbeat:
    """Renews the lease from a thread every third of it, so a long step without progress
    reports (one slow model batch, the import's write) does not look like a dead worker.
    Only when the job row is committed: inside an open transaction (an eager run in a test)
    another connection could not see the row anyway, and progress writes renew the lease."""

    def __init__(self, *, job_id: int, token: str, interval_s: float) -> None:
        self.job_id, self.token, self.interval_s = job_id, token, interval_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"job-{job_id}-heartbeat")
        self.thread.daemon = True

    def _beat(self) -> None:
        try:
            while not self.stop.wait(self.interval_s):
                try:
                    if not job_heartbeat(job_id=self.job_id, token=self.token):
                        return  # taken over or finished: the next progress write stops the work
                except Exception:
                    logger.warning("heartbeat of job %s failed", self.job_id, exc_info=True)
        finally:
            connection.close()

    def __enter__(self) -> _Heartbeat:
        if not connection.in_atomic_block:
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=self.interval_s + 5)


def _check_back_later(task: Any, job_id: int, hard_limit_s: int) -> None:
    """This delivery found the job held by another live run. Look again after one lease, so
    a worker that dies after this point still has its job taken over; bounded by the hard
    time limit (no run lives longer). Runs called in-process (tests, eager) just return."""
    status = Job.objects.filter(pk=job_id).values_list("status", flat=True).first()
    request = getattr(task, "request", None)
    if status != Job.Status.RUNNING or request is None:
        return
    if getattr(request, "called_directly", True) or getattr(request, "is_eager", False):
        return
    lease = job_lease_s()
    try:
        raise task.retry(
            countdown=math.ceil(lease) + 1,
            max_retries=math.ceil(hard_limit_s / lease) + 2,
        )
    except MaxRetriesExceededError:
        logger.warning("job %s: gave up watching a run that outlived its hard limit", job_id)


def run_job(
    *,
    task: Any,
    job_id: int,
    what: str,
    start_message: Callable[[Job], str],
    work: Callable[[JobRun], JobOutcome],
    soft_limit_s: int,
    hard_limit_s: int,
    on_failure: str,
    keep_result_on_failure: bool = False,
    failure_result: Callable[[ServiceError], dict[str, Any]] | None = None,
) -> str | None:
    """Claim job `job_id` and run `work` on it; record the outcome on the row. Returns the
    final status, or None when this delivery did not get the job. `what` names the work in
    messages ("the import"); `on_failure` says what a failure leaves ("nothing was
    imported"). With `keep_result_on_failure`, a failed job keeps the result the work saved
    so far (a cursor to resume from), with the code added. `failure_result` adds the work's
    own figures to the result of a job refused with a ServiceError."""
    # Read before the claim only to word the log line; the claim itself decides.
    before = Job.objects.filter(pk=job_id).values_list("status", flat=True).first()
    token = job_claim(job_id=job_id)
    if token is None:
        _check_back_later(task, job_id, hard_limit_s)
        return None
    job = Job.objects.select_related("created_by").get(pk=job_id)
    if before == Job.Status.RUNNING:
        job_log(job_id=job_id, message="taken over: the previous run's worker stopped beating")
    job_log(job_id=job_id, message=start_message(job))
    run = JobRun(job=job, token=token, progress=job_progress_reporter(job_id=job_id, token=token))

    def fail(
        code: str, message: str, details: Any = None, extra: dict[str, Any] | None = None
    ) -> str:
        result: dict[str, Any] = {}
        if keep_result_on_failure:
            saved = Job.objects.values_list("result", flat=True).get(pk=job_id)
            result.update(saved if isinstance(saved, dict) else {})
        result["code"] = code
        if details is not None:
            result["details"], result["details_total"] = capped(details)
        result.update(extra or {})
        job_log(job_id=job_id, message=f"failed: {message}")
        job_finish(
            job_id=job_id, status=Job.Status.FAILED, error=message, result=result, token=token
        )
        return Job.Status.FAILED

    try:
        with _Heartbeat(job_id=job_id, token=token, interval_s=job_lease_s() / 3):
            outcome = work(run)
    except JobLeaseLost:
        logger.warning("job %s was taken over while this worker ran it; stopping", job_id)
        return None
    except ServiceError as exc:
        extra = failure_result(exc) if failure_result is not None else None
        return fail(exc.code, exc.message, exc.details, extra)
    except SoftTimeLimitExceeded:
        return fail(
            "job_time_limit", f"{what} ran over its time limit of {soft_limit_s} s; {on_failure}"
        )
    except Exception as exc:
        logger.exception("job %s crashed", job_id)
        return fail(
            "job_internal_error",
            f"{what} stopped on an internal error ({type(exc).__name__}); {on_failure}",
        )
    job_log(job_id=job_id, message=outcome.message)
    if not job_finish(
        job_id=job_id,
        status=Job.Status.SUCCEEDED,
        result=outcome.result,
        result_file=outcome.result_file,
        token=token,
    ):
        if outcome.discard is not None:
            outcome.discard()
        return None
    return Job.Status.SUCCEEDED
