"""Jobs: asynchronous units of work run by Celery workers (docs/architecture.md "Domain" and "Conventions").

Life cycle: job_create (PENDING) → job_enqueue (sent on commit) → the task calls job_claim,
a conditional update, so of two deliveries of the same message only one runs → job_progress /
job_heartbeat / job_log while running → job_finish (SUCCEEDED / FAILED). Every step is one
cheap UPDATE on the job's row, so progress is visible to pollers while the work itself runs.

A claim is a lease: the running worker renews `heartbeat_at` (job_heartbeat, and every
progress write); a delivery that finds a RUNNING job whose heartbeat is older than
JOB_LEASE_SECONDS takes it over with a new claim token, and the old token's writes match
nothing. annotation/job_runner.py is the one task scaffolding that does all of this."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from annotation.access import campaigns_visible_to, datasets_visible_to, is_staff, parse_pk
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


def job_lease_s() -> float:
    return float(getattr(settings, "JOB_LEASE_SECONDS", 120))


def _lease_expired(now: datetime, lease_s: float | None) -> Q:
    """RUNNING with no heartbeat within the lease (rows from before heartbeats: started
    before it)."""
    cutoff = now - timedelta(seconds=job_lease_s() if lease_s is None else lease_s)
    stale = Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    return Q(status=Job.Status.RUNNING) & stale


def job_claim(
    *, job_id: int, lease_s: float | None = None, now: datetime | None = None
) -> str | None:
    """Move the job to RUNNING under a fresh claim token; the token for exactly one caller,
    None for the others. A PENDING job is claimed, and so is a RUNNING one whose heartbeat is
    older than the lease (`lease_s`, default JOB_LEASE_SECONDS): its worker died and this is
    the redelivered message. The condition is re-checked on the row itself, so of two
    concurrent takeovers one wins."""
    now = now or timezone.now()
    cond = Q(status=Job.Status.PENDING) | _lease_expired(now, lease_s)
    token = uuid.uuid4().hex
    claimed = Job.objects.filter(cond, pk=job_id).update(
        status=Job.Status.RUNNING,
        started_at=now,
        heartbeat_at=now,
        claim_token=token,
        progress_done=0,
        error="",
    )
    return token if claimed == 1 else None


def _owned(job_id: int, token: str | None) -> QuerySet[Job]:
    qs = Job.objects.filter(pk=job_id, status=Job.Status.RUNNING)
    return qs.filter(claim_token=token) if token is not None else qs


def job_heartbeat(*, job_id: int, token: str, now: datetime | None = None) -> bool:
    """Renew the lease of the run holding `token`. False when the job is no longer that run's
    (finished, or taken over after this worker looked dead): the caller should stop."""
    return _owned(job_id, token).update(heartbeat_at=now or timezone.now()) == 1


def job_progress(
    *, job_id: int, done: int, total: int | None = None, token: str | None = None
) -> bool:
    """Record progress (and renew the lease). False when `token` no longer owns the job."""
    fields: dict[str, Any] = {"progress_done": max(0, int(done)), "heartbeat_at": timezone.now()}
    if total is not None:
        fields["progress_total"] = max(0, int(total))
    return _owned(job_id, token).update(**fields) == 1


def job_reopen(*, job_id: int, lease_s: float | None = None) -> bool:
    """FAILED, or RUNNING with a heartbeat older than the lease (its worker is gone), back to
    PENDING so it can be sent again; False for any other state (a live run is left alone)."""
    cond = Q(status=Job.Status.FAILED) | _lease_expired(timezone.now(), lease_s)
    return (
        Job.objects.filter(cond, pk=job_id).update(
            status=Job.Status.PENDING, error="", claim_token=""
        )
        == 1
    )


class JobLeaseLost(Exception):
    """The job was taken over by another run (this worker was thought dead): stop working."""


def job_progress_reporter(
    *, job_id: int, token: str | None = None, min_interval_s: float = 0.5
) -> Callable[[int, int], None]:
    """A progress callback that writes at most every `min_interval_s` (and always the last
    step), so a tight loop reporting every row costs a handful of UPDATEs. Each write renews
    the lease; with `token`, a write that finds the job taken over raises JobLeaseLost."""
    last: list[float | None] = [None]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        prev = last[0]
        if done >= total or prev is None or now - prev >= min_interval_s:
            last[0] = now
            if not job_progress(job_id=job_id, done=done, total=total, token=token) and token:
                raise JobLeaseLost(f"job {job_id} was taken over by another run")

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
    *,
    job_id: int,
    status: str,
    result: Any = None,
    error: str = "",
    result_file: str = "",
    token: str | None = None,
) -> bool:
    """RUNNING → SUCCEEDED/FAILED. False when the job was not running (already finished by a
    duplicate run) or, with `token`, is now another run's, so a late duplicate or a worker
    that was taken over never overwrites a result."""
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
    return _owned(job_id, token).update(**fields) == 1


# --- reads ------------------------------------------------------------------------------


def jobs_visible_to(*, user: Any) -> QuerySet[Job]:
    """Staff see all jobs; others see the jobs they started, the jobs of campaigns they
    manage, and dataset-level jobs (imports: no campaign) of datasets they can see. A
    campaign's job is never visible through its dataset: two campaigns over one dataset must
    not see each other's bulk scores, logs or who started them."""
    qs = Job.objects.all()
    if is_staff(user):
        return qs
    uid = user.pk if getattr(user, "is_authenticated", False) else None
    managed = campaigns_visible_to(user=user, roles=[Membership.Role.MANAGER]).values("id")
    datasets = datasets_visible_to(user=user).values("id")
    mine = Q(created_by_id=uid) if uid is not None else Q(pk__in=[])
    return qs.filter(
        mine | Q(campaign_id__in=managed) | Q(campaign__isnull=True, dataset_id__in=datasets)
    )


def job_for_user(*, user: Any, job_id: Any) -> Job:
    try:
        return jobs_visible_to(user=user).get(pk=parse_pk(job_id) or 0)
    except (Job.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"job {job_id} does not exist") from None
