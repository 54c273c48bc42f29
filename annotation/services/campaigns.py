"""Campaign and membership writes."""

from __future__ import annotations

import random
import re
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q

from annotation import policy
from annotation.models import Campaign, CampaignExample, Dataset, Example, Membership
from annotation.services import lifecycle
from annotation.services.assignments import ROLES_FOR_KIND, assignment_release_open
from annotation.services.pool import campaign_pool_rank
from counterpoint.errors import Conflict, ValidationFailed

SETTABLE_FIELDS = (
    "instructions",
    "status",
    "task_label",
    "task_rationale",
    "task_counterfactual",
    "task_validation",
    "redundancy",
    "editable_modalities",
    "edit_budgets",
    "balance_counterfactuals",
    "feedback_arm",
    "gold_rate",
    "lease_seconds",
    "validations_required",
    "validations_to_verify",
    "score_cap_per_assignment",
    "questions",
    "seed",
    "task_order",
)

DEFAULT_BUDGETS = {"text": 0.5, "image": 0.25, "tabular": 0.5}


def _check_settings(dataset: Dataset, values: dict[str, Any]) -> dict[str, Any]:
    names = dataset.modality_names()
    editable = values.get("editable_modalities")
    if editable is not None:
        if not isinstance(editable, list) or any(m not in names for m in editable):
            raise ValidationFailed(
                f"editable_modalities must be a subset of the dataset's modalities {names}",
                code="campaign_editable_modalities",
            )
    budgets = values.get("edit_budgets")
    if budgets is not None:
        if not isinstance(budgets, dict):
            raise ValidationFailed(
                "edit_budgets must map modality → fraction", code="campaign_edit_budgets"
            )
        for mod, budget in budgets.items():
            if mod not in names:
                raise ValidationFailed(
                    f"edit_budgets names unknown modality {mod!r}", code="campaign_edit_budgets"
                )
            if not isinstance(budget, int | float) or not 0 < float(budget) <= 1:
                raise ValidationFailed(
                    f"edit budget for {mod!r} must be a fraction in (0, 1], got {budget!r}",
                    code="campaign_edit_budgets",
                )
    if "redundancy" in values and (
        not isinstance(values["redundancy"], int) or values["redundancy"] < 1
    ):
        raise ValidationFailed("redundancy must be a whole number ≥ 1", code="campaign_redundancy")
    if "gold_rate" in values and not 0 <= float(values["gold_rate"]) <= 1:
        raise ValidationFailed("gold_rate must be between 0 and 1", code="campaign_gold_rate")
    req = values.get("validations_required")
    ver = values.get("validations_to_verify")
    if req is not None and ver is not None and ver > req:
        raise ValidationFailed(
            "validations_to_verify cannot exceed validations_required",
            code="campaign_validation_rule",
        )
    if "status" in values and values["status"] not in Campaign.Status.values:
        raise ValidationFailed(
            f"status must be one of {Campaign.Status.values}", code="campaign_status"
        )
    if "task_order" in values and values["task_order"] not in Campaign.TaskOrder.values:
        raise ValidationFailed(
            f"task_order must be one of {Campaign.TaskOrder.values}", code="campaign_task_order"
        )
    if "lease_seconds" in values and (
        not isinstance(values["lease_seconds"], int)
        or isinstance(values["lease_seconds"], bool)
        or values["lease_seconds"] < 1
    ):
        raise ValidationFailed(
            "lease_seconds must be a whole number of seconds, at least 1",
            code="campaign_lease_seconds",
        )
    if "feedback_arm" in values and values["feedback_arm"] not in Campaign.FeedbackArm.values:
        raise ValidationFailed(
            f"feedback_arm must be one of {Campaign.FeedbackArm.values}", code="campaign_arm"
        )
    return values


def new_gold_secret() -> str:
    return secrets.token_hex(32)


