"""Jobs: asynchronous units of work run by Celery workers (docs/architecture.md "Domain" and "Conventions").

Life cycle: job_create (PENDING) → job_enqueue (sent on commit) → the task calls job_claim,
a conditional update, so of two deliveries of the same message only one runs → job_progress /
job_log while running → job_finish (SUCCEEDED / FAILED). Every step is one cheap UPDATE on the
job's row, so progress is visible to pollers while the work itself runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from annotation.access import campaigns_visible_to, datasets_visible_to, is_staff
from annotation.models import Campaign, Dataset, Job, Membership
from counterpoint.errors import NotFound

MAX_LOG_LINES = 500
MAX_LOG_CHARS = 2000


def job_create(
    *,
    kind: str,
    created_by: Any,
    params: dict[str, Any],
    campaign: Campaign | None = None,
    dataset: Dataset | None = None,
) -> Job:
    if kind not in Job.Kind.values:
        raise ValueError(f"unknown job kind {kind!r}")
    return Job.objects.create(
        kind=kind,
        created_by=created_by if getattr(created_by, "pk", None) else None,
        params=params,
        campaign=campaign,
        dataset=dataset,
    )


def job_enqueue(*, job: Job, task: Any) -> None:
    """Send `task(job.pk)` once the surrounding transaction commits, so a worker never picks up
    a job row it cannot see yet (and a rolled-back job is never sent).

    JOBS_QUEUE_OVERRIDE (a setting, normally unset) sends every job to one queue: the real-worker
    test uses it to keep its messages apart from any other worker on the same broker."""
    job_id = job.pk
    queue = getattr(settings, "JOBS_QUEUE_OVERRIDE", "") or None
    options: dict[str, Any] = {"queue": queue} if queue else {}
    transaction.on_commit(lambda: task.apply_async(args=[job_id], **options))


def job_claim(*, job_id: int, stale_after_s: float | None = None) -> bool:
    """Move the job from PENDING to RUNNING; True for exactly one caller. With `stale_after_s`,
    a RUNNING job started longer ago than that is also claimed: its worker died without
    finishing (the task's hard time limit is shorter), and the message was redelivered."""
    now = timezone.now()
    cond = Q(status=Job.Status.PENDING)
    if stale_after_s is not None:
        cond |= Q(status=Job.Status.RUNNING, started_at__lt=now - timedelta(seconds=stale_after_s))
    claimed = Job.objects.filter(cond, pk=job_id).update(
        status=Job.Status.RUNNING, started_at=now, progress_done=0, error=""
    )
    return claimed == 1


def job_progress(*, job_id: int, done: int, total: int | None = None) -> None:
    fields: dict[str, Any] = {"progress_done": max(0, int(done))}
    if total is not None:
        fields["progress_total"] = max(0, int(total))
    Job.objects.filter(pk=job_id, status=Job.Status.RUNNING).update(**fields)


def job_progress_reporter(
    *, job_id: int, min_interval_s: float = 0.5
) -> Callable[[int, int], None]:
    """A progress callback that writes at most every `min_interval_s` (and always the last
    step), so a tight loop reporting every row costs a handful of UPDATEs."""
    last: list[float | None] = [None]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        prev = last[0]
        if done >= total or prev is None or now - prev >= min_interval_s:
            last[0] = now
            job_progress(job_id=job_id, done=done, total=total)

    return report


def job_log(*, job_id: int, message: str) -> None:
    """Append a line to the job's log (bounded: the oldest lines go first)."""
    entry = {"at": timezone.now().isoformat(), "message": message[:MAX_LOG_CHARS]}
    with transaction.atomic():
        # Read-modify-write of the JSON list under a row lock, so two writers never lose a line.
        job = Job.objects.select_for_update().only("id", "log").filter(pk=job_id).first()
        if job is None:
            return
        log = [*(job.log or []), entry][-MAX_LOG_LINES:]
        Job.objects.filter(pk=job_id).update(log=log)


def job_finish(
    *, job_id: int, status: str, result: Any = None, error: str = "", result_file: str = ""
) -> bool:
    """RUNNING → SUCCEEDED/FAILED. False when the job was not running (already finished by a
    duplicate run), so a late duplicate never overwrites a result."""
    if status not in (Job.Status.SUCCEEDED, Job.Status.FAILED):
        raise ValueError(f"a job finishes as succeeded or failed, not {status!r}")
    fields: dict[str, Any] = {
        "status": status,
        "result": result,
        "error": error,
        "finished_at": timezone.now(),
    }
    if result_file:
        fields["result_file"] = result_file
    return Job.objects.filter(pk=job_id, status=Job.Status.RUNNING).update(**fields) == 1


# --- reads ------------------------------------------------------------------------------


def jobs_visible_to(*, user: Any) -> QuerySet[Job]:
    """Staff see all jobs; others see jobs they started, jobs of campaigns they manage and jobs
    of datasets they can see."""
    qs = Job.objects.all()
    if is_staff(user):
        return qs
    managed = campaigns_visible_to(user=user, roles=[Membership.Role.MANAGER]).values("id")
    datasets = datasets_visible_to(user=user).values("id")
    return qs.filter(
        Q(created_by_id=user.pk) | Q(campaign_id__in=managed) | Q(dataset_id__in=datasets)
    )


def job_for_user(*, user: Any, job_id: Any) -> Job:
    try:
        return jobs_visible_to(user=user).get(pk=job_id)
    except (Job.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"job {job_id} does not exist") from None
