"""Reads the analyses of docs/analysis_pid.md need: a bounded, seeded sample of a campaign's
examples, its counterfactual edits with one model's scores, and the reliance answers per
example. Each is a fixed number of queries whatever the campaign's size."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from django.db.models import Count

from annotation.models import Annotation, Campaign, CampaignExample, CounterfactualEdit


def analysis_examples(
    *,
    campaign: Campaign,
    limit: int | None = None,
    seed: int = 0,
    example_ids: Iterable[int] | None = None,
    labels: Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """The campaign's examples (or those of `example_ids` in its pool, or those whose gold
    label is in `labels`) as {"id", "external_id", "values", "label"}, in example id order;
    with `limit`, a seeded uniform sample of at most that many (same seed, same pool → same
    sample)."""
    pool = CampaignExample.objects.filter(campaign=campaign)
    if example_ids is not None:
        pool = pool.filter(example_id__in=list(example_ids))
    if labels is not None:
        pool = pool.filter(example__label__in=list(labels))
    ids = list(pool.order_by("example_id").values_list("example_id", flat=True))
    if limit is not None and len(ids) > limit:
        pick = np.random.default_rng(seed).choice(len(ids), size=limit, replace=False)
        ids = [ids[i] for i in sorted(pick)]
    wanted = set(ids)
    rows = (
        CampaignExample.objects.filter(campaign=campaign, example_id__in=wanted)
        .order_by("example_id")
        .values_list("example_id", "example__external_id", "example__values", "example__label")
    )
    return [
        {"id": pk, "external_id": ext, "values": values, "label": label}
        for pk, ext, values, label in rows
    ]


def counterfactual_edit_rows(*, campaign: Campaign, model_version_id: int) -> list[dict[str, Any]]:
    """Every edit of the campaign with what the counterfactual metrics read: status, the
    author's labels, the example's gold label, and the predicted labels of model
    `model_version_id` on the original and the edit (None where that model has not scored
    it, or could not: an error entry)."""
    key = str(model_version_id)
    out = []
    for pk, example_id, modality, author, status, original, target, gold, scores in (
        CounterfactualEdit.objects.filter(campaign=campaign)
        .order_by("id")
        .values_list(
            "id",
            "example_id",
            "modality",
            "author__username",
            "status",
            "original_label",
            "target_label",
            "example__label",
            "scores",
        )
    ):
        entry = (scores or {}).get(key) or {}
        orig = entry.get("original") if isinstance(entry, dict) else None
        edit = entry.get("edit") if isinstance(entry, dict) else None
        out.append(
            {
                "edit_id": pk,
                "example_id": example_id,
                "modality": modality,
                "annotator": author,
                "status": status,
                "original_label": original,
                "target_label": target,
                "gold_label": gold or None,
                "pred_original": orig.get("predicted_label") if isinstance(orig, dict) else None,
                "pred_edit": edit.get("predicted_label") if isinstance(edit, dict) else None,
            }
        )
    return out


def reliance_counts(*, campaign: Campaign, example_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """example id → {reliance category: how many of the campaign's annotations gave it}
    (annotations that left the question unanswered are not counted)."""
    out: dict[int, dict[str, int]] = {}
    rows = (
        Annotation.objects.filter(campaign=campaign, example_id__in=list(example_ids))
        .exclude(reliance="")
        .values_list("example_id", "reliance")
        .annotate(n=Count("id"))
        .order_by("example_id", "reliance")
    )
    for example_id, reliance, n in rows:
        out.setdefault(example_id, {})[reliance] = n
    return out


def evidence_by_example(
    *, campaign: Campaign, example_ids: Iterable[int]
) -> dict[int, list[list[dict[str, Any]]]]:
    """example id → one evidence list per annotation of the campaign on it (an annotator who
    marked nothing gives an empty list: they count in the soft masks' denominators), in
    annotation order. One query."""
    out: dict[int, list[list[dict[str, Any]]]] = {}
    rows = (
        Annotation.objects.filter(campaign=campaign, example_id__in=list(example_ids))
        .order_by("example_id", "id")
        .values_list("example_id", "evidence")
    )
    for example_id, evidence in rows:
        out.setdefault(example_id, []).append(list(evidence or []))
    return out
