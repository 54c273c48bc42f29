"""Bulk scoring: every example (or every counterfactual edit) of a campaign — or every
example of a dataset — through one model version, as a Job run by a Celery worker.

Chunked (CHUNK rows per step, each step one cache lookup, one batched forward per
batch, one INSERT), resumable (the last finished row id is kept in job.result["cursor"],
so a re-run after a crash or a failure continues there) and idempotent (the Score table
is the cache: a second pass finds every score and makes no model call). Edits get their
`scores[model id] = {"original": ..., "edit": ...}` filled through the campaign-domain service
edit_scores_record; `edit_score` scores one new edit against every campaign model (the task
a submit enqueues)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet

from annotation.models import Campaign, CounterfactualEdit, Dataset, Example, Job, PerturbedItem
from annotation.services.counterfactuals import edit_scores_record
from annotation.services.jobs import job_create, job_enqueue, job_reopen
from counterpoint.errors import Conflict, NotFound, ServiceError, Unavailable, ValidationFailed
from models_bridge.adapters.base import InputError, ModelError
from models_bridge.models import ModelVersion
from models_bridge.services.registry import model_fits_dataset
from models_bridge.services.scoring import ScoreStats, score

logger = logging.getLogger(__name__)

CHUNK = 1024
# "perturbed": the PerturbedItem rows of one perturbation study (params["study"]).
TARGETS = ("examples", "edits", "perturbed")


def bulk_score_start(
    *,
    model_version: ModelVersion,
    created_by: Any,
    campaign: Campaign | None = None,
    dataset: Dataset | None = None,
    target: str = "examples",
    split: str | None = None,
    study: Any = None,
    enqueue: bool = True,
) -> Job:
    """Create a scoring job and send it to a worker when the transaction commits (unless
    `enqueue` is False: the caller runs it in its own process, as the commands do)."""
    from models_bridge.tasks import bulk_score_task

    if target not in TARGETS:
        raise ValidationFailed(f"target must be one of {', '.join(TARGETS)}", code="bulk_target")
    if (campaign is None) == (dataset is None):
        raise ValidationFailed("score either a campaign or a dataset", code="bulk_scope")
    if target == "edits" and campaign is None:
        raise ValidationFailed("edits belong to a campaign; give the campaign", code="bulk_scope")
    if (target == "perturbed") != (study is not None) or (
        study is not None and (campaign is None or study.campaign_id != campaign.pk)
    ):
        raise ValidationFailed(
            "perturbed items are scored per study of the campaign: give both", code="bulk_scope"
        )
    ds = campaign.dataset if campaign is not None else dataset
    assert ds is not None
    model_fits_dataset(model_version=model_version, dataset=ds)
    params: dict[str, Any] = {"model_version": model_version.pk, "target": target}
    if split:
        params["split"] = split
    if study is not None:
        params["study"] = study.pk
    job = job_create(
        kind=Job.Kind.SCORE, created_by=created_by, params=params, campaign=campaign, dataset=ds
    )
    if enqueue:
        job_enqueue(job=job, task=bulk_score_task)
    return job


def bulk_score_resume(*, job: Job) -> Job:
    """Send a failed scoring job, or a running one whose worker stopped beating, again; it
    continues from its cursor."""
    from models_bridge.tasks import bulk_score_task

    if job.kind != Job.Kind.SCORE:
        raise ValidationFailed("only scoring jobs resume here", code="job_kind")
    if not job_reopen(job_id=job.pk):
        job.refresh_from_db(fields=["status"])
        raise Conflict(
            f"job {job.pk} is {job.status}; only a failed job, or a running one whose worker "
            "is gone, resumes",
            code="job_not_failed",
        )
    job_enqueue(job=job, task=bulk_score_task)
    job.refresh_from_db()
    return job


def _items(job: Job) -> QuerySet[Any]:
    target = job.params.get("target", "examples")
    if target == "edits":
        return CounterfactualEdit.objects.filter(campaign=job.campaign).order_by("id")
    if target == "perturbed":
        return PerturbedItem.objects.filter(study_id=job.params.get("study")).order_by("id")
    if job.campaign_id is not None:
        qs = Example.objects.filter(campaign_items__campaign=job.campaign)
    else:
        qs = Example.objects.filter(dataset=job.dataset)
    if job.params.get("split"):
        qs = qs.filter(split=job.params["split"])
    return qs.order_by("id")


def bulk_score_run(
    *,
    job: Job,
    progress: Callable[[int, int], None] | None = None,
    chunk: int = CHUNK,
    stats: ScoreStats | None = None,
) -> dict[str, Any]:
    """Do the work of a scoring job (the task has claimed it). Returns the summary that
    becomes job.result. Raises ServiceError subclasses for inputs or a model that fail."""
    try:
        mv = ModelVersion.objects.select_related("dataset").get(pk=job.params["model_version"])
    except (ModelVersion.DoesNotExist, KeyError):
        raise NotFound(
            f"model version {job.params.get('model_version')} does not exist", code="model_unknown"
        ) from None
    target = job.params.get("target", "examples")
    stats = stats if stats is not None else ScoreStats()
    previous = job.result if isinstance(job.result, dict) else {}
    cursor = int(previous.get("cursor", 0))
    items = _items(job)
    total = items.count()
    done = items.filter(id__lte=cursor).count()
    started = time.perf_counter()
    if progress:
        progress(done, total)
    while True:
        if target == "edits":
            edits = list(
                items.filter(id__gt=cursor)
                .select_related("example")
                .only("id", "edited_values", "example__id", "example__values")[:chunk]
            )
            if not edits:
                break
            rows = [e.example.values for e in edits] + [e.edited_values for e in edits]
            res = score(model_version=mv, inputs=rows, stats=stats)
            key = str(mv.pk)
            # The service merges this one key under a row lock: another job writing another
            # model's key into the same edits meanwhile keeps its key.
            edit_scores_record(
                scores={
                    edit.pk: {
                        key: {"original": res[i].summary(), "edit": res[len(edits) + i].summary()}
                    }
                    for i, edit in enumerate(edits)
                }
            )
            cursor = edits[-1].pk
            done += len(edits)
        else:
            page = list(items.filter(id__gt=cursor).values_list("id", "values")[:chunk])
            if not page:
                break
            score(model_version=mv, inputs=[v for _, v in page], stats=stats)
            cursor = page[-1][0]
            done += len(page)
        summary = _summary(mv, target, cursor, done, total, stats, time.perf_counter() - started)
        # The cursor is saved after every chunk, so a crash loses at most one chunk of work.
        Job.objects.filter(pk=job.pk).update(result=summary)
        if progress:
            progress(done, total)
    return _summary(mv, target, cursor, done, total, stats, time.perf_counter() - started)


def _summary(
    mv: ModelVersion,
    target: str,
    cursor: int,
    done: int,
    total: int,
    stats: ScoreStats,
    seconds: float,
) -> dict[str, Any]:
    return {
        "model_version": mv.pk,
        "model": str(mv),
        "target": target,
        "cursor": cursor,
        "done": done,
        "total": total,
        "inputs": stats.inputs,
        "computed": stats.computed,
        "cached": stats.cached,
        "model_calls": stats.model_calls,
        "seconds": round(seconds, 3),
    }


def _edit_emap(mv: ModelVersion, edit: CounterfactualEdit) -> dict[str, Any] | None:
    """The background-pool EMAP of an edit and its original, for factorized models when
    EMAP_EDIT_POOL_SIZE > 0 (models_bridge/analysis/pool.py); None otherwise or when it
    cannot be computed (the scores are stored either way)."""
    from django.conf import settings

    size = int(getattr(settings, "EMAP_EDIT_POOL_SIZE", 0))
    if size < 2 or not mv.factorized or len(mv.modalities) != 2:
        return None
    from models_bridge.analysis.pool import edit_emap

    try:
        return edit_emap(
            campaign=Campaign.objects.select_related("dataset").get(pk=edit.campaign_id),
            model_version=mv,
            original=edit.example.values,
            edited=edit.edited_values,
            size=size,
        )
    except (ServiceError, ModelError, InputError):
        logger.warning("background-pool EMAP of edit %s with %s failed", edit.pk, mv, exc_info=True)
        return None


def edit_score(*, edit_id: int, stats: ScoreStats | None = None) -> dict[str, list[int]]:
    """Score edit `edit_id` (its original and its edited values) with every active campaign
    model that has no entry for it yet, reading the Score cache first. Idempotent: a second
    run finds every key and calls no model. Returns the model ids scored, refused (an input
    the model cannot take: stored as an error entry, so it is not pending forever) and
    unavailable (the model is down: left pending for a retry)."""
    edit = (
        CounterfactualEdit.objects.select_related("example")
        .only("id", "campaign_id", "edited_values", "scores", "example__id", "example__values")
        .filter(pk=edit_id)
        .first()
    )
    out: dict[str, list[int]] = {"scored": [], "refused": [], "unavailable": []}
    if edit is None:
        return out
    models = ModelVersion.objects.filter(campaigns__id=edit.campaign_id, is_active=True)
    entries: dict[str, Any] = {}
    for mv in models.select_related("dataset").order_by("id"):
        key = str(mv.pk)
        if key in (edit.scores or {}) and "error" not in edit.scores[key]:
            continue
        try:
            res = score(
                model_version=mv, inputs=[edit.example.values, edit.edited_values], stats=stats
            )
        except ValidationFailed as exc:
            entries[key] = {"error": {"code": exc.code, "message": exc.message}}
            out["refused"].append(mv.pk)
            continue
        except Unavailable:
            out["unavailable"].append(mv.pk)
            continue
        entries[key] = {"original": res[0].summary(), "edit": res[1].summary()}
        emap = _edit_emap(mv, edit)
        if emap is not None:
            entries[key]["emap"] = emap
        out["scored"].append(mv.pk)
    if entries:
        edit_scores_record(scores={edit.pk: entries})
    return out
