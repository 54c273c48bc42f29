"""Live scoring: one draft edit against every model of the campaign, synchronously and
in process, stored as an Attempt (docs/architecture.md "Counterfactual protocol").

Lean by design — it answers on every pause in typing: one query finds every cached
score of original and draft for all models, the models that miss run on a batch of at
most two rows, new scores go in with one INSERT, and the Attempt is written in one short
transaction after the models have answered (no lock is held while a model runs).

A bad draft (undecodable image, text over a model's maximum length, unknown or
non-editable modality) is a 4xx and writes nothing. A model that fails or times out is
reported as {"status": "unavailable"} and the others answer normally."""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import transaction
from django.db.models import F

from annotation.models import Assignment, Attempt, Campaign, Membership
from annotation.schema import content_hash
from annotation.services.media import check_image_bytes, media_store
from counterpoint.errors import Conflict, ServiceError, ValidationFailed
from models_bridge.adapters.base import Adapter, ModelError
from models_bridge.models import ModelVersion
from models_bridge.preprocess import InputError
from models_bridge.services.loading import adapter_for
from models_bridge.services.scoring import (
    ScoreResult,
    build_batch,
    cached_scores,
    compute,
    image_paths,
    input_hash,
    store,
)

MAX_TEXT_CHARS = 10_000
# Remote models are called side by side so one slow server costs one timeout, not one per model.
_remote_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="live-remote")


class ScoreCapReached(ServiceError):
    http_status = 429
    default_code = "score_cap_reached"


def feedback_arm(*, assignment: Assignment) -> str:
    """hidden when the campaign hides feedback or the person's membership is in the hidden
    arm (fixed at invitation for randomised campaigns)."""
    campaign = assignment.campaign
    if campaign.feedback_arm == Campaign.FeedbackArm.HIDDEN:
        return "hidden"
    arms = set(
        Membership.objects.filter(
            campaign_id=campaign.pk, user_id=assignment.annotator_id
        ).values_list("arm", flat=True)
    )
    return "hidden" if Membership.Arm.HIDDEN in arms else "shown"


def _draft_value(
    *, assignment: Assignment, modality: str, value: Any, image: bytes | None
) -> tuple[Any, Any, bytes | None]:
    """(dataset-form value, Media or None, image bytes or None) for the draft; raises 4xx."""
    dataset = assignment.campaign.dataset
    kind = dataset.modality_kind(modality)
    if kind is None:
        raise ValidationFailed(
            f"modality {modality!r} is not one of this dataset's ({', '.join(dataset.modality_names())})",
            code="modality_unknown",
        )
    if modality not in (assignment.campaign.editable_modalities or []):
        raise ValidationFailed(
            f"modality {modality!r} is not editable in this campaign", code="modality_not_editable"
        )
    if kind == "text":
        if not isinstance(value, str):
            raise ValidationFailed('a text draft needs "value": a string', code="text_not_a_string")
        if len(value) > MAX_TEXT_CHARS:
            raise ValidationFailed(
                f"the text is over {MAX_TEXT_CHARS:,} characters", code="text_too_long"
            )
        return value, None, None
    if kind == "image":
        if not image:
            raise ValidationFailed(
                'an image draft needs "image": a data URL of the edited image', code="image_empty"
            )
        checked = check_image_bytes(image)
        media = media_store(checked=checked)
        return media.sha256, media, checked.data
    # tabular: the same features as the original, each a finite number or a string
    original = assignment.example.values.get(modality)
    if not isinstance(value, dict):
        raise ValidationFailed(
            'a tabular draft needs "value": {feature: value}', code="tabular_not_an_object"
        )
    if isinstance(original, dict) and set(value) != set(original):
        extra, lacking = sorted(set(value) - set(original)), sorted(set(original) - set(value))
        raise ValidationFailed(
            f"a tabular draft has the original's features; extra: {extra or '-'}, missing: {lacking or '-'}",
            code="tabular_features",
        )
    for k, v in value.items():
        if (
            isinstance(v, bool)
            or not isinstance(v, int | float | str)
            or (isinstance(v, float) and not math.isfinite(v))
        ):
            raise ValidationFailed(
                f"feature {k!r} must be a finite number or a string", code="tabular_not_a_number"
            )
    return value, None, None


