"""Reads of perturbation studies (docs/perturbation.md) that the API and the manager pages
share."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q

from annotation import perturbations as pt
from annotation.markdown import instructions_html
from annotation.models import (
    Assignment,
    Campaign,
    Job,
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
    """The study with its item counts per level, its human progress and the jobs that follow
    it (build, scoring, minimal perturbation): what the study page polls."""
    counts = dict(
        PerturbedItem.objects.filter(study=study)
        .values_list("level_index")
        .annotate(n=Count("id"))
        .order_by()
    )
    row = study_row(study, items_by_level=[counts.get(i, 0) for i in range(len(study.levels))])
    row["humans"] = study_progress(study=study)
    row["jobs"] = study_jobs(study=study)
    return row


def study_jobs(*, study: PerturbationStudy) -> dict[str, list[dict[str, Any]]]:
    """The latest scoring job per model of the study's items and the latest minimal-perturbation
    analysis per model (one query): the page follows them until they finish."""
    latest: dict[tuple[str, int], Job] = {}
    for job in (
        Job.objects.filter(campaign_id=study.campaign_id)
        .filter(
            Q(kind=Job.Kind.SCORE, params__study=study.pk)
            | Q(kind=Job.Kind.ANALYSIS, params__params__study=study.pk)
        )
        .order_by("id")
    ):
        methods = job.params.get("methods") or []
        if job.kind == Job.Kind.ANALYSIS and "perturbation_minimal" not in methods:
            continue
        model = job.params.get("model_version")
        if isinstance(model, int):
            latest[(job.kind, model)] = job
    out: dict[str, list[dict[str, Any]]] = {"score": [], "minimal": []}
    for (kind, model), job in sorted(latest.items(), key=lambda kv: kv[1].pk):
        entry = {**job.summary(), "model_version": model, "model": job.params.get("model", "")}
        out["score" if kind == Job.Kind.SCORE else "minimal"].append(entry)
    return out


def _human_progress(studies: list[PerturbationStudy]) -> dict[int, dict[str, Any]]:
    """Labels per level cell and how many people labelled, per study (one query)."""
    per_level = {s.pk: [0] * len(s.levels) for s in studies}
    people: dict[int, set[int]] = {s.pk: set() for s in studies}
    for study_id, level_index, annotator_id, n in (
        PerturbationLabel.objects.filter(study__in=[s.pk for s in studies])
        .values_list("study_id", "level_index", "annotator_id")
        .annotate(n=Count("id"))
        .order_by()
    ):
        if 0 <= level_index < len(per_level[study_id]):
            per_level[study_id][level_index] += n
        people[study_id].add(annotator_id)
    return {
        pk: {"labels_by_level": cells, "labels": sum(cells), "annotators": len(people[pk])}
        for pk, cells in per_level.items()
    }


def study_progress(*, study: PerturbationStudy) -> dict[str, Any]:
    """The humans' progress on one study: labels per level cell and annotators (one query)."""
    return _human_progress([study])[study.pk]


def campaign_studies_progress(*, campaign: Campaign) -> list[dict[str, Any]]:
    """Every study of the campaign with its humans' progress and its page (two queries): the
    dashboard's perturbation card."""
    studies = list(PerturbationStudy.objects.filter(campaign=campaign).order_by("id"))
    progress = _human_progress(studies) if studies else {}
    return [
        {
            "id": s.pk,
            "name": s.name,
            "perturbation": s.perturbation,
            "modality": s.modality,
            "status": s.status,
            "levels": list(s.levels),
            **progress[s.pk],
            "url": f"/manage/campaigns/{campaign.pk}/perturbation/{s.pk}/",
        }
        for s in studies
    ]


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
