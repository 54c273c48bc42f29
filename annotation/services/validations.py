"""Blind validation of counterfactual edits (docs/architecture.md "Domain" and "Counterfactual protocol").

Verdict rule, with R = campaign.validations_required and V = campaign.validations_to_verify:
- a validation *agrees* when its label is the edit's target label and it is not flagged
  broken (a broken/unreadable flag counts as disagreement);
- the edit is **verified** as soon as agreeing validations ≥ V (agreements only grow, so a
  verified edit stays verified);
- it is **disputed** once it has R validations and is not verified;
- otherwise **pending**. An edit takes validations until it has R of them.
Counters move under the edit's row lock (taken after the assignment row, the same lock order
as everywhere in services.assignments), so the verdict is computed from current numbers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F

from annotation.models import Assignment, Campaign, CounterfactualEdit, Validation
from annotation.services.annotations import clean_idempotency_key
from annotation.services.assignments import (
    ACTIVE,
    EXPIRED,
    SUBMITTABLE_CAMPAIGN,
    SUBMITTED,
    VALIDATE,
    AlreadySubmitted,
    claim_for_submit,
    replay_after_integrity_error,
    request_hash,
    stored_for_key,
)
from counterpoint.errors import Conflict, ValidationFailed

COMMENT_MAX_CHARS = 5_000


def edit_status(
    *, validations_count: int, validations_agree: int, required: int, to_verify: int
) -> str:
    if validations_agree >= to_verify:
        return CounterfactualEdit.Status.VERIFIED
    if validations_count >= required:
        return CounterfactualEdit.Status.DISPUTED
    return CounterfactualEdit.Status.PENDING


@dataclass(frozen=True)
class ValidationResult:
    validation: Validation
    created: bool


def _stored(assignment: Assignment, key: str | None, body_hash: str) -> ValidationResult:
    found = stored_for_key(
        Validation, owner_field="validator_id", assignment=assignment, key=key, body_hash=body_hash
    )
    return ValidationResult(found, created=False)


def validation_submit(
    *,
    assignment: Assignment,
    idempotency_key: Any = None,
    label: Any = "",
    broken: Any = False,
    comment: Any = "",
) -> ValidationResult:
    """Precondition: the caller holds `assignment` (kind validate). A late validation on an
    expired lease is accepted while the edit still needs validations."""
    if assignment.kind != VALIDATE:
        raise ValidationFailed(
            "this is an annotation task; submit an annotation", code="kind_mismatch"
        )
    key = clean_idempotency_key(idempotency_key)
    body_hash = request_hash({"label": label, "broken": broken, "comment": comment})
    if assignment.status == SUBMITTED:
        return _stored(assignment, key, body_hash)
    campaign: Campaign = assignment.campaign
    if campaign.status not in SUBMITTABLE_CAMPAIGN:
        raise Conflict(
            f"campaign {campaign.name!r} is {campaign.status}; submissions are closed",
            code="campaign_not_active",
        )
    if not isinstance(broken, bool):
        raise ValidationFailed("broken must be true or false", code="validation_invalid")
    label = "" if label is None else str(label)
    labels = list(campaign.dataset.label_space)
    if not label and not broken:
        raise ValidationFailed(
            "choose the label the edited example shows, or flag it as broken",
            code="validation_label_required",
        )
    if label and label not in labels:
        raise ValidationFailed(
            f"label {label!r} is not in the label space {labels}", code="label_not_in_label_space"
        )
    comment = "" if comment is None else str(comment)
    if len(comment) > COMMENT_MAX_CHARS:
        raise ValidationFailed(
            f"the comment is over {COMMENT_MAX_CHARS:,} characters", code="comment_too_long"
        )

    try:
        with transaction.atomic():
            prior = claim_for_submit(assignment)
            edit = CounterfactualEdit.objects.select_for_update().get(
                id=int(assignment.edit_id or 0)
            )
            if prior == EXPIRED:
                others = Assignment.objects.filter(
                    edit_id=edit.pk, kind=VALIDATE, status=ACTIVE
                ).count()
                if edit.validations_count + others >= campaign.validations_required:
                    raise Conflict(
                        "your lease expired and this edit has meanwhile received all its validations; "
                        "your work is kept as a draft",
                        code="lease_expired_no_room",
                    )
            validation = Validation.objects.create(
                assignment=assignment,
                edit=edit,
                validator_id=assignment.annotator_id,
                label=label,
                broken=broken,
                comment=comment,
                idempotency_key=key,
                request_hash=body_hash,
            )
            agrees = int(label == edit.target_label and not broken)
            status = edit_status(
                validations_count=edit.validations_count + 1,
                validations_agree=edit.validations_agree + agrees,
                required=campaign.validations_required,
                to_verify=campaign.validations_to_verify,
            )
            CounterfactualEdit.objects.filter(pk=edit.pk).update(
                validations_count=F("validations_count") + 1,
                validations_agree=F("validations_agree") + agrees,
                status=status,
            )
    except AlreadySubmitted:
        return _stored(assignment, key, body_hash)
    except IntegrityError:
        found = replay_after_integrity_error(
            Validation,
            owner_field="validator_id",
            assignment=assignment,
            key=key,
            body_hash=body_hash,
        )
        if found is None:
            raise
        return ValidationResult(found, created=False)
    assignment.status = SUBMITTED
    return ValidationResult(validation, created=True)