def _result_json(
    mv: ModelVersion, draft: ScoreResult | None, original: ScoreResult | None, latency_ms: float
) -> dict[str, Any]:
    if draft is None:
        return {
            "id": mv.pk,
            "name": mv.name,
            "version": mv.version,
            "status": "unavailable",
            "probabilities": None,
            "predicted_label": None,
            "original_predicted_label": original.predicted_label if original else None,
            "original_probabilities": original.probabilities if original else None,
            "flipped": None,
            "latency_ms": round(latency_ms, 3),
        }
    return {
        "id": mv.pk,
        "name": mv.name,
        "version": mv.version,
        "status": "ok",
        "probabilities": draft.probabilities,
        "predicted_label": draft.predicted_label,
        "original_predicted_label": original.predicted_label if original else None,
        "original_probabilities": original.probabilities if original else None,
        "flipped": (draft.predicted_label != original.predicted_label) if original else None,
        "latency_ms": round(latency_ms, 3),
    }


def live_score(
    *, assignment: Assignment, modality: str, value: Any = None, image: bytes | None = None
) -> dict[str, Any]:
    """Score a draft of `assignment`'s example with `modality` replaced. The caller has
    checked that the requester holds the assignment (annotation.access.assignment_for_user)."""
    campaign = assignment.campaign
    if assignment.kind != Assignment.Kind.ANNOTATE:
        raise ValidationFailed(
            "live scoring is for annotate tasks, not validation", code="assignment_not_annotate"
        )
    if assignment.status != Assignment.Status.ACTIVE:
        raise Conflict(
            f"assignment {assignment.pk} is {assignment.status}, not active",
            code="assignment_not_active",
        )
    if campaign.status != Campaign.Status.ACTIVE:
        raise Conflict(
            f"campaign {campaign.name!r} is {campaign.status}", code="campaign_not_active"
        )
    cap = campaign.score_cap_per_assignment
    if assignment.attempts_count >= cap:
        raise ScoreCapReached(
            f"this task has used its {cap} scored drafts", code="score_cap_reached"
        )

    draft_value, media, draft_bytes = _draft_value(
        assignment=assignment, modality=modality, value=value, image=image
    )
    original = assignment.example.values
    draft = {**original, modality: draft_value}
    arm = feedback_arm(assignment=assignment)

    models = list(campaign.model_versions.filter(is_active=True).order_by("id"))
    hashes = {
        mv.pk: (input_hash(mv.modalities, original), input_hash(mv.modalities, draft))
        for mv in models
    }
    cache = cached_scores((mv.pk, h) for mv in models for h in hashes[mv.pk])

    # Phase 1: adapters and preprocessing for what the cache lacks. A draft the model
    # cannot take is the annotator's to fix (4xx) and stops everything before any write.
    jobs: list[tuple[ModelVersion, Adapter, Any, list[str]]] = []
    failed: dict[int, str] = {}
    latency: dict[int, float] = {mv.pk: 0.0 for mv in models}
    paths: dict[str, str] | None = None
    image_bytes = {draft_value: draft_bytes} if draft_bytes is not None else None
    for mv in models:
        h_orig, h_draft = hashes[mv.pk]
        rows, row_hashes = [], []
        for h, values in ((h_orig, original), (h_draft, draft)):
            if (mv.pk, h) not in cache and h not in row_hashes:
                rows.append(values)
                row_hashes.append(h)
        if not rows:
            continue
        started = time.perf_counter()
        try:
            adapter = adapter_for(mv)
            if paths is None:
                ds = campaign.dataset
                paths = image_paths(
                    str(original[m])
                    for m in ds.modality_names()
                    if ds.modality_kind(m) == "image" and m in original
                )
            try:
                prepared = adapter.prepare(
                    build_batch(mv, rows, paths=paths, image_bytes=image_bytes)
                )
            except InputError as exc:
                # Whose input was it? Only the draft's fault is the annotator's.
                try:
                    adapter.prepare(build_batch(mv, [draft], paths=paths, image_bytes=image_bytes))
                except InputError:
                    raise ValidationFailed(f"{mv.name}: {exc.message}", code=exc.code) from None
                raise ModelError(f"the original cannot be scored: {exc.message}") from None
        except ModelError as exc:
            failed[mv.pk] = str(exc)
            latency[mv.pk] += (time.perf_counter() - started) * 1000
            continue
        latency[mv.pk] += (time.perf_counter() - started) * 1000
        jobs.append((mv, adapter, prepared, row_hashes))

    # Phase 2: run. Remote models in parallel threads, in-process ones inline.
    def run(
        job: tuple[ModelVersion, Adapter, Any, list[str]],
    ) -> tuple[list[ScoreResult] | None, str, float]:
        mv, adapter, prepared, row_hashes = job
        started = time.perf_counter()
        try:
            return (
                compute(mv, adapter, prepared, row_hashes),
                "",
                (time.perf_counter() - started) * 1000,
            )
        except ModelError as exc:
            return None, str(exc), (time.perf_counter() - started) * 1000
        except Exception as exc:  # an untrusted model must never turn a draft into a 500
            return None, f"{type(exc).__name__}: {exc}", (time.perf_counter() - started) * 1000

    futures = {job[0].pk: _remote_pool.submit(run, job) for job in jobs if job[1].kind == "remote"}
    fresh: list[tuple[int, ScoreResult]] = []
    for job in jobs:
        mv = job[0]
        res, err, ms = futures[mv.pk].result() if mv.pk in futures else run(job)
        latency[mv.pk] += ms
        if res is None:
            failed[mv.pk] = err
            continue
        for r in res:
            cache[(mv.pk, r.input_hash)] = r
            fresh.append((mv.pk, r))
    store(fresh)

    out_models, stored_scores = [], {}
    for mv in models:
        h_orig, h_draft = hashes[mv.pk]
        d = None if mv.pk in failed else cache.get((mv.pk, h_draft))
        o = cache.get((mv.pk, h_orig))
        entry = _result_json(mv, d, o, latency[mv.pk])
        out_models.append(entry)
        stored = {
            k: entry[k]
            for k in (
                "status",
                "predicted_label",
                "probabilities",
                "original_predicted_label",
                "flipped",
            )
        }
        if mv.pk in failed:
            stored["error"] = failed[mv.pk][:500]
        stored_scores[str(mv.pk)] = stored

    seq = _attempt_store(
        assignment=assignment,
        cap=cap,
        modality=modality,
        value=None if media is not None else draft_value,
        media=media,
        content=content_hash(draft),
        scores=stored_scores,
    )
    return {
        "attempt": {"seq": seq},
        "feedback": arm,
        "models": out_models if arm == "shown" else [],
    }


