"""Reads of the manager's campaign setup pages (/manage/): the campaign list with progress,
the pool's make-up, the lifecycle dialog's figures and the annotator-page preview. Nothing
here writes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotation import policy
from annotation.access import campaigns_visible_to
from annotation.models import (
    Annotation,
    Assignment,
    Campaign,
    CampaignExample,
    CounterfactualEdit,
    Example,
    Membership,
    Validation,
)
from annotation.selectors import (
    campaign_block,
    gold_answer,
    open_leases_by_kind,
    values_payload,
)
from annotation.services.lifecycle import lifecycle_effects
from annotation.services.pool import rank_inputs
from counterpoint.errors import NotFound, ValidationFailed

# How many examples' metadata are read to list the metadata fields a pool can filter on.
METADATA_KEYS_SAMPLE = 1000
PREVIEW_SAMPLE = 10


def _count(model: Any, link: str, **filters: Any) -> Any:
    """A per-campaign count as a subquery (no join that multiplies the rows beside it);
    `link` is the lookup from `model` to the campaign's id."""
    return Coalesce(
        Subquery(
            model.objects.filter(**{link: OuterRef("pk")}, **filters)
            .order_by()
            .values(link)
            .annotate(n=Count("pk"))
            .values("n")[:1],
            output_field=IntegerField(),
        ),
        Value(0),
    )


def managed_campaigns(*, user: Any) -> QuerySet[Campaign]:
    """The campaigns `user` manages (staff: all) with their progress counts, one query."""
    return (
        campaigns_visible_to(user=user, roles=[Membership.Role.MANAGER])
        .select_related("dataset")
        .annotate(
            pool_n=_count(CampaignExample, "campaign_id"),
            annotations_n=_count(Annotation, "campaign_id"),
            edits_n=_count(CounterfactualEdit, "campaign_id"),
            verified_n=_count(
                CounterfactualEdit, "campaign_id", status=CounterfactualEdit.Status.VERIFIED
            ),
            validations_n=_count(Validation, "edit__campaign_id"),
            open_leases_n=_count(Assignment, "campaign_id", status=Assignment.Status.ACTIVE),
        )
        .order_by("-created_at", "-id")
    )


def managed_campaign_row(c: Campaign) -> dict[str, Any]:
    target = c.pool_n * c.redundancy  # type: ignore[attr-defined]
    return {
        "id": c.pk,
        "name": c.name,
        "dataset": c.dataset_id,
        "dataset_name": c.dataset.name,
        "status": c.status,
        "task_order": c.task_order,
        "redundancy": c.redundancy,
        "pool_size": c.pool_n,  # type: ignore[attr-defined]
        "annotations": c.annotations_n,  # type: ignore[attr-defined]
        "target_annotations": target,
        "progress": round(min(1.0, c.annotations_n / target), 4) if target else 0.0,  # type: ignore[attr-defined]
        "edits": c.edits_n,  # type: ignore[attr-defined]
        "edits_verified": c.verified_n,  # type: ignore[attr-defined]
        "validations": c.validations_n,  # type: ignore[attr-defined]
        "open_leases": c.open_leases_n,  # type: ignore[attr-defined]
        "created_at": c.created_at.isoformat(),
        "console_url": f"/manage/campaigns/{c.pk}/",
    }


def lifecycle_state(*, campaign: Campaign) -> dict[str, Any]:
    by_kind = open_leases_by_kind(campaign=campaign)
    open_leases = sum(by_kind.values())
    return {
        "status": campaign.status,
        "open_leases": open_leases,
        "open_leases_by_kind": by_kind,
        "actions": lifecycle_effects(status=campaign.status, open_leases=open_leases),
    }


