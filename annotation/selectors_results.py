"""Reads of a campaign's results for its managers (annotations, edits with their attempts and
validations, progress). Query counts stay flat in the page size: every list joins or
prefetches what it shows."""

from __future__ import annotations

from typing import Any

from django.db.models import (
    BooleanField,
    CharField,
    Count,
    F,
    Func,
    Max,
    Min,
    Prefetch,
    Q,
    QuerySet,
)
from django.db.models.lookups import Exact, IsNull

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


class EditScoreHas(Func):
    """Whether one model's entry in CounterfactualEdit.scores exists (``key=None``) or holds
    ``key`` (e.g. "error"), in SQL (per backend, as EditPrediction)."""

    output_field = BooleanField()

    def __init__(self, model_id: int, key: str | None = None) -> None:
        self.model_key = str(int(model_id))
        self.key = key
        super().__init__(F("scores"))

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> Any:  # type: ignore[override]
        raise NotImplementedError(f"EditScoreHas has no SQL for {connection.vendor}")

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        sql, params = compiler.compile(self.source_expressions[0])
        path = f'$."{self.model_key}"' + (f".{self.key}" if self.key else "")
        return f"(JSON_TYPE({sql}, %s) IS NOT NULL)", (*params, path)

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        sql, params = compiler.compile(self.source_expressions[0])
        if self.key is None:
            return f"(({sql} -> %s::text) IS NOT NULL)", (*params, self.model_key)
        return f"(({sql} -> %s::text -> %s::text) IS NOT NULL)", (*params, self.model_key, self.key)


# The model-score rules of an edit, each written once (as SQL conditions: every read that
# counts or filters edits uses these; ``edit_models_fooled`` and ``entry_scored`` are the
# same rules on a loaded row, and tests/annotation/test_fooled_rule.py checks they agree):
# - scored by a model: its entry holds no error and a prediction on both sides;
# - flipped: scored, and the prediction on the edit differs from the one on the original;
# - fooled (docs/managing.md "Pair viewer"): a verified edit (the validators confirmed its
#   target label), scored, that the model labels otherwise on the edited input;
# - pending: the model (an active one of the campaign) has no entry for the edit yet.
def edit_scored(model_id: int) -> Q:
    return (
        ~Q(EditScoreHas(model_id, "error"))
        & Q(IsNull(EditPrediction(model_id, "original"), False))
        & Q(IsNull(EditPrediction(model_id, "edit"), False))
    )


def edit_flipped(model_id: int) -> Q:
    return edit_scored(model_id) & ~Q(
        Exact(EditPrediction(model_id, "edit"), EditPrediction(model_id, "original"))
    )


def edit_verified_scored(model_id: int) -> Q:
    return Q(status=CounterfactualEdit.Status.VERIFIED) & edit_scored(model_id)


def edit_fooled(model_id: int) -> Q:
    return edit_verified_scored(model_id) & ~Q(
        Exact(EditPrediction(model_id, "edit"), F("target_label"))
    )


def edit_score_pending(model_id: int) -> Q:
    return ~Q(EditScoreHas(model_id))


def edits_fooling(
    qs: QuerySet[CounterfactualEdit], *, model_id: int
) -> QuerySet[CounterfactualEdit]:
    return qs.filter(edit_fooled(model_id))


def entry_prediction(entry: Any, side: str) -> Any:
    part = entry.get(side) if isinstance(entry, dict) else None
    return part.get("predicted_label") if isinstance(part, dict) else None


def entry_scored(entry: Any) -> bool:
    """``edit_scored`` on one loaded scores entry."""
    return (
        isinstance(entry, dict)
        and "error" not in entry
        and entry_prediction(entry, "original") is not None
        and entry_prediction(entry, "edit") is not None
    )


def edit_models_fooled(edit: CounterfactualEdit) -> list[int]:
    """``edit_fooled`` on a loaded edit: the ids of the models it fools."""
    if edit.status != CounterfactualEdit.Status.VERIFIED:
        return []
    return sorted(
        int(key)
        for key, entry in (edit.scores or {}).items()
        if entry_scored(entry) and entry_prediction(entry, "edit") != edit.target_label
    )


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
    from models_bridge.services.attention import model_has_attention

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
        "models": [
            {
                "id": m.pk,
                "name": m.name,
                "version": m.version,
                "attention": model_has_attention(m),
            }
            for m in models
        ],
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
