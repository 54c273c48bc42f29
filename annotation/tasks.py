"""Celery tasks of the campaign domain (docs/architecture.md "Conventions"): each takes a job's primary key and
hands it to annotation/job_runner.py, which claims it (a conditional update and a lease, so
a duplicate delivery does nothing and a dead worker's job is taken over), calls one service
and records the outcome on the Job row. Routed to the `io` queue (counterpoint/celery.py)."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings

from annotation.importers.errors import group_errors
from annotation.job_runner import JobOutcome, JobRun, capped, run_job
from annotation.models import Job
from annotation.services.imports import import_job_run
from counterpoint.errors import ServiceError

IMPORT_SOFT_LIMIT_S = int(getattr(settings, "CELERY_TASK_SOFT_TIME_LIMIT", 3600))
IMPORT_HARD_LIMIT_S = int(getattr(settings, "CELERY_TASK_TIME_LIMIT", 3900))


def _import_failure(exc: ServiceError) -> dict[str, Any]:
    # A refused manifest: the same grouped lines the command prints.
    groups, left_off = group_errors(exc.details if isinstance(exc.details, list) else [])
    return {"error_groups": groups, "error_groups_left_off": left_off}


def _import_work(run: JobRun) -> JobOutcome:
    report = import_job_run(job=run.job, progress=run.progress, log=run.log)
    if report.dataset is not None:
        Job.objects.filter(pk=run.job.pk).update(dataset=report.dataset)
    result = report.as_dict()
    result["errors"], result["errors_total"] = capped(result["errors"])
    return JobOutcome(
        result=result,
        message=(
            f"imported {report.created} examples ({report.skipped_existing} already there, "
            f"{len(report.errors)} bad lines skipped), {report.media_created} new media, "
            f"{report.media_reused} reused, in {report.seconds:.1f} s"
        ),
    )


@shared_task(
    bind=True,
    name="annotation.tasks.import_run",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=IMPORT_SOFT_LIMIT_S,
    time_limit=IMPORT_HARD_LIMIT_S,
    ignore_result=True,
)
def import_run(self: Any, job_id: int) -> None:
    """Run import job `job_id`. Safe to run twice: only the claiming run works, and a job
    whose worker died (its heartbeat older than the lease) is taken over by the next
    delivery; the import itself is all-or-nothing, so a re-run starts clean."""
    run_job(
        task=self,
        job_id=job_id,
        what="the import",
        start_message=lambda job: (
            f"import started ({job.params.get('format')} into {job.params.get('dataset')!r})"
        ),
        work=_import_work,
        soft_limit_s=IMPORT_SOFT_LIMIT_S,
        hard_limit_s=IMPORT_HARD_LIMIT_S,
        on_failure="nothing was imported",
        failure_result=_import_failure,
    )


def _export_work(run: JobRun) -> JobOutcome:
    from annotation.services.exports import export_discard, export_job_run

    report = export_job_run(job=run.job, progress=run.progress)
    rows = report.build.rows
    return JobOutcome(
        result=report.as_dict(),
        message=(
            f"exported {rows['annotations']} annotations and {rows['pairs']} pairs to "
            f"{report.name} ({report.build.size_bytes} bytes) in {report.build.seconds:.1f} s"
        ),
        result_file=report.rel_path,
        discard=lambda: export_discard(rel_path=report.rel_path),
    )


@shared_task(
    bind=True,
    name="annotation.tasks.export_run",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=IMPORT_SOFT_LIMIT_S,
    time_limit=IMPORT_HARD_LIMIT_S,
    ignore_result=True,
)
def export_run(self: Any, job_id: int) -> None:
    """Run export job `job_id`. Safe to run twice: only the claiming run works; the archive
    is a function of the job's snapshot, written to a temporary file and renamed onto its
    content-hash name, so a taken-over run stores the same one file."""
    run_job(
        task=self,
        job_id=job_id,
        what="the export",
        start_message=lambda job: f"export started ({job.params.get('format')})",
        work=_export_work,
        soft_limit_s=IMPORT_SOFT_LIMIT_S,
        hard_limit_s=IMPORT_HARD_LIMIT_S,
        on_failure="no file was stored",
    )


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


def _perturbation_build_work(run: JobRun) -> JobOutcome:
    from annotation.services.perturbations import perturbation_build_job_run

    study, report = perturbation_build_job_run(job=run.job, progress=run.progress)
    return JobOutcome(
        result={
            "study": study.pk,
            "examples": report.examples,
            "items_created": report.items_created,
            "items_total": report.items_total,
        },
        message=(
            f"built {report.items_created} perturbed items of study {study.name!r} "
            f"({report.items_total} in all, {report.examples} examples x {len(study.levels)} levels)"
        ),
    )


@shared_task(
    bind=True,
    name="annotation.tasks.perturbation_build_run",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=IMPORT_SOFT_LIMIT_S,
    time_limit=IMPORT_HARD_LIMIT_S,
    ignore_result=True,
)
def perturbation_build_run(self: Any, job_id: int) -> None:
    """Build the perturbed items of the study of job `job_id`. Safe to run twice: only the
    claiming run works, and the build only adds missing (study, example, level) rows."""
    run_job(
        task=self,
        job_id=job_id,
        what="the perturbation build",
        start_message=lambda job: f"perturbation build started (study {job.params.get('study')})",
        work=_perturbation_build_work,
        soft_limit_s=IMPORT_SOFT_LIMIT_S,
        hard_limit_s=IMPORT_HARD_LIMIT_S,
        on_failure="the items built so far are kept; run it again to finish",
    )


@shared_task(
    name="annotation.tasks.dashboard_refresh",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=600,
    time_limit=660,
    ignore_result=True,
)
def dashboard_refresh_task(campaign_id: int) -> bool:
    """Recompute campaign `campaign_id`'s dashboard snapshot (annotation/services/dashboard.py):
    a delivery finding another worker's live claim does nothing, one finding an expired claim
    (a dead worker) takes it over; a second run stores figures once more (idempotent)."""
    from annotation.services.dashboard import dashboard_refresh

    return dashboard_refresh(campaign_id=campaign_id)