def _attempt_store(
    *,
    assignment: Assignment,
    cap: int,
    modality: str,
    value: Any,
    media: Any,
    content: str,
    scores: dict[str, Any],
) -> int:
    with transaction.atomic():
        # The conditional increment is the seq allocator and the cap in one statement: it
        # row-locks the assignment until commit, so concurrent drafts get 1, 2, 3 … with
        # no gaps or repeats, and the cap cannot be overshot.
        bumped = Assignment.objects.filter(
            pk=assignment.pk, status=Assignment.Status.ACTIVE, attempts_count__lt=cap
        ).update(attempts_count=F("attempts_count") + 1)
        if not bumped:
            status = (
                Assignment.objects.filter(pk=assignment.pk).values_list("status", flat=True).first()
            )
            if status != Assignment.Status.ACTIVE:
                raise Conflict(
                    f"assignment {assignment.pk} is {status}, not active",
                    code="assignment_not_active",
                )
            raise ScoreCapReached(
                f"this task has used its {cap} scored drafts", code="score_cap_reached"
            )
        seq = (
            Assignment.objects.filter(pk=assignment.pk)
            .values_list("attempts_count", flat=True)
            .get()
        )
        Attempt.objects.create(
            assignment_id=assignment.pk,
            seq=seq,
            modality=modality,
            value=value,
            media=media,
            content_hash=content,
            scores=scores,
        )
    return seq
