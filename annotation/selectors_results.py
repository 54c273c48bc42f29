"""Reads of a campaign's results for its managers (annotations, edits with their attempts and
validations, progress). Query counts stay flat in the page size: every list joins or
prefetches what it shows."""

from __future__ import annotations

from typing import Any

from django.db.models import CharField, Count, F, Func, Max, Min, Prefetch, Q, QuerySet

from annotation.models import (
    Annotation,
    Assignment,
    Attempt,
    Campaign,
    CampaignExample,
    CounterfactualEdit,
    Validation,
)
from annotation.selectors import open_leases_by_kind
from counterpoint.errors import NotFound, ValidationFailed
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


class EditPrediction(Func):
    """The label one model predicted for one side ("original" or "edit") of an edit, read
    from CounterfactualEdit.scores in SQL. Written per backend because the scores are keyed
    by model id as a string ("12"), which Django's key lookups take for an array index."""

    output_field = CharField()

    def __init__(self, model_id: int, side: str) -> None:
        if side not in ("original", "edit"):
            raise ValueError(side)
        self.model_key = str(int(model_id))
        self.side = side
        super().__init__(F("scores"))

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> Any:  # type: ignore[override]
        raise NotImplementedError(f"EditPrediction has no SQL for {connection.vendor}")

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        sql, params = compiler.compile(self.source_expressions[0])
        path = f'$."{self.model_key}".{self.side}.predicted_label'
        return f"JSON_EXTRACT({sql}, %s)", (*params, path)

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        sql, params = compiler.compile(self.source_expressions[0])
        return (
            f"({sql} -> %s::text -> %s::text ->> 'predicted_label')",
            (*params, self.model_key, self.side),
        )


# "Model fooled" (docs/managing.md "Pair viewer"): a verified edit (the validators confirmed
# its target label) that the model, on the edited input, labels otherwise. edits_fooling is
# the SQL the filter runs, edit_models_fooled the same rule on a loaded row
# (tests/annotation/test_pairs_api.py checks that they agree).
def edits_fooling(
    qs: QuerySet[CounterfactualEdit], *, model_id: int
) -> QuerySet[CounterfactualEdit]:
    return (
        qs.alias(_fooled_pred=EditPrediction(model_id, "edit"))
        .filter(status=CounterfactualEdit.Status.VERIFIED, _fooled_pred__isnull=False)
        .exclude(_fooled_pred=F("target_label"))
    )


def edit_models_fooled(edit: CounterfactualEdit) -> list[int]:
    if edit.status != CounterfactualEdit.Status.VERIFIED:
        return []
    fooled = []
    for key, entry in (edit.scores or {}).items():
        side = entry.get("edit") if isinstance(entry, dict) else None
        predicted = side.get("predicted_label") if isinstance(side, dict) else None
        if predicted is not None and predicted != edit.target_label:
            fooled.append(int(key))
    return sorted(fooled)


def _filtered_edits(
    qs: QuerySet[CounterfactualEdit], *, campaign: Campaign, params: Any
) -> QuerySet[CounterfactualEdit]:
    if status := query_filter(params, "status"):
        qs = qs.filter(status=status)
    if modality := query_filter(params, "modality"):
        qs = qs.filter(modality=modality)
    if author := query_filter(params, "author"):
        qs = qs.filter(author__username=author)
    if target := query_filter(params, "target_label"):
        qs = qs.filter(target_label=target)
    if (model_id := query_filter(params, "fooled", kind="id")) is not None:
        if model_id not in campaign_scoring_models(campaign=campaign):
            raise ValidationFailed(
                f"filter 'fooled' must be the id of one of the campaign's models, got {model_id}",
                code="filter_invalid",
            )
        qs = edits_fooling(qs, model_id=model_id)
    return qs


def _edits_with_details(campaign: Campaign) -> QuerySet[CounterfactualEdit]:
    return (
        CounterfactualEdit.objects.filter(campaign=campaign)
        .select_related("author", "example", "annotation", "mask_media")
        .prefetch_related(
            Prefetch(
                "validations",
                queryset=Validation.objects.select_related("validator").order_by("id"),
            ),
            # The assignment only links the edit to its attempts: loading the whole row would
            # pull its autosaved draft (up to 2 MB each) for every edit of the page.
            Prefetch(
                "annotation__assignment", queryset=Assignment.objects.only("id", "attempts_count")
            ),
            Prefetch(
                "annotation__assignment__attempts",
                queryset=Attempt.objects.only(*ATTEMPT_COLUMNS).order_by("seq"),
            ),
        )
        .order_by("id")
    )


def campaign_edits(*, campaign: Campaign, params: Any) -> QuerySet[CounterfactualEdit]:
    """The campaign's edits in id order, filtered by the query (status, modality, author,
    target_label, fooled=<model id>), with what the pair viewer shows of each."""
    return _filtered_edits(_edits_with_details(campaign), campaign=campaign, params=params)


def campaign_edit_pair(
    *, campaign: Campaign, edit_id: Any, params: Any
) -> tuple[CounterfactualEdit, dict[str, Any]]:
    """One edit of the campaign (404 if it is not one) and where it stands in the list the
    same filters give: {previous, next, position, count}. position is None when the edit
    itself does not pass the filters; previous and next are then its neighbours by id."""
    from counterpoint.parsers import parse_pk

    pk = parse_pk(edit_id)
    edit = _edits_with_details(campaign).filter(pk=pk or 0).first()
    if edit is None:
        raise NotFound(f"edit {edit_id} is not one of this campaign's")
    filtered = _filtered_edits(
        CounterfactualEdit.objects.filter(campaign=campaign), campaign=campaign, params=params
    )
    # One query for all four figures: neighbours and position are conditional aggregates.
    agg = filtered.aggregate(
        previous=Max("id", filter=Q(id__lt=edit.pk)),
        next=Min("id", filter=Q(id__gt=edit.pk)),
        before=Count("id", filter=Q(id__lt=edit.pk)),
        here=Count("id", filter=Q(id=edit.pk)),
        count=Count("id"),
    )
    return edit, {
        "previous": agg["previous"],
        "next": agg["next"],
        "position": agg["before"] + 1 if agg["here"] else None,
        "count": agg["count"],
    }


def pair_filter_options(*, campaign: Campaign) -> dict[str, Any]:
    """What the pair viewer's filters offer (the editable modalities, the labels, the
    campaign's models, the people who wrote edits) and the settings it reads pairs with."""
    from models_bridge.models import ModelVersion

    dataset = campaign.dataset
    models = ModelVersion.objects.filter(campaigns=campaign, is_active=True).order_by("id")
    authors = (
        CounterfactualEdit.objects.filter(campaign=campaign)
        .values_list("author__username", flat=True)
        .distinct()
        .order_by("author__username")
    )
    return {
        "modalities": list(dataset.modalities),
        "editable": [m for m in campaign.editable_modalities if dataset.modality_kind(m)],
        "labels": list(dataset.label_space),
        "models": [{"id": m.pk, "name": m.name, "version": m.version} for m in models],
        "authors": list(authors),
        "budgets": dict(campaign.edit_budgets or {}),
        "validations_required": campaign.validations_required,
        "validations_to_verify": campaign.validations_to_verify,
    }


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
    leases = open_leases_by_kind(campaign=campaign)
    return {
        "campaign": campaign.pk,
        "redundancy": campaign.redundancy,
        "pool": pool,
        "annotations": sum(a["annotations"] for a in per_annotator),
        "target_annotations": pool["examples"] * campaign.redundancy,
        "open_leases": sum(leases.values()),
        "open_leases_by_kind": leases,
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
