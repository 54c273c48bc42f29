"""Leases (DESIGN §3 Assignment): hand out the next example or edit, expire, skip, drafts.

Invariant kept here and in annotations/validations: for every pool row
`completed + in_flight ≤ redundancy`, where `in_flight` counts the example's ACTIVE annotate
leases. Every status change of an assignment is a conditional update on its old status
(`filter(status=…).update(…) == 1`), so each counter moves exactly once per transition.

Concurrency:
- PostgreSQL: the lease takes the first eligible pool row with `FOR UPDATE SKIP LOCKED`, so
  concurrent leases never wait on each other and never pick the same slot twice; the room
  test is re-checked by PostgreSQL on the locked (newest) row version. Every code path that
  raises an example's load (lease, late submit) holds that row's lock.
- Lock order is always assignment row → pool row / edit row (sweep, submit, skip), and the
  lease only locks pool rows it can skip, so no two transactions wait on each other in a
  cycle.
- SQLite: `transaction_mode=IMMEDIATE` makes every transaction take the write lock at BEGIN,
  so the same code runs serialised (SELECT … FOR UPDATE is ignored there).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Case, Count, Exists, F, IntegerField, OuterRef, Q, Value, When
from django.utils import timezone

from annotation import policy
from annotation.models import (
    Assignment,
    Campaign,
    CampaignExample,
    CounterfactualEdit,
    Membership,
)
from counterpoint.errors import Conflict, Forbidden, ValidationFailed

ACTIVE = Assignment.Status.ACTIVE
EXPIRED = Assignment.Status.EXPIRED
SUBMITTED = Assignment.Status.SUBMITTED
SKIPPED = Assignment.Status.SKIPPED
ANNOTATE = Assignment.Kind.ANNOTATE
VALIDATE = Assignment.Kind.VALIDATE

DRAFT_MAX_BYTES = 2 * 1024 * 1024
SWEEP_BATCH = 200
# Validation candidates are locked a batch at a time (their free slots are counted after
# the lock, see _lease_validation); a handful covers the common case in one round trip.
VALIDATION_BATCH = 16
ROLES_FOR_KIND: dict[str, tuple[str, ...]] = {
    ANNOTATE: (Membership.Role.ANNOTATOR,),
    VALIDATE: (Membership.Role.ANNOTATOR, Membership.Role.VALIDATOR),
}


@dataclass(frozen=True)
class LeaseResult:
    assignment: Assignment | None  # None: nothing left for this person
    created: bool


def lease_expiry(campaign: Campaign, now: datetime) -> datetime:
    return now + timedelta(seconds=campaign.lease_seconds)


# --- expiry -----------------------------------------------------------------------------------


def assignment_expire_stale(
    *, campaign: Campaign | None = None, now: datetime | None = None, limit: int = SWEEP_BATCH
) -> int:
    """Expire open leases past `expires_at` and return their slots to the pool. Safe to run
    from any number of processes at once (each claims different rows with SKIP LOCKED); run
    lazily by every lease and periodically for the whole site. Returns how many expired."""
    now = now or timezone.now()
    stale = Assignment.objects.filter(status=ACTIVE, expires_at__lt=now)
    if campaign is not None:
        stale = stale.filter(campaign=campaign)
    # Cheap unlocked probe first: the common answer is "none", and then no write
    # transaction (on SQLite: no write lock) is taken at all.
    if not stale.exists():
        return 0
    with transaction.atomic():
        rows = list(
            stale.select_for_update(skip_locked=True)
            .order_by("id")
            .values_list("id", "kind", "campaign_id", "example_id")[:limit]
        )
        if not rows:
            return 0
        Assignment.objects.filter(id__in=[r[0] for r in rows], status=ACTIVE).update(status=EXPIRED)
        per_item: dict[tuple[int, int], int] = {}
        for _, kind, campaign_id, example_id in rows:
            if kind == ANNOTATE:
                per_item[(campaign_id, example_id)] = per_item.get((campaign_id, example_id), 0) + 1
        # Sorted so concurrent sweepers lock pool rows in one order.
        for (campaign_id, example_id), n in sorted(per_item.items()):
            CampaignExample.objects.filter(campaign_id=campaign_id, example_id=example_id).update(
                in_flight=F("in_flight") - n
            )
    return len(rows)


# --- lease ------------------------------------------------------------------------------------


def _open_lease(
    *, campaign: Campaign, annotator: Any, kind: str, now: datetime
) -> Assignment | None:
    """The annotator's open lease of this kind, renewed if it ran past its expiry but was
    not swept yet (its slot is still counted as theirs, so renewing takes nothing away)."""
    current = (
        Assignment.objects.filter(campaign=campaign, annotator=annotator, kind=kind, status=ACTIVE)
        .select_related("example", "edit")
        .first()
    )
    if current is None:
        return None
    current.campaign = campaign
    current.annotator = annotator
    if current.expires_at <= now:
        new_expiry = lease_expiry(campaign, now)
        if not Assignment.objects.filter(pk=current.pk, status=ACTIVE).update(
            expires_at=new_expiry
        ):
            return None  # swept meanwhile: its slot went back to the pool
        current.expires_at = new_expiry
    return current


def _tasks_so_far(*, campaign: Campaign, annotator: Any) -> int:
    return Assignment.objects.filter(campaign=campaign, annotator=annotator, kind=ANNOTATE).count()


def _quota_filled(campaign: Campaign) -> dict[policy.Cell, int]:
    filled: dict[policy.Cell, int] = {}
    done = (
        CounterfactualEdit.objects.filter(campaign=campaign)
        .values_list("modality", "target_label")
        .annotate(n=Count("id"))
        .order_by()
    )
    leased = (
        Assignment.objects.filter(campaign=campaign, kind=ANNOTATE, status=ACTIVE)
        .exclude(cf_modality="")
        .values_list("cf_modality", "cf_target_label")
        .annotate(n=Count("id"))
        .order_by()
    )
    for modality, label, n in [*done, *leased]:
        filled[(modality, label)] = filled.get((modality, label), 0) + n
    return filled


def _quota_for(campaign: Campaign, example_label: str | None) -> policy.Cell | None:
    if not (campaign.balance_counterfactuals and campaign.task_counterfactual):
        return None
    names = campaign.dataset.modality_names()
    editable = [m for m in campaign.editable_modalities if m in names]
    # Balancing cannot see concurrent leases that have not committed yet; two simultaneous
    # leases may pick the same cell. The next lease sees both, so the imbalance is ≤ the
    # number of concurrent leases, not cumulative.
    return policy.quota_cell(
        modalities=editable,
        labels=list(campaign.dataset.label_space),
        filled=_quota_filled(campaign),
        exclude_label=example_label or None,
    )


def _lease_annotation(*, campaign: Campaign, annotator: Any, now: datetime) -> Assignment | None:
    gold = None
    if campaign.gold_rate > 0:
        gold = policy.want_gold(
            gold_rate=campaign.gold_rate,
            seed=campaign.seed,
            annotator_id=annotator.pk,
            tasks_so_far=_tasks_so_far(campaign=campaign, annotator=annotator),
        )
    held = Assignment.objects.filter(
        campaign_id=campaign.pk,
        annotator_id=annotator.pk,
        kind=ANNOTATE,
        example_id=OuterRef("example_id"),
    )
    # The SQL twin of policy.order_pool (tests pin the two to the same sequence).
    order: list[Any] = []
    if gold is not None:
        order.append(
            Case(When(is_gold=gold, then=Value(0)), default=Value(1), output_field=IntegerField())
        )
    order += [
        Case(
            When(completed=0, in_flight=0, then=Value(1)),
            default=Value(0),
            output_field=IntegerField(),
        ),
        "rank",
        "id",
    ]
    with transaction.atomic():
        item = (
            CampaignExample.objects.filter(campaign_id=campaign.pk)
            .alias(load=F("completed") + F("in_flight"))
            .filter(load__lt=campaign.redundancy)
            .filter(~Exists(held))
            .order_by(*order)
            .select_related("example")
            .only(
                "id",
                "is_gold",
                "example__id",
                "example__dataset_id",
                "example__label",
                "example__values",
            )
            .select_for_update(skip_locked=True, of=("self",))
            .first()
        )
        if item is None:
            return None
        example = item.example
        cell = _quota_for(campaign, example.label)
        assignment = Assignment.objects.create(
            campaign=campaign,
            kind=ANNOTATE,
            example=example,
            annotator=annotator,
            is_gold=item.is_gold,
            cf_modality=cell[0] if cell else "",
            cf_target_label=cell[1] if cell else "",
            leased_at=now,
            expires_at=lease_expiry(campaign, now),
        )
        CampaignExample.objects.filter(pk=item.pk).update(in_flight=F("in_flight") + 1)
    return assignment


def _lease_validation(*, campaign: Campaign, annotator: Any, now: datetime) -> Assignment | None:
    if not campaign.task_validation:
        return None
    held = Assignment.objects.filter(
        kind=VALIDATE, annotator_id=annotator.pk, edit_id=OuterRef("pk")
    )
    base = (
        CounterfactualEdit.objects.filter(
            campaign_id=campaign.pk, validations_count__lt=campaign.validations_required
        )
        .exclude(author_id=annotator.pk)
        .filter(~Exists(held))
        .order_by("-validations_count", "id")
    )
    seen: list[int] = []
    with transaction.atomic():
        # Open validation leases are counted from the assignment rows, after the edit row is
        # locked: every transaction that adds a lease or a validation to an edit holds that
        # lock, so the count read in the next statement is current.
        for _ in range(50):  # bounded: 50 batches of locked-but-full edits is pathological
            batch = list(
                base.exclude(pk__in=seen)
                .select_for_update(skip_locked=True)
                .values_list("id", "author_id", "validations_count", "example_id")[
                    :VALIDATION_BATCH
                ]
            )
            if not batch:
                return None
            ids = [b[0] for b in batch]
            active = dict(
                Assignment.objects.filter(kind=VALIDATE, status=ACTIVE, edit_id__in=ids)
                .values_list("edit_id")
                .annotate(n=Count("id"))
                .order_by()
            )
            candidates = [
                policy.EditCandidate(
                    id=i, author_id=a, validations_count=c, active_leases=active.get(i, 0)
                )
                for i, a, c, _ in batch
            ]
            ordered = policy.validation_order(
                candidates,
                validator_id=annotator.pk,
                validations_required=campaign.validations_required,
            )
            if ordered:
                chosen = ordered[0]
                example_id = next(b[3] for b in batch if b[0] == chosen.id)
                return Assignment.objects.create(
                    campaign=campaign,
                    kind=VALIDATE,
                    example_id=example_id,
                    edit_id=chosen.id,
                    annotator=annotator,
                    leased_at=now,
                    expires_at=lease_expiry(campaign, now),
                )
            seen += ids
    return None


def assignment_lease(
    *, campaign: Campaign, annotator: Any, kind: str, roles: set[str] | None = None
) -> LeaseResult:
    """The annotator's open lease of `kind` in the campaign, or a new one; `assignment=None`
    when nothing is left for them. `roles`: the caller's roles in the campaign when the view
    already read them (saves a query); the rule is checked here either way."""
    if kind not in ROLES_FOR_KIND:
        raise ValidationFailed(
            f"kind must be 'annotate' or 'validate', got {kind!r}", code="kind_unknown"
        )
    if roles is None:
        roles = set(
            Membership.objects.filter(campaign=campaign, user_id=annotator.pk).values_list(
                "role", flat=True
            )
        )
    if not roles.intersection(ROLES_FOR_KIND[kind]):
        wanted = " or ".join(ROLES_FOR_KIND[kind])
        raise Forbidden(
            f"{kind} tasks need the {wanted} role in this campaign", code="role_required"
        )
    if campaign.status != Campaign.Status.ACTIVE:
        raise Conflict(
            f"campaign {campaign.name!r} is {campaign.status}, not active",
            code="campaign_not_active",
        )
    now = timezone.now()
    current = _open_lease(campaign=campaign, annotator=annotator, kind=kind, now=now)
    if current is not None:
        return LeaseResult(current, created=False)
    assignment_expire_stale(campaign=campaign, now=now)
    lease = _lease_annotation if kind == ANNOTATE else _lease_validation
    try:
        assignment = lease(campaign=campaign, annotator=annotator, now=now)
    except IntegrityError:
        # The same person leasing from two tabs at once: the one-open-lease constraint
        # let one transaction win; the other returns the winner's lease.
        current = _open_lease(campaign=campaign, annotator=annotator, kind=kind, now=timezone.now())
        if current is None:
            raise
        return LeaseResult(current, created=False)
    return LeaseResult(assignment, created=assignment is not None)


# --- submit (shared by annotations and validations) ----------------------------------------------

SUBMITTABLE_CAMPAIGN = {Campaign.Status.ACTIVE, Campaign.Status.PAUSED}


class AlreadySubmitted(Exception):
    """The assignment is already SUBMITTED (by this request's twin, or an earlier one)."""


def claim_for_submit(assignment: Assignment) -> str:
    """Move the assignment to SUBMITTED from whatever open status it has; returns that
    status (ACTIVE: it still holds its slot; EXPIRED: it must find room again). Locks the
    assignment row, the first lock of the submit transaction (see services.assignments)."""
    status = assignment.status
    for _ in range(3):
        if status in (ACTIVE, EXPIRED):
            if Assignment.objects.filter(pk=assignment.pk, status=status).update(
                status=SUBMITTED, submitted_at=timezone.now()
            ):
                return status
        elif status == SUBMITTED:
            raise AlreadySubmitted
        elif status == SKIPPED:
            raise Conflict(
                "this task was skipped; it can no longer be submitted", code="assignment_skipped"
            )
        status = Assignment.objects.filter(pk=assignment.pk).values_list("status", flat=True).get()
    raise Conflict("the task changed while submitting it; try again", code="assignment_busy")


# --- skip and drafts ---------------------------------------------------------------------------


def _release_slot(assignment: Assignment) -> None:
    if assignment.kind == ANNOTATE:
        CampaignExample.objects.filter(
            campaign_id=assignment.campaign_id, example_id=assignment.example_id
        ).update(in_flight=F("in_flight") - 1)


def assignment_skip(*, assignment: Assignment, reason: str = "") -> Assignment:
    """Give the task back: the slot returns to the pool for others, and the unique
    (example, annotator) row keeps it from ever being offered to this person again."""
    reason = (reason or "").strip()[:2000]
    for _ in range(3):  # status read → conditional update; retried if a sweep got in between
        status = Assignment.objects.filter(pk=assignment.pk).values_list("status", flat=True).get()
        if status == SUBMITTED:
            raise Conflict(
                "this task was already submitted; it cannot be skipped", code="already_submitted"
            )
        if status == SKIPPED:
            assignment.status = SKIPPED
            return assignment
        with transaction.atomic():
            if Assignment.objects.filter(pk=assignment.pk, status=status).update(
                status=SKIPPED, skip_reason=reason
            ):
                if status == ACTIVE:
                    _release_slot(assignment)
                assignment.status = SKIPPED
                assignment.skip_reason = reason
                return assignment
    raise Conflict("the task changed while skipping it; try again", code="assignment_busy")


def assignment_draft_save(*, assignment: Assignment, draft: Any) -> datetime:
    """Autosave work in progress. Allowed on an open lease and on an expired one (work is
    never lost); refused once submitted or skipped. Saving on an open lease also extends it:
    someone still typing is still working on it."""
    if not isinstance(draft, dict):
        raise ValidationFailed("draft must be a JSON object", code="draft_invalid")
    size = len(json.dumps(draft, separators=(",", ":")).encode("utf-8"))
    if size > DRAFT_MAX_BYTES:
        raise ValidationFailed(
            f"the draft is {size:,} bytes, over the cap of {DRAFT_MAX_BYTES:,} bytes",
            code="draft_too_large",
        )
    now = timezone.now()
    campaign = assignment.campaign
    updated = (
        Assignment.objects.filter(pk=assignment.pk)
        .filter(Q(status=ACTIVE) | Q(status=EXPIRED))
        .update(
            draft=draft,
            draft_updated_at=now,
            expires_at=Case(
                When(status=ACTIVE, then=Value(lease_expiry(campaign, now))),
                default=F("expires_at"),
            ),
        )
    )
    if not updated:
        status = Assignment.objects.filter(pk=assignment.pk).values_list("status", flat=True).get()
        if status == SKIPPED:
            raise Conflict(
                "this task was skipped; its draft can no longer change", code="assignment_skipped"
            )
        raise Conflict(
            "this task was already submitted; its draft can no longer change",
            code="already_submitted",
        )
    assignment.draft = draft
    assignment.draft_updated_at = now
    return now
