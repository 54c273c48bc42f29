"""Live scoring: one draft edit against every model of the campaign, synchronously and
in process, recorded as an Attempt (docs/architecture.md "Counterfactual protocol") through annotation.services.attempts.

Lean by design — it answers on every pause in typing: one query finds every cached
score of original and draft for all models, the models that miss run on a batch of at
most two rows, new scores go in with one INSERT, and the Attempt is written in one short
transaction after the models have answered (no lock is held while a model runs).

A bad draft (undecodable image, an image whose header is not the original's width x
height, text over a model's maximum length, unknown or non-editable modality) is a 4xx and
writes nothing. A draft image is scored from the bytes in memory and never stored as Media.

Each model's answer carries `outcome` relative to the target the annotator is editing
towards (`answer_outcome`, the one definition the live panel shows): reaches_target,
changed_not_target, changed (no target known yet) or unchanged. A model that fails or times out is
reported as {"status": "unavailable"} and the others answer normally."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from annotation.models import Assignment, Campaign, Media
from annotation.schema import content_hash, tabular_value_check, text_value_check
from annotation.selectors import feedback_for
from annotation.services.attempts import ScoreCapReached, attempt_record
from annotation.services.media import check_image_bytes
from counterpoint.errors import Conflict, ValidationFailed
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

# Remote models are called side by side so one slow server costs one timeout, not one per model.
_remote_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="live-remote")


def feedback_arm(*, assignment: Assignment) -> str:
    """The annotator's arm, by the one rule (annotation.policy.effective_arm)."""
    return feedback_for(campaign=assignment.campaign, user_id=assignment.annotator_id)


def _draft_value(
    *, assignment: Assignment, modality: str, value: Any, image: bytes | None
) -> tuple[Any, Any, bytes | None]:
    """(dataset-form value, the Attempt's record of it, image bytes or None) for the draft;
    raises 4xx. The value checks are the submit path's (annotation.schema)."""
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
    original = assignment.example.values.get(modality)
    if kind == "text":
        text = text_value_check(value, what='a text draft\'s "value"')
        return text, text, None
    if kind == "image":
        if not image:
            raise ValidationFailed(
                'an image draft needs "image": a data URL of the edited image', code="image_empty"
            )
        w, h = (
            Media.objects.filter(sha256=str(original)).values_list("width", "height").first()
        ) or (None, None)
        # The header is checked against the original's size before anything is decoded.
        checked = check_image_bytes(image, expect_size=(w, h) if w and h else None)
        record = {
            "sha256": checked.sha256,
            "width": checked.width,
            "height": checked.height,
            "bytes": len(checked.data),
        }
        return checked.sha256, record, checked.data
    table = tabular_value_check(original, value)
    return table, table, None


def answer_outcome(*, original: str | None, draft: str | None, target: str | None) -> str | None:
    """What a model's answer did between the original and the draft: reaches_target (it now
    predicts the target and did not before), changed_not_target (another answer than the
    original's, not the target), changed (another answer; no target chosen yet) or
    unchanged. None when either answer is missing (a model that did not answer)."""
    if original is None or draft is None:
        return None
    if draft == original:
        return "unchanged"
    if not target:
        return "changed"
    return "reaches_target" if draft == target else "changed_not_target"


def _result_json(
    mv: ModelVersion,
    draft: ScoreResult | None,
    original: ScoreResult | None,
    latency_ms: float,
    target: str | None,
) -> dict[str, Any]:
    original_label = original.predicted_label if original else None
    draft_label = draft.predicted_label if draft else None
    return {
        "id": mv.pk,
        "name": mv.name,
        "version": mv.version,
        "status": "ok" if draft is not None else "unavailable",
        "probabilities": draft.probabilities if draft else None,
        "predicted_label": draft_label,
        "original_predicted_label": original_label,
        "original_probabilities": original.probabilities if original else None,
        # Any change of answer; `outcome` says whether it is the one the annotator wants.
        "flipped": (draft_label != original_label) if draft and original else None,
        "outcome": answer_outcome(original=original_label, draft=draft_label, target=target),
        "latency_ms": round(latency_ms, 3),
    }


def live_score(
    *,
    assignment: Assignment,
    modality: str,
    value: Any = None,
    image: bytes | None = None,
    target_label: str | None = None,
) -> dict[str, Any]:
    """Score a draft of `assignment`'s example with `modality` replaced. The caller has
    checked that the requester holds the assignment (annotation.access.assignment_for_user).
    `target_label` is the answer the annotator is editing towards (default: the task's
    assigned target), against which each model's `outcome` is told."""
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

    labels = list(campaign.dataset.label_space)
    target = target_label or assignment.cf_target_label or ""
    if target and target not in labels:
        raise ValidationFailed(
            f"target label {target!r} is not in the label space {labels}",
            code="target_label_not_in_label_space",
        )
    draft_value, record, draft_bytes = _draft_value(
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
        entry = _result_json(mv, d, o, latency[mv.pk], target)
        out_models.append(entry)
        stored = {
            k: entry[k]
            for k in (
                "status",
                "predicted_label",
                "probabilities",
                "original_predicted_label",
                "flipped",
                "outcome",
            )
        }
        stored["target_label"] = target
        if mv.pk in failed:
            stored["error"] = failed[mv.pk][:500]
        stored_scores[str(mv.pk)] = stored

    seq = attempt_record(
        assignment=assignment,
        cap=cap,
        modality=modality,
        value=record,
        content_hash=content_hash(draft),
        scores=stored_scores,
    )
    return {
        "attempt": {"seq": seq},
        "target_label": target or None,
        "feedback": arm,
        "models": out_models if arm == "shown" else [],
    }
