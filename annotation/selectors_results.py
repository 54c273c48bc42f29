"""Reads of a campaign's results for its managers (annotations, edits with their attempts and
validations, progress). Query counts stay flat in the page size: every list joins or
prefetches what it shows."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Prefetch, Q, QuerySet

from annotation.models import (
    Annotation,
    Assignment,
    Attempt,
    Campaign,
    CampaignExample,
    CounterfactualEdit,
    Validation,
)
from counterpoint.parsers import query_filter


def campaign_annotations(*, campaign: Campaign, params: dict[str, str]) -> QuerySet[Annotation]:
    qs = (
        Annotation.objects.filter(campaign=campaign)
        .select_related("annotator", "example")
        .order_by("id")
    )
    if annotator := query_filter(params, "annotator"):
        qs = qs.filter(annotator__username=annotator)
    if example := query_filter(params, "example", kind="id"):
        qs = qs.filter(example_id=example)
    if reliance := query_filter(params, "reliance"):
        qs = qs.filter(reliance=reliance)
    return qs


# What the edits list shows of each attempt (and the key it is grouped by).
ATTEMPT_COLUMNS = (
    "id",
    "assignment_id",
    "seq",
    "modality",
    "value",
    "content_hash",
    "scores",
    "created_at",
)


def campaign_scoring_models(*, campaign: Campaign) -> list[int]:
    """Ids of the models every edit of the campaign is scored with (its active models)."""
    return list(
        campaign.model_versions.filter(is_active=True).order_by("id").values_list("id", flat=True)
    )


def campaign_edits(*, campaign: Campaign, params: dict[str, str]) -> QuerySet[CounterfactualEdit]:
    qs = (
        CounterfactualEdit.objects.filter(campaign=campaign)
        .select_related("author", "example", "annotation")
        .prefetch_related(
            Prefetch(
                "validations",
                queryset=Validation.objects.select_related("validator").order_by("id"),
            ),
            # The assignment only links the edit to its attempts: loading the whole row would
            # pull its autosaved draft (up to 2 MB each) for every edit of the page.
            Prefetch("annotation__assignment", queryset=Assignment.objects.only("id")),
            Prefetch(
                "annotation__assignment__attempts",
                queryset=Attempt.objects.only(*ATTEMPT_COLUMNS).order_by("seq"),
            ),
        )
        .order_by("id")
    )
    if status := query_filter(params, "status"):
        qs = qs.filter(status=status)
    if modality := query_filter(params, "modality"):
        qs = qs.filter(modality=modality)
    if author := query_filter(params, "author"):
        qs = qs.filter(author__username=author)
    return qs


def campaign_progress(*, campaign: Campaign) -> dict[str, Any]:
    pool = CampaignExample.objects.filter(campaign=campaign).aggregate(
        examples=Count("id"),
        complete=Count("id", filter=Q(completed__gte=campaign.redundancy)),
        started=Count("id", filter=Q(completed__gt=0) | Q(in_flight__gt=0)),
        gold=Count("id", filter=Q(is_gold=True)),
    )
    edits = dict(
        CounterfactualEdit.objects.filter(campaign=campaign)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    per_annotator = list(
        Annotation.objects.filter(campaign=campaign)
        .values("annotator__username")
        .annotate(annotations=Count("id"), edits=Count("edit"))
        .order_by("annotator__username")
    )
    validations = list(
        Validation.objects.filter(edit__campaign=campaign)
        .values("validator__username")
        .annotate(validations=Count("id"))
        .order_by("validator__username")
    )
    open_leases = Assignment.objects.filter(
        campaign=campaign, status=Assignment.Status.ACTIVE
    ).count()
    return {
        "campaign": campaign.pk,
        "redundancy": campaign.redundancy,
        "pool": pool,
        "annotations": sum(a["annotations"] for a in per_annotator),
        "target_annotations": pool["examples"] * campaign.redundancy,
        "open_leases": open_leases,
        "edits": {status: edits.get(status, 0) for status in CounterfactualEdit.Status.values},
        "annotators": [
            {
                "username": a["annotator__username"],
                "annotations": a["annotations"],
                "edits": a["edits"],
            }
            for a in per_annotator
        ],
        "validators": [
            {"username": v["validator__username"], "validations": v["validations"]}
            for v in validations
        ],
    }
