"""Submitting an annotation (label, confidence, rationale, reliance, evidence) with its
optional counterfactual edit. Every rule is checked before anything is written; the write is
one transaction; an idempotency key makes a retried or double-clicked submit store once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from annotation.models import (
    Annotation,
    Assignment,
    CampaignExample,
    CounterfactualEdit,
    Example,
    Media,
)
from annotation.services.assignments import (
    ACTIVE,
    ANNOTATE,
    EXPIRED,
    SUBMITTABLE_CAMPAIGN,
    SUBMITTED,
    AlreadySubmitted,
    claim_for_submit,
    insert_parts,
    one_statement,
    quote,
    replay_after_integrity_error,
    request_hash,
    stored_for_key,
)
from annotation.services.counterfactuals import (
    CheckedEdit,
    counterfactual_check,
    counterfactual_edit_for,
    counterfactual_store_media,
    counterfactual_submit,
    edit_scores_enqueue,
)
from annotation.services.rounds import open_round_query
from counterpoint.errors import Conflict, ValidationFailed

RATIONALE_MAX_CHARS = 20_000
EVIDENCE_MAX_ITEMS = 200
IDEMPOTENCY_KEY_MAX = 100
RELIANCE_NEEDS_MODALITY = {Annotation.Reliance.SPECIALIZATION, Annotation.Reliance.TRANSFER}


@dataclass(frozen=True)
class SubmitResult:
    annotation: Annotation
    edit: CounterfactualEdit | None
    created: bool  # False: an idempotent repeat answered with the stored result


# --- input rules --------------------------------------------------------------------------------


def clean_idempotency_key(key: Any) -> str | None:
    if key is None or key == "":
        return None
    if not isinstance(key, str) or len(key) > IDEMPOTENCY_KEY_MAX:
        raise ValidationFailed(
            f"idempotency_key must be a string of at most {IDEMPOTENCY_KEY_MAX} characters",
            code="idempotency_key_invalid",
        )
    return key


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def time_spent(*, reported_ms: int, leased_at: datetime, now: datetime) -> int:
    """The time_spent_ms stored with an annotation: what the page counted over all its loads
    (it resumes its clock from the autosaved draft), but never more than the lease has
    existed, since nobody worked on the task before it was handed out."""
    lease_age_ms = max(0, int((now - leased_at).total_seconds() * 1000))
    return max(0, min(reported_ms, lease_age_ms, 2**31 - 1))


def _clean_confidence(value: Any) -> int | None:
    if value is None or value == "":
        return None
    number = _as_int(value)
    if number is None or not 1 <= number <= 5:
        raise ValidationFailed(
            f"confidence must be a whole number from 1 to 5, got {value!r}",
            code="confidence_out_of_range",
        )
    return number


def _clean_reliance(reliance: Any, modality: Any, names: list[str]) -> tuple[str, str]:
    reliance = reliance or ""
    if reliance not in ["", *Annotation.Reliance.values]:
        raise ValidationFailed(
            f"reliance must be one of {', '.join(Annotation.Reliance.values)} (or empty), got {reliance!r}",
            code="reliance_unknown",
        )
    if reliance not in RELIANCE_NEEDS_MODALITY:
        return reliance, ""  # the modality only means something for these two answers
    if modality not in names:
        raise ValidationFailed(
            f"reliance {reliance!r} needs reliance_modality, one of {', '.join(names)}",
            code="reliance_modality_required",
        )
    return reliance, str(modality)


def _number(item: dict[str, Any], key: str) -> float:
    value = item.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationFailed(f"evidence box needs a number {key!r}", code="evidence_invalid")
    return float(value)


def _clean_evidence(
    evidence: Any,
    example: Example,
    kinds: dict[str, str],
    image_size: Callable[[str], tuple[int, int] | None],
) -> list[dict[str, Any]]:
    """Spans index the original text in characters; boxes are in source pixels. The span's
    text is taken from the original, never trusted from the client."""
    if evidence is None or evidence == "":
        return []
    if not isinstance(evidence, list):
        raise ValidationFailed("evidence must be a list", code="evidence_invalid")
    if len(evidence) > EVIDENCE_MAX_ITEMS:
        raise ValidationFailed(
            f"at most {EVIDENCE_MAX_ITEMS} evidence items", code="evidence_invalid"
        )
    out: list[dict[str, Any]] = []
    for i, item in enumerate(evidence):
        if not isinstance(item, dict) or item.get("modality") not in kinds:
            raise ValidationFailed(
                f"evidence[{i}] must name one of the modalities {list(kinds)}",
                code="evidence_invalid",
            )
        modality = item["modality"]
        kind = kinds[modality]
        value = example.values.get(modality)
        if kind == "text":
            start, end = _as_int(item.get("start")), _as_int(item.get("end"))
            text = value if isinstance(value, str) else ""
            if (
                item.get("type") != "span"
                or start is None
                or end is None
                or not 0 <= start < end <= len(text)
            ):
                raise ValidationFailed(
                    f"evidence[{i}] on text {modality!r} must be a span with 0 ≤ start < end ≤ {len(text)}",
                    code="evidence_invalid",
                )
            out.append(
                {
                    "modality": modality,
                    "type": "span",
                    "start": start,
                    "end": end,
                    "text": text[start:end],
                }
            )
        elif kind == "image":
            if item.get("type") != "box":
                raise ValidationFailed(
                    f"evidence[{i}] on image {modality!r} must be a box", code="evidence_invalid"
                )
            x, y, w, h = (_number(item, k) for k in ("x", "y", "w", "h"))
            size = image_size(str(value))
            width, height = size if size else (float("inf"), float("inf"))
            if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > width or y + h > height:
                raise ValidationFailed(
                    f"evidence[{i}] box must lie inside the {width}x{height} image with a positive size",
                    code="evidence_invalid",
                )
            out.append({"modality": modality, "type": "box", "x": x, "y": y, "w": w, "h": h})
        else:
            feature = item.get("feature")
            if item.get("type") != "feature" or not isinstance(value, dict) or feature not in value:
                raise ValidationFailed(
                    f"evidence[{i}] on table {modality!r} must be {{'type': 'feature', 'feature': name}}",
                    code="evidence_invalid",
                )
            out.append({"modality": modality, "type": "feature", "feature": feature})
    return out


def _image_size_lookup(
    example: Example, kinds: dict[str, str]
) -> Callable[[str], tuple[int, int] | None]:
    shas = [str(example.values.get(n)) for n, k in kinds.items() if k == "image"]
    cache: dict[str, tuple[int, int] | None] = {}

    def lookup(sha: str) -> tuple[int, int] | None:
        if not cache:
            for s, w, h in Media.objects.filter(sha256__in=shas).values_list(
                "sha256", "width", "height"
            ):
                cache[s] = (w, h) if w and h else None
            cache.setdefault("", None)  # mark as loaded
        return cache.get(sha)

    return lookup


# --- submit ---------------------------------------------------------------------------------------


def _stored_result(assignment: Assignment, key: str | None, body_hash: str) -> SubmitResult:
    """The answer to a repeat of a submission that is already stored."""
    annotation = stored_for_key(
        Annotation, owner_field="annotator_id", assignment=assignment, key=key, body_hash=body_hash
    )
    return _result_for(annotation)


def _result_for(annotation: Annotation) -> SubmitResult:
    edit = CounterfactualEdit.objects.filter(annotation=annotation).first()
    return SubmitResult(annotation, edit, created=False)


def _check_room_for_late(assignment: Assignment, redundancy: int) -> None:
    item = (
        CampaignExample.objects.select_for_update()
        .filter(campaign_id=assignment.campaign_id, example_id=assignment.example_id)
        .values_list("completed", "in_flight")
        .first()
    )
    if item is None or item[0] + item[1] >= redundancy:
        raise Conflict(
            "your lease expired and this example has meanwhile received all its annotations; "
            "your work is kept as a draft",
            code="lease_expired_no_room",
        )


def annotation_submit(
    *,
    assignment: Assignment,
    idempotency_key: Any = None,
    label: Any = "",
    confidence: Any = None,
    rationale: Any = "",
    reliance: Any = "",
    reliance_modality: Any = "",
    evidence: Any = None,
    time_spent_ms: Any = 0,
    counterfactual: Any = None,
    tabular_mad: Callable[[str], Any] | None = None,
    now: datetime | None = None,
) -> SubmitResult:
    """Precondition: the caller holds `assignment` (access.assignment_for_user), kind annotate.
    Late submission on an expired lease is accepted while the example has room."""
    if assignment.kind != ANNOTATE:
        raise ValidationFailed(
            "this is a validation task; submit a validation", code="kind_mismatch"
        )
    key = clean_idempotency_key(idempotency_key)
    body_hash = request_hash(
        {
            "label": label,
            "confidence": confidence,
            "rationale": rationale,
            "reliance": reliance,
            "reliance_modality": reliance_modality,
            "evidence": evidence,
            "counterfactual": counterfactual,
        }
    )
    if assignment.status == SUBMITTED:
        return _stored_result(assignment, key, body_hash)
    campaign = assignment.campaign
    if campaign.status not in SUBMITTABLE_CAMPAIGN:
        raise Conflict(
            f"campaign {campaign.name!r} is {campaign.status}; submissions are closed",
            code="campaign_not_active",
        )
    example = assignment.example
    dataset = campaign.dataset
    kinds = {m["name"]: m["kind"] for m in dataset.modalities}
    labels = list(dataset.label_space)

    label = "" if label is None else str(label)
    if label not in labels and (label or campaign.task_label or campaign.task_counterfactual):
        raise ValidationFailed(
            f"label {label!r} is not in the label space {labels}", code="label_not_in_label_space"
        )
    conf = _clean_confidence(confidence)
    rationale = "" if rationale is None else str(rationale)
    if len(rationale) > RATIONALE_MAX_CHARS:
        raise ValidationFailed(
            f"the rationale is over {RATIONALE_MAX_CHARS:,} characters", code="rationale_too_long"
        )
    rel, rel_modality = _clean_reliance(reliance, reliance_modality, list(kinds))
    clean_evidence = _clean_evidence(evidence, example, kinds, _image_size_lookup(example, kinds))
    reported = _as_int(time_spent_ms) if time_spent_ms not in (None, "") else 0
    if reported is None or reported < 0:
        raise ValidationFailed(
            "time_spent_ms must be a whole number ≥ 0", code="time_spent_invalid"
        )

    checked: CheckedEdit | None = None
    if counterfactual is None:
        if campaign.task_counterfactual:
            raise ValidationFailed(
                "this campaign asks for a counterfactual edit with every label",
                code="counterfactual_required",
            )
    else:
        checked = counterfactual_check(
            campaign=campaign,
            assignment=assignment,
            example=example,
            label=label,
            counterfactual=counterfactual,
            tabular_mad=tabular_mad,
        )
        counterfactual_store_media(checked=checked)

    now = now or timezone.now()
    spent = time_spent(reported_ms=reported, leased_at=assignment.leased_at, now=now)
    fields = {
        "campaign_id": campaign.pk,
        "example_id": example.pk,
        "annotator_id": assignment.annotator_id,
        "label": label,
        "confidence": conf,
        "rationale": rationale,
        "reliance": rel,
        "reliance_modality": rel_modality,
        "evidence": clean_evidence,
        "time_spent_ms": spent,
        "is_gold": assignment.is_gold,
        "idempotency_key": key,
        "request_hash": body_hash,
    }
    try:
        if connection.vendor == "postgresql" and assignment.status == ACTIVE:
            fast = _submit_pg(
                assignment=assignment,
                annotation=Annotation(
                    assignment=assignment, late=assignment.expires_at <= now, **fields
                ),
                checked=checked,
                now=now,
            )
            if fast is not None:
                assignment.status = SUBMITTED
                edit_scores_enqueue(edit=fast[1])
                return SubmitResult(fast[0], fast[1], created=True)
            # The lease changed under us (swept, or a concurrent twin submitted first): the
            # general path below reads the new status and answers accordingly.
        with transaction.atomic():
            prior = claim_for_submit(assignment)
            late = prior == EXPIRED or assignment.expires_at <= now
            if prior == EXPIRED:
                _check_room_for_late(assignment, campaign.redundancy)
            annotation = Annotation.objects.create(assignment=assignment, late=late, **fields)
            edit = (
                counterfactual_submit(annotation=annotation, checked=checked) if checked else None
            )
            CampaignExample.objects.filter(campaign_id=campaign.pk, example_id=example.pk).update(
                completed=F("completed") + 1,
                in_flight=F("in_flight") - (1 if prior == ACTIVE else 0),
            )
    except AlreadySubmitted:
        # A concurrent duplicate won the race (same key: its stored result is ours too).
        return _stored_result(assignment, key, body_hash)
    except IntegrityError:
        found = replay_after_integrity_error(
            Annotation,
            owner_field="annotator_id",
            assignment=assignment,
            key=key,
            body_hash=body_hash,
        )
        if found is None:
            raise
        return _result_for(found)
    assignment.status = SUBMITTED
    edit_scores_enqueue(edit=edit)
    return SubmitResult(annotation, edit, created=True)


def _submit_pg(
    *, assignment: Assignment, annotation: Annotation, checked: CheckedEdit | None, now: datetime
) -> tuple[Annotation, CounterfactualEdit | None] | None:
    """The common case on PostgreSQL, an open lease, as one statement: claim the assignment
    (conditional on it still being active), insert the annotation and the edit, move the pool
    counters. None when the claim found the lease no longer active (nothing was written)."""
    asg, ann, ce = (quote(m._meta.db_table) for m in (Assignment, Annotation, CampaignExample))
    a_cols, a_vals, a_params = insert_parts(annotation)
    edit = counterfactual_edit_for(annotation=annotation, checked=checked) if checked else None
    edit_sql, edit_select = "", "NULL"
    edit_params: list[Any] = []
    if edit is not None:
        round_sql, round_params = open_round_query(
            campaign_id=assignment.campaign_id
        ).query.sql_with_params()
        e_cols, e_vals, edit_params = insert_parts(
            edit,
            sql_values={"annotation_id": "ann.id", "round_id": (f"({round_sql})", round_params)},
        )
        edit_sql = f""", edit AS (
            INSERT INTO {quote(CounterfactualEdit._meta.db_table)} ({e_cols}) SELECT {e_vals} FROM ann RETURNING id, round_id
        )"""
        edit_select = "(SELECT id FROM edit), (SELECT round_id FROM edit)"
    sql = f"""
        WITH claimed AS (
            UPDATE {asg} SET status = %s, submitted_at = %s WHERE id = %s AND status = %s RETURNING id
        ), ann AS (
            INSERT INTO {ann} ({a_cols}) SELECT {a_vals} FROM claimed RETURNING id
        ){edit_sql}, counted AS (
            UPDATE {ce} SET completed = {ce}.completed + 1, in_flight = {ce}.in_flight - 1
            FROM claimed WHERE {ce}.campaign_id = %s AND {ce}.example_id = %s
        )
        SELECT ann.id, {edit_select} FROM ann"""
    params = [
        SUBMITTED, connection.ops.adapt_datetimefield_value(now), assignment.pk, ACTIVE,
        *a_params, *edit_params,
        assignment.campaign_id, assignment.example_id,
    ]  # fmt: skip
    with one_statement(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    annotation.pk = row[0]
    annotation._state.adding = False
    annotation._state.db = "default"
    if edit is not None:
        edit.pk = row[1]
        edit.round_id = row[2]
        edit._state.adding = False
        edit._state.db = "default"
    return annotation, edit
