"""Reads of perturbation studies (docs/perturbation.md) that the API and the manager pages
share."""

from __future__ import annotations

from typing import Any

from django.db.models import Count

from annotation import perturbations as pt
from annotation.markdown import instructions_html
from annotation.models import (
    Assignment,
    Campaign,
    PerturbationLabel,
    PerturbationStudy,
    PerturbedItem,
)
from annotation.selectors import values_payload


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


def perturbation_task_payload(*, assignment: Assignment) -> dict[str, Any]:
    """The JSON of a perturbation task for its holder: the perturbed values (never the level,
    nor the base example's id) and the label space. Precondition: the caller holds it
    (access.assignment_for_user); campaign and dataset loaded."""
    campaign = assignment.campaign
    dataset = campaign.dataset
    item = assignment.perturbed_item
    assert item is not None  # the kind's check constraint
    study_id = item.study_id
    done = PerturbationLabel.objects.filter(
        study_id=study_id, annotator_id=assignment.annotator_id
    ).count()
    target = PerturbedItem.objects.filter(study_id=study_id, level_index=0).count()
    return {
        "assignment": {
            "id": assignment.pk,
            "kind": assignment.kind,
            "status": assignment.status,
            "leased_at": assignment.leased_at.isoformat(),
            "expires_at": assignment.expires_at.isoformat(),
        },
        "campaign": {
            "id": campaign.pk,
            "name": campaign.name,
            "instructions_html": instructions_html(campaign.instructions),
            "label_space": list(dataset.label_space),
            "modalities": list(dataset.modalities),
        },
        "study": study_id,
        "example": {"values": values_payload(item.values, dataset)},
        "progress": {"done": done, "target": target},
    }