def campaign_create(
    *, dataset: Dataset, name: str, created_by: Any = None, **fields: Any
) -> Campaign:
    unknown = set(fields) - set(SETTABLE_FIELDS)
    if unknown:
        raise ValidationFailed(
            f"unknown campaign settings: {', '.join(sorted(unknown))}",
            code="campaign_unknown_field",
        )
    fields.setdefault("editable_modalities", dataset.modality_names())
    fields.setdefault(
        "edit_budgets",
        {
            m["name"]: DEFAULT_BUDGETS[m["kind"]]
            for m in dataset.modalities
            if m["name"] in fields["editable_modalities"]
        },
    )
    _check_settings(dataset, fields)
    try:
        with transaction.atomic():
            campaign = Campaign.objects.create(
                dataset=dataset,
                name=name,
                created_by=created_by,
                gold_secret=new_gold_secret(),
                **fields,
            )
            if created_by is not None:
                Membership.objects.create(
                    campaign=campaign,
                    user=created_by,
                    role=Membership.Role.MANAGER,
                    arm=_arm_for(campaign, created_by.pk),
                )
    except IntegrityError:
        raise Conflict(
            f"a campaign named {name!r} already exists", code="campaign_name_taken"
        ) from None
    return campaign


def campaign_update(*, campaign: Campaign, **fields: Any) -> Campaign:
    unknown = set(fields) - set(SETTABLE_FIELDS)
    if unknown:
        raise ValidationFailed(
            f"unknown campaign settings: {', '.join(sorted(unknown))}",
            code="campaign_unknown_field",
        )
    merged = {k: getattr(campaign, k) for k in SETTABLE_FIELDS} | fields
    _check_settings(campaign.dataset, merged)
    status = fields.pop("status", None)
    reorder = "task_order" in fields and fields["task_order"] != campaign.task_order
    for key, value in fields.items():
        setattr(campaign, key, value)
    if fields:
        campaign.save(update_fields=list(fields))
    if status is not None:
        lifecycle.campaign_status_set(campaign=campaign, status=status)
    if reorder or ("seed" in fields and campaign.task_order != Campaign.TaskOrder.RANDOM):
        campaign_pool_rank(campaign=campaign)
    return campaign


# A metadata key as a JSON key lookup: no "__", which Django would read as a lookup or transform.
_METADATA_KEY = re.compile(r"^(?!.*__)[A-Za-z0-9_\- .]{1,100}$")


def _metadata_filter(field: str, value: str | None) -> Q:
    if not _METADATA_KEY.match(field):
        raise ValidationFailed(
            f"metadata field {field!r} must be letters, digits, '_', '-', '.' or spaces (no '__')",
            code="campaign_examples_metadata",
        )
    if value is None or value == "":
        return Q(**{"metadata__has_key": field})
    match = Q(**{f"metadata__{field}": value})
    # Imported metadata keeps numbers and booleans as JSON types: match those too.
    for parsed in _json_scalars(value):
        match |= Q(**{f"metadata__{field}": parsed})
    return match


def _json_scalars(value: str) -> list[Any]:
    out: list[Any] = []
    if value in ("true", "false"):
        out.append(value == "true")
    try:
        out.append(int(value))
    except ValueError:
        try:
            out.append(float(value))
        except ValueError:
            pass
    return out


def campaign_add_examples(
    *,
    campaign: Campaign,
    example_ids: list[int] | None = None,
    split: str | None = None,
    label: str | None = None,
    metadata_field: str | None = None,
    metadata_value: str | None = None,
    limit: int | None = None,
    sample_seed: int | None = None,
    gold_fraction: float = 0.0,
) -> int:
    """Add examples of the campaign's dataset to its pool (idempotent: examples already in
    the pool are left alone): by ids, split, label, metadata field (present, or = value),
    and of those a random sample of `limit` seeded by `sample_seed` (default: the campaign
    seed). Under the seeded random task order new rows get shuffled ranks after the pool's,
    so leasing order is reproducible; any other order re-ranks the whole pool
    (services.pool.campaign_pool_rank). Gold items need a gold label."""
    qs = Example.objects.filter(dataset=campaign.dataset)
    if example_ids is not None:
        qs = qs.filter(id__in=example_ids)
        found = set(qs.values_list("id", flat=True))
        missing = sorted(set(example_ids) - found)
        if missing:
            raise ValidationFailed(
                f"examples {missing[:10]} are not in dataset {campaign.dataset.name!r}",
                code="campaign_examples_unknown",
            )
    if split:
        qs = qs.filter(split=split)
    if label:
        qs = qs.filter(label=label)
    if metadata_field:
        qs = qs.filter(_metadata_filter(metadata_field, metadata_value))
    ids = list(qs.order_by("id").values_list("id", "label"))
    rng = random.Random(campaign.seed if sample_seed is None else sample_seed)
    if limit is not None:
        ids = sorted(rng.sample(ids, min(limit, len(ids))))
    with transaction.atomic():
        present = set(
            CampaignExample.objects.filter(campaign=campaign).values_list("example_id", flat=True)
        )
        fresh = [(i, label) for i, label in ids if i not in present]
        start = CampaignExample.objects.filter(campaign=campaign).count()
        order = list(range(start, start + len(fresh)))
        rng.shuffle(order)
        rows = [
            CampaignExample(
                campaign=campaign,
                example_id=i,
                rank=rank,
                is_gold=bool(label)
                and policy.is_gold_item(
                    seed=campaign.seed,
                    secret=campaign.gold_secret,
                    example_id=i,
                    gold_fraction=gold_fraction,
                ),
            )
            for (i, label), rank in zip(fresh, order, strict=True)
        ]
        CampaignExample.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=True)
    if rows and campaign.task_order != Campaign.TaskOrder.RANDOM:
        campaign_pool_rank(campaign=campaign)
    return len(rows)


