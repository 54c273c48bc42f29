"""Reads the annotator views share: task payloads, progress, the caller's place in a campaign.

What a Task may contain is decided here, once (docs/annotator_api.md): never a
gold flag or gold label, never another annotator's label, never model outputs; for a
validation task the edited values only (no original, no target label, no author)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from django.db.models import CharField, Count, F, OuterRef, QuerySet, Subquery, Value
from django.db.models.expressions import Combinable
from django.db.models.functions import Coalesce, NullIf

from annotation import policy
from annotation.markdown import instructions_html
from annotation.minimality import median_absolute_deviation
from annotation.models import (
    Assignment,
    Campaign,
    CampaignExample,
    CounterfactualEdit,
    Dataset,
    Example,
    Media,
    Membership,
)

ANNOTATE = Assignment.Kind.ANNOTATE
VALIDATE = Assignment.Kind.VALIDATE


def gold_answer(pool_row: str = "") -> Combinable:
    """THE rule of a gold item's answer, as an expression on a CampaignExample row (`pool_row`
    is the lookup prefix to one, e.g. "items__"): the answer the manager gave when adding it,
    otherwise its example's label (NULL when neither: no answer, not a usable gold item).
    Gold accuracy, the screening, the dashboard and the pool page all read this."""
    return Coalesce(
        NullIf(F(f"{pool_row}gold_answer"), Value("")),
        F(f"{pool_row}example__label"),
        output_field=CharField(),
    )


def gold_answer_of_annotation() -> Subquery:
    """gold_answer() of the pool row an Annotation (or Assignment) row was made on, as a
    correlated subquery (one row by the pool's (campaign, example) unique index)."""
    return Subquery(
        CampaignExample.objects.filter(
            campaign_id=OuterRef("campaign_id"), example_id=OuterRef("example_id")
        )
        .annotate(answer=gold_answer())
        .values("answer")[:1],
        output_field=CharField(),
    )


@dataclass(frozen=True)
class MemberContext:
    roles: frozenset[str]
    arm: str  # the caller's feedback arm: "shown" | "hidden"


# Whose stored arm counts when a person holds several roles (they share one since
# services.campaigns._arm_for; older rows may not): the working membership first.
_ARM_ROLE_ORDER = (Membership.Role.ANNOTATOR, Membership.Role.VALIDATOR, Membership.Role.MANAGER)


def _member_arm(rows: list[tuple[str, str]]) -> str | None:
    arms = dict(rows)
    return next((str(arms[r]) for r in _ARM_ROLE_ORDER if r in arms), None)


def member_context(*, campaign: Campaign, user: Any) -> MemberContext:
    rows = list(
        Membership.objects.filter(campaign=campaign, user_id=user.pk).values_list("role", "arm")
    )
    arm = policy.effective_arm(campaign_policy=campaign.feedback_arm, member_arm=_member_arm(rows))
    return MemberContext(roles=frozenset(r for r, _ in rows), arm=arm)


def feedback_for(*, campaign: Campaign, user_id: int | None) -> str:
    """The person's feedback arm (policy.effective_arm); reads the memberships only when the
    campaign is randomised."""
    if campaign.feedback_arm != Campaign.FeedbackArm.RANDOMISED:
        return policy.effective_arm(campaign_policy=campaign.feedback_arm, member_arm=None)
    rows = list(
        Membership.objects.filter(campaign_id=campaign.pk, user_id=user_id or 0).values_list(
            "role", "arm"
        )
    )
    return policy.effective_arm(campaign_policy=campaign.feedback_arm, member_arm=_member_arm(rows))


PEOPLE = ("more person", "more people")
PEOPLE_NEW = ("person", "people")


def count_of(n: int, word: str, plural: str = "") -> str:
    """ "1 validator", "3 validators" (`plural` when the word does not take an s)."""
    return f"{n} {word if n == 1 else plural or word + 's'}"


def team_too_small_message(
    *, required: int, redundancy: int, annotators: int, validator_eligible: int, short: int
) -> str:
    """The team_too_small_for_validation warning as a researcher reads it: what an edit
    needs, why this team cannot give it, and what to do (the form's field names)."""
    need = f"Each edit needs {count_of(required, 'validator')} who never saw its example"
    fix = f"or lower “Validators per edit” (now {required})."
    if annotators == 0:
        joined = (
            "nobody has joined this campaign yet"
            if validator_eligible == 0
            else f"the team has {count_of(validator_eligible, 'validator')} but no annotators yet"
        )
        more = max(redundancy + required - validator_eligible, redundancy)
        return (
            f"{need}, and {joined}. With {count_of(redundancy, 'annotation')} per example, "
            f"invite at least {count_of(more, *PEOPLE if validator_eligible else PEOPLE_NEW)} "
            "(annotators or "
            f"validators), {fix}"
        )
    blocked = min(redundancy, annotators)
    if blocked == annotators:
        every = {1: "the one annotator labels", 2: "both annotators label"}
        who = every.get(annotators, f"all {annotators} annotators label") + " every example"
    else:
        who = f"each example is labelled by {blocked} of the {annotators} annotators"
    free = validator_eligible - blocked
    left = (
        "nobody is left to validate its edits"
        if free <= 0
        else f"only {count_of(free, 'other person', 'other people')} can validate its edits"
    )
    return f"{need}, but {who}, so {left}. Invite {count_of(short, 'more validator')}, {fix}"


def campaign_warnings(
    *, campaign: Campaign, annotators: int, validator_eligible: int
) -> list[dict[str, Any]]:
    """Setup problems a manager should see. `annotators`: distinct members with the annotator
    role; `validator_eligible`: distinct members with the annotator or validator role."""
    warnings: list[dict[str, Any]] = []
    if campaign.task_validation and campaign.task_counterfactual:
        short = policy.validators_short(
            annotators=annotators,
            validator_eligible=validator_eligible,
            redundancy=campaign.redundancy,
            validations_required=campaign.validations_required,
        )
        if short:
            warnings.append(
                {
                    "code": "team_too_small_for_validation",
                    "message": team_too_small_message(
                        required=campaign.validations_required,
                        redundancy=campaign.redundancy,
                        annotators=annotators,
                        validator_eligible=validator_eligible,
                        short=short,
                    ),
                    "details": {
                        "validations_required": campaign.validations_required,
                        "redundancy": campaign.redundancy,
                        "annotators": annotators,
                        "validator_eligible": validator_eligible,
                        "short_by": short,
                    },
                }
            )
    return warnings


def campaign_block(campaign: Campaign, *, feedback: str) -> dict[str, Any]:
    dataset = campaign.dataset
    names = dataset.modality_names()
    return {
        "id": campaign.pk,
        "name": campaign.name,
        "instructions": campaign.instructions,
        "instructions_html": instructions_html(campaign.instructions),
        "label_space": list(dataset.label_space),
        "modalities": list(dataset.modalities),
        "tasks": {
            "label": campaign.task_label,
            "rationale": campaign.task_rationale,
            "counterfactual": campaign.task_counterfactual,
        },
        "editable_modalities": [m for m in campaign.editable_modalities if m in names],
        "edit_budgets": dict(campaign.edit_budgets or {}),
        "questions": dict(campaign.questions or {}),
        "feedback": feedback,
    }


# Media are content-addressed: a sha256's width and height never change, so the sizes are
# cached for the life of the process (bounded; cleared when full).
_media_sizes: dict[str, tuple[int | None, int | None]] = {}
_MEDIA_SIZES_MAX = 50_000


def media_sizes(shas: list[str]) -> dict[str, tuple[int | None, int | None]]:
    missing = [s for s in shas if s not in _media_sizes]
    if missing:
        found = {
            sha: (w, h)
            for sha, w, h in Media.objects.filter(sha256__in=missing).values_list(
                "sha256", "width", "height"
            )
        }
        if len(_media_sizes) + len(found) > _MEDIA_SIZES_MAX:
            _media_sizes.clear()
        _media_sizes.update(found)
    return {s: _media_sizes.get(s, (None, None)) for s in shas}


def values_payload(values: dict[str, Any], dataset: Dataset) -> dict[str, Any]:
    """Example values as a page shows them: images become {sha256, url, width, height}."""
    images = {m["name"] for m in dataset.modalities if m["kind"] == "image"}
    sizes = media_sizes([values[n] for n in images if isinstance(values.get(n), str)])
    out: dict[str, Any] = {}
    for mod in dataset.modalities:
        name = mod["name"]
        value = values.get(name)
        if name in images and isinstance(value, str):
            width, height = sizes[value]
            out[name] = {
                "sha256": value,
                "url": f"/media/{value}",
                "width": width,
                "height": height,
            }
        else:
            out[name] = value
    return out


# Pool sizes for progress.target, per process for a few seconds: the pool only changes when a
# manager adds examples, and counting a 10,000-row pool on every lease is the dearest part of
# the task payload.
_POOL_SIZE_TTL_S = 10.0
_pool_sizes: dict[tuple[int, Any], tuple[float, int]] = {}


def pool_size(campaign: Campaign) -> int:
    now = time.monotonic()
    key = (campaign.pk, campaign.created_at)  # a reused id (SQLite after a rollback) is a new key
    cached = _pool_sizes.get(key)
    if cached is not None and now - cached[0] < _POOL_SIZE_TTL_S:
        return cached[1]
    size = CampaignExample.objects.filter(campaign_id=campaign.pk).count()
    if len(_pool_sizes) > 10_000:
        _pool_sizes.clear()
    _pool_sizes[key] = (now, size)
    return size


def open_leases_by_kind(*, campaign: Campaign) -> dict[str, int]:
    """The campaign's open leases per task kind (annotate, validate, perturbation; one query):
    every figure of open leases says which kind it counts."""
    found = dict(
        Assignment.objects.filter(campaign=campaign, status=Assignment.Status.ACTIVE)
        .values_list("kind")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {kind: int(found.get(kind, 0)) for kind in Assignment.Kind.values}


def progress(*, campaign: Campaign, user: Any, kind: str) -> dict[str, int]:
    """done: this person's submitted tasks of this kind; target: how many they can do at most
    (annotate: the pool, each example once; validate: done + what is open to them now)."""
    done_q = Assignment.objects.filter(
        campaign_id=campaign.pk, annotator_id=user.pk, kind=kind, status=Assignment.Status.SUBMITTED
    )
    if kind == ANNOTATE:
        return {"done": done_q.count(), "target": pool_size(campaign)}
    done = done_q.count()
    holding = Assignment.objects.filter(
        campaign_id=campaign.pk, annotator_id=user.pk, kind=kind, status=Assignment.Status.ACTIVE
    ).count()
    return {
        "done": done,
        "target": done + holding + validations_available(campaign=campaign, user=user),
    }


def validatable_edits(*, campaign: Campaign, validator_id: int) -> QuerySet[CounterfactualEdit]:
    """The edits of the campaign this person may validate, by the blindness rule (the SQL of
    policy.validation_order, which the validation lease and the progress counts share):
    never an edit of an example they were ever given to annotate (any status: a lease shows
    the original, so its author and everyone else who labelled it are out), never one they
    already held, and only while it needs validations."""
    held = Assignment.objects.filter(kind=VALIDATE, annotator_id=validator_id).values("edit_id")
    seen = Assignment.objects.filter(
        campaign_id=campaign.pk, annotator_id=validator_id, kind=ANNOTATE
    ).values("example_id")
    return (
        CounterfactualEdit.objects.filter(
            campaign_id=campaign.pk, validations_count__lt=campaign.validations_required
        )
        .exclude(author_id=validator_id)
        .exclude(example_id__in=seen)
        .exclude(pk__in=held)
    )


def validations_available(*, campaign: Campaign, user: Any) -> int:
    """Edits this person could be given to validate now (ignoring other people's open leases)."""
    if not campaign.task_validation:
        return 0
    return validatable_edits(campaign=campaign, validator_id=user.pk).count()


def task_payload(
    *, assignment: Assignment, feedback: str, with_progress: bool = True, done: int | None = None
) -> dict[str, Any]:
    """The Task JSON of the annotator API. Precondition: `assignment` has campaign, dataset,
    example and (validate) edit loaded, and belongs to the caller."""
    campaign = assignment.campaign
    dataset = campaign.dataset
    example: dict[str, Any]
    if assignment.kind == VALIDATE:
        edit = assignment.edit
        # Blind: the edited values alone; not even the original's id, which would let a
        # validator look the original up.
        example = {"values": values_payload(edit.edited_values if edit else {}, dataset)}
        counterfactual = {"modality": "", "target_label": ""}
    else:
        example = {
            "id": assignment.example_id,
            "values": values_payload(assignment.example.values, dataset),
        }
        counterfactual = {
            "modality": assignment.cf_modality,
            "target_label": assignment.cf_target_label,
        }
    payload: dict[str, Any] = {
        "assignment": {
            "id": assignment.pk,
            "kind": assignment.kind,
            "status": assignment.status,
            "leased_at": assignment.leased_at.isoformat(),
            "expires_at": assignment.expires_at.isoformat(),
        },
        "campaign": campaign_block(campaign, feedback=feedback),
        "example": example,
        "counterfactual": counterfactual,
        "draft": assignment.draft or {},
        "draft_updated_at": assignment.draft_updated_at.isoformat()
        if assignment.draft_updated_at
        else None,
    }
    if with_progress and done is not None and assignment.kind == ANNOTATE:
        # The lease statement counted the submitted tasks already.
        payload["progress"] = {"done": done, "target": pool_size(campaign)}
    elif with_progress:
        payload["progress"] = progress(
            campaign=campaign, user=assignment.annotator, kind=assignment.kind
        )
    return payload


def my_campaign_status(*, campaign: Campaign, user: Any, context: MemberContext) -> dict[str, Any]:
    counts = dict(
        Assignment.objects.filter(
            campaign_id=campaign.pk, annotator_id=user.pk, status=Assignment.Status.SUBMITTED
        )
        .values_list("kind")
        .annotate(n=Count("id"))
        .order_by()
    )
    open_ids = dict(
        Assignment.objects.filter(
            campaign_id=campaign.pk, annotator_id=user.pk, status=Assignment.Status.ACTIVE
        ).values_list("kind", "id")
    )
    pool = CampaignExample.objects.filter(campaign_id=campaign.pk).count()
    can_validate = bool(context.roles & {Membership.Role.ANNOTATOR, Membership.Role.VALIDATOR})
    return {
        "roles": sorted(context.roles),
        "feedback": context.arm,
        "annotate": {
            "done": counts.get(ANNOTATE, 0),
            "target": pool if Membership.Role.ANNOTATOR in context.roles else 0,
            "open_assignment": open_ids.get(ANNOTATE),
        },
        "validate": {
            "done": counts.get(VALIDATE, 0),
            "available": validations_available(campaign=campaign, user=user) if can_validate else 0,
            "open_assignment": open_ids.get(VALIDATE),
        },
    }


# MAD of each tabular feature over a dataset, for the scaled L1 of tabular edits. Cached per
# process, keyed by the dataset's example count so an import invalidates it.
_mad_cache: dict[tuple[int, str, int], dict[str, float | None]] = {}
_mad_lock = threading.Lock()


def tabular_mad(*, dataset: Dataset, modality: str) -> dict[str, float | None]:
    count = Example.objects.filter(dataset=dataset).count()
    key = (dataset.pk, modality, count)
    with _mad_lock:
        if key in _mad_cache:
            return _mad_cache[key]
    columns: dict[str, list[Any]] = {}
    for values in (
        Example.objects.filter(dataset=dataset)
        .values_list("values", flat=True)
        .iterator(chunk_size=2000)
    ):
        row = values.get(modality) if isinstance(values, dict) else None
        if isinstance(row, dict):
            for feature, value in row.items():
                columns.setdefault(feature, []).append(value)
    mad = {feature: median_absolute_deviation(col) for feature, col in columns.items()}
    with _mad_lock:
        _mad_cache[key] = mad
    return mad
