"""Perturbation tasks (docs/perturbation.md): an annotator of the campaign leases the next
perturbed item of a study and labels it (label + confidence, no edit step).

Which (example, level) a person gets is decided by annotation.perturbation_design (one
function); the lease only picks the example: the first of the study's examples in the pool's
order that this person never held a task of, in any kind (an example they annotated, validated
an edit of, or saw perturbed is never shown to them again, so nobody learns an example at a
low level and recognises it at a high one). The database holds the rule too: one perturbation
assignment per (campaign, example, annotator).

Perturbation tasks take no slot of the pool's redundancy counters: every participant goes
through the whole study, so concurrent leases of different people share no row and never wait
on each other; the same person in two tabs meets the one-open-lease constraint and gets the
winner's lease back."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from annotation.models import (
    Assignment,
    Campaign,
    CampaignExample,
    PerturbationLabel,
    PerturbationParticipant,
    PerturbationStudy,
    PerturbedItem,
)
from annotation.perturbation_design import perturbation_level
from annotation.services.assignments import (
    ACTIVE,
    AlreadySubmitted,
    LeaseResult,
    claim_for_submit,
    lease_expiry,
    replay_after_integrity_error,
    request_hash,
    stored_for_key,
)
from counterpoint.errors import Conflict, ValidationFailed

PERTURBATION = Assignment.Kind.PERTURBATION


def participant_slot(*, study: PerturbationStudy, annotator: Any) -> int:
    """The annotator's row of the study's Latin square, given at their first lease: the next
    free slot (the unique (study, slot) constraint settles two people starting at once)."""
    found = (
        PerturbationParticipant.objects.filter(study=study, annotator_id=annotator.pk)
        .values_list("slot", flat=True)
        .first()
    )
    if found is not None:
        return int(found)
    for _ in range(20):  # bounded: each retry lost a race to someone who took a slot
        top = PerturbationParticipant.objects.filter(study=study).aggregate(m=Max("slot"))["m"]
        try:
            with transaction.atomic():
                row = PerturbationParticipant.objects.create(
                    study=study, annotator_id=annotator.pk, slot=0 if top is None else top + 1
                )
            return int(row.slot)
        except IntegrityError:
            mine = (
                PerturbationParticipant.objects.filter(study=study, annotator_id=annotator.pk)
                .values_list("slot", flat=True)
                .first()
            )
            if mine is not None:
                return int(mine)
    raise Conflict("too many people started this study at once; try again", code="study_busy")


def _open_lease(*, campaign: Campaign, annotator: Any) -> Assignment | None:
    current = (
        Assignment.objects.select_related("perturbed_item", "example")
        .filter(campaign=campaign, annotator_id=annotator.pk, kind=PERTURBATION, status=ACTIVE)
        .first()
    )
    if current is None:
        return None
    now = timezone.now()
    if current.expires_at <= now:
        new_expiry = lease_expiry(campaign, now)
        if not Assignment.objects.filter(pk=current.pk, status=ACTIVE).update(
            expires_at=new_expiry
        ):
            return None
        current.expires_at = new_expiry
    return current


def perturbation_lease(*, study: PerturbationStudy, annotator: Any) -> LeaseResult:
    """The annotator's open perturbation task in the study's campaign, or the next one of
    `study`; `assignment=None` when they have seen every example of it. Precondition: the
    caller checked the annotator role (access.campaign_for_user). Conflict
    campaign_not_active, study_not_ready."""
    campaign = study.campaign
    if campaign.status != Campaign.Status.ACTIVE:
        raise Conflict(
            f"campaign {campaign.name!r} is {campaign.status}, not active",
            code="campaign_not_active",
        )
    if study.status != PerturbationStudy.Status.READY:
        raise Conflict(
            f"study {study.name!r} is {study.status}: its items are not all built yet",
            code="study_not_ready",
        )
    current = _open_lease(campaign=campaign, annotator=annotator)
    if current is not None:
        return LeaseResult(current, created=False)
    slot = participant_slot(study=study, annotator=annotator)
    held = Assignment.objects.filter(campaign=campaign, annotator_id=annotator.pk).values(
        "example_id"
    )
    in_study = PerturbedItem.objects.filter(study=study, level_index=0).values("example_id")
    n_levels = len(study.levels)
    for _ in range(5):  # bounded: a retry follows a lost race (the once-per-example rule)
        pick = (
            CampaignExample.objects.filter(campaign=campaign, example_id__in=in_study)
            .exclude(example_id__in=held)
            .order_by("rank", "id")
            .values_list("example_id", "is_gold")
            .first()
        )
        if pick is None:
            return LeaseResult(None, created=False)
        example_id, is_gold = pick
        position = (
            PerturbedItem.objects.filter(study=study, example_id=example_id)
            .values_list("position", flat=True)
            .first()
        )
        level_index = perturbation_level(
            slot=slot, position=int(position or 0), n_levels=n_levels, is_gold=is_gold
        )
        item = PerturbedItem.objects.filter(
            study=study, example_id=example_id, level_index=level_index
        ).first()
        if item is None:
            return LeaseResult(None, created=False)
        now = timezone.now()
        try:
            with transaction.atomic():
                assignment = Assignment.objects.create(
                    campaign=campaign,
                    kind=PERTURBATION,
                    example_id=example_id,
                    perturbed_item=item,
                    annotator=annotator,
                    is_gold=is_gold,
                    leased_at=now,
                    expires_at=lease_expiry(campaign, now),
                )
        except IntegrityError:
            # Two tabs of the same person: the one-open-lease rule let the other win.
            current = _open_lease(campaign=campaign, annotator=annotator)
            if current is not None:
                return LeaseResult(current, created=False)
            continue
        assignment.perturbed_item = item
        return LeaseResult(assignment, created=True)
    raise Conflict("the task changed while leasing it; try again", code="assignment_busy")


def perturbation_label_submit(
    *,
    assignment: Assignment,
    label: Any,
    confidence: Any = None,
    time_spent_ms: Any = 0,
    idempotency_key: str | None = None,
) -> tuple[PerturbationLabel, bool]:
    """Store the label of a perturbation task (and close it); (row, created). A retry with the
    same idempotency key and body returns the stored row. Raises ValidationFailed
    label_invalid, confidence_invalid; Conflict already_submitted, assignment_skipped,
    idempotency_key_reused."""
    campaign = assignment.campaign
    labels = list(campaign.dataset.label_space)
    if not isinstance(label, str) or label not in labels:
        raise ValidationFailed(f"label must be one of {', '.join(labels)}", code="label_invalid")
    if confidence is not None and (
        isinstance(confidence, bool) or not isinstance(confidence, int) or not 1 <= confidence <= 5
    ):
        raise ValidationFailed("confidence must be 1 to 5 (or absent)", code="confidence_invalid")
    spent = time_spent_ms if isinstance(time_spent_ms, int) and time_spent_ms >= 0 else 0
    body_hash = request_hash({"label": label, "confidence": confidence})
    item = assignment.perturbed_item
    if item is None:
        raise ValidationFailed("this is not a perturbation task", code="kind_mismatch")
    try:
        with transaction.atomic():
            previous = claim_for_submit(assignment)
            row = PerturbationLabel.objects.create(
                assignment=assignment,
                study_id=item.study_id,
                item=item,
                example_id=assignment.example_id,
                annotator_id=assignment.annotator_id,
                level_index=item.level_index,
                label=label,
                confidence=confidence,
                is_gold=assignment.is_gold,
                time_spent_ms=min(spent, 2**31 - 1),
                idempotency_key=idempotency_key,
                request_hash=body_hash,
                late=previous != ACTIVE,
            )
    except IntegrityError:
        stored = replay_after_integrity_error(
            PerturbationLabel,
            owner_field="annotator_id",
            assignment=assignment,
            key=idempotency_key,
            body_hash=body_hash,
        )
        if stored is None:
            raise
        return stored, False
    except AlreadySubmitted:
        stored = stored_for_key(
            PerturbationLabel,
            owner_field="annotator_id",
            assignment=assignment,
            key=idempotency_key,
            body_hash=body_hash,
        )
        return stored, False
    return row, True