def _arm_for(campaign: Campaign, user_id: int) -> str:
    """The arm stored at invitation, whatever the campaign's policy now (it may become
    randomised later): a person keeps one arm across their roles; a newcomer goes to the
    less filled arm among the working members (policy.invitation_arm). Which arm applies
    is policy.effective_arm's to say. Two invitations at the same instant may both see the
    same counts: the imbalance stays within the number of simultaneous invitations."""
    rows = list(Membership.objects.filter(campaign=campaign).values_list("user_id", "role", "arm"))
    own = [arm for uid, _, arm in rows if uid == user_id]
    if own:
        return str(own[0])
    working = {uid: arm for uid, role, arm in rows if role != Membership.Role.MANAGER}
    arms = list(working.values())
    return policy.invitation_arm(
        seed=campaign.seed,
        campaign_id=campaign.pk,
        user_id=user_id,
        shown=arms.count(Membership.Arm.SHOWN),
        hidden=arms.count(Membership.Arm.HIDDEN),
    )


def membership_add(*, campaign: Campaign, user: Any, role: str) -> Membership:
    if role not in Membership.Role.values:
        raise ValidationFailed(
            f"role must be one of {Membership.Role.values}", code="membership_role"
        )
    membership, created = Membership.objects.get_or_create(
        campaign=campaign, user=user, role=role, defaults={"arm": _arm_for(campaign, user.pk)}
    )
    if not created and not membership.active:
        # Granting a role again is how a deactivated person comes back (their work is there).
        Membership.objects.filter(pk=membership.pk).update(active=True)
        membership.active = True
    return membership


def membership_add_by_username(*, campaign: Campaign, username: str, role: str) -> Membership:
    User = get_user_model()
    try:
        user = User.objects.get(username=username)
    except User.DoesNotExist:
        raise ValidationFailed(
            f"no user named {username!r}", code="membership_unknown_user"
        ) from None
    return membership_add(campaign=campaign, user=user, role=role)


def _release_roleless_leases(*, campaign: Campaign, user_id: int) -> int:
    """Open leases the person may no longer hold (ROLES_FOR_KIND) once a role went away."""
    held = set(
        Membership.objects.filter(campaign=campaign, user_id=user_id, active=True).values_list(
            "role", flat=True
        )
    )
    kinds = [kind for kind, roles in ROLES_FOR_KIND.items() if not held.intersection(roles)]
    if not kinds:
        return 0
    return assignment_release_open(campaign=campaign, annotator_id=user_id, kinds=kinds)


def membership_remove(*, membership: Membership) -> None:
    """Take the role away. Everything the person did stays (annotations, edits, validations
    belong to the user, not the membership); an open lease they can no longer hold goes back
    to the pool now rather than at its expiry."""
    campaign, user_id = membership.campaign, membership.user_id
    membership.delete()
    _release_roleless_leases(campaign=campaign, user_id=user_id)


def membership_set_active(*, membership: Membership, active: bool) -> Membership:
    """Deactivate (or bring back) a role without deleting it: a deactivated member is an
    outsider to the access helper; their work and the membership row (arm, crowd ids) stay."""
    Membership.objects.filter(pk=membership.pk).update(active=active)
    membership.active = active
    if not active:
        _release_roleless_leases(campaign=membership.campaign, user_id=membership.user_id)
    return membership