def pool_summary(*, campaign: Campaign) -> dict[str, Any]:
    """The pool's size, gold count, label distribution and, under a score-reading task order,
    how many examples have no scores (they go last); plus what the dataset offers to pick
    from (splits, labels, metadata fields)."""
    pool = CampaignExample.objects.filter(campaign=campaign)
    labels = dict(
        pool.values_list("example__label").annotate(n=Count("id")).order_by("example__label")
    )
    gold = list(
        pool.filter(is_gold=True)
        .annotate(answer=gold_answer())
        .order_by("example_id")
        .values_list("example_id", "example__external_id", "answer", "gold_answer")
    )
    examples = Example.objects.filter(dataset=campaign.dataset)
    splits = dict(examples.values_list("split").annotate(n=Count("id")).order_by("split"))
    dataset_labels = dict(examples.values_list("label").annotate(n=Count("id")).order_by("label"))
    keys: set[str] = set()
    for meta in examples.order_by("id").values_list("metadata", flat=True)[:METADATA_KEYS_SAMPLE]:
        if isinstance(meta, Mapping):
            keys.update(str(k) for k in meta)
    unscored = 0
    if campaign.task_order in policy.SCORED_ORDERS:
        unscored = policy.unscored_count(rank_inputs(campaign=campaign), order=campaign.task_order)
    return {
        "pool_size": sum(labels.values()),
        "gold": len(gold),
        "labels": {("" if k is None else k): v for k, v in labels.items()},
        "gold_items": [
            {"example": ex, "external_id": ext, "answer": answer, "answer_given": bool(given)}
            for ex, ext, answer, given in gold
        ],
        "label_space": list(campaign.dataset.label_space),
        "task_order": campaign.task_order,
        "unscored": unscored,
        "models": campaign.model_versions.filter(is_active=True).count(),
        "dataset": {
            "id": campaign.dataset_id,
            "name": campaign.dataset.name,
            "examples": sum(splits.values()),
            "splits": {("" if k is None else k): v for k, v in splits.items()},
            "labels": {("" if k is None else k): v for k, v in dataset_labels.items()},
            "metadata_fields": sorted(keys),
        },
    }


def preview_payload(*, campaign: Campaign, example_id: str | None = None) -> dict[str, Any]:
    """What the annotator's page would show for this campaign, as a Task (docs/annotator_api.md)
    without an assignment: over `example_id` (a pool example, or any of the dataset's while
    the pool is empty) or the first in lease order. `samples` lists a few more to page through.
    Reads only: no assignment, annotation or attempt is made."""
    pool = CampaignExample.objects.filter(campaign=campaign).order_by("rank", "id")
    samples = list(pool.values_list("example_id", flat=True)[:PREVIEW_SAMPLE])
    source = Example.objects.filter(dataset=campaign.dataset)
    if not samples:
        samples = list(source.order_by("id").values_list("id", flat=True)[:PREVIEW_SAMPLE])
    elif example_id is not None:
        source = source.filter(campaign_items__campaign=campaign)
    if example_id is not None:
        if not str(example_id).isdigit() or len(str(example_id)) > 18:
            raise ValidationFailed(
                f"example must be an example id, not {example_id!r}", code="preview_example"
            )
        example = source.filter(pk=int(example_id)).first()
    else:
        example = source.filter(pk=samples[0]).first() if samples else None
    if example is None:
        raise NotFound(
            "nothing to preview: the example is not in this campaign"
            if example_id is not None
            else "nothing to preview: the campaign's dataset has no examples"
        )
    now = timezone.now()
    feedback = policy.effective_arm(campaign_policy=campaign.feedback_arm, member_arm=None)
    return {
        "preview": True,
        "assignment": {
            "id": None,
            "kind": Assignment.Kind.ANNOTATE,
            "status": "preview",
            "leased_at": now.isoformat(),
            "expires_at": (now + timedelta(seconds=campaign.lease_seconds)).isoformat(),
        },
        "campaign": campaign_block(campaign, feedback=feedback),
        "example": {"id": example.pk, "values": values_payload(example.values, campaign.dataset)},
        "counterfactual": {"modality": "", "target_label": ""},
        "progress": {"done": 0, "target": pool.count()},
        "draft": {},
        "draft_updated_at": None,
        "samples": samples,
    }
