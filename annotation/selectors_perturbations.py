"""Reads of perturbation studies (docs/perturbation.md) that the API and the manager pages
share."""

from __future__ import annotations

from typing import Any

from django.db.models import Count

from annotation import perturbations as pt
from annotation.models import Campaign, PerturbationStudy, PerturbedItem


def perturbation_catalogue() -> list[dict[str, Any]]:
    """Every perturbation with what its level means and its default ladder."""
    return [
        {
            "name": p.name,
            "kind": p.kind,
            "parameter": p.parameter,
            "identity": p.identity,
            "maximum": p.maximum,
            "continuous": p.continuous,
            "default_ladder": list(p.default_ladder),
        }
        for p in pt.PERTURBATIONS.values()
    ]


def study_row(
    study: PerturbationStudy, *, items_by_level: list[int] | None = None
) -> dict[str, Any]:
    job = study.job
    return {
        "id": study.pk,
        "campaign": study.campaign_id,
        "name": study.name,
        "modality": study.modality,
        "perturbation": study.perturbation,
        "levels": list(study.levels),
        "seed": study.seed,
        "chance": study.chance,
        "status": study.status,
        "job": job.summary() if job is not None else None,
        "items_by_level": items_by_level,
        "created_at": study.created_at,
    }


def studies_of(*, campaign: Campaign) -> list[dict[str, Any]]:
    """The campaign's studies, oldest first, with their item counts per level (two queries)."""
    studies = list(
        PerturbationStudy.objects.filter(campaign=campaign).select_related("job").order_by("id")
    )
    counts: dict[tuple[int, int], int] = {
        (row["study_id"], row["level_index"]): row["n"]
        for row in PerturbedItem.objects.filter(study__campaign=campaign)
        .values("study_id", "level_index")
        .annotate(n=Count("id"))
        .order_by()
    }
    return [
        study_row(s, items_by_level=[counts.get((s.pk, i), 0) for i in range(len(s.levels))])
        for s in studies
    ]


def study_detail(*, study: PerturbationStudy) -> dict[str, Any]:
    counts = dict(
        PerturbedItem.objects.filter(study=study)
        .values_list("level_index")
        .annotate(n=Count("id"))
        .order_by()
    )
    return study_row(study, items_by_level=[counts.get(i, 0) for i in range(len(study.levels))])
