"""Models on perturbation studies (docs/perturbation.md "Models"): score every perturbed item
with every campaign model (bulk scoring jobs, target "perturbed"), the curves of humans and
models side by side with the human-model gap by level, and the minimal perturbation to chance
per example and model.

The curves read what is stored: human labels (PerturbationLabel) and the Score cache (a model's
prediction on an item is the Score row of its input hash), so reading them never calls a model;
an item not scored yet is counted as missing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from annotation import perturbations as pt
from annotation.models import (
    CounterfactualEdit,
    Job,
    Media,
    PerturbationLabel,
    PerturbationStudy,
    PerturbedItem,
)
from annotation.selectors import tabular_mad
from annotation.services.media import (
    CheckedImage,
    check_image_bytes,
    media_read,
    media_store_many,
)
from annotation.services.perturbations import study_chance
from counterpoint.errors import Conflict, ValidationFailed
from models_bridge.analysis.perturbation_curves import (
    accuracy_by_level,
    empirical_halfway,
    fit_psychometric,
    minimal_distribution,
    minimal_levels,
)
from models_bridge.models import AnalysisResult, ModelVersion
from models_bridge.services.bulk import bulk_score_start
from models_bridge.services.scoring import ScoreStats, cached_scores, input_hash, score

N_BOOT = 1000


def study_models(study: PerturbationStudy) -> list[ModelVersion]:
    """The campaign's active models, oldest first."""
    return list(
        ModelVersion.objects.filter(campaigns=study.campaign, is_active=True)
        .select_related("dataset")
        .order_by("id")
    )


def perturbation_score_start(
    *, study: PerturbationStudy, created_by: Any, enqueue: bool = True
) -> list[Job]:
    """One bulk scoring job per active campaign model over the study's items (cached inputs
    cost nothing). Conflict study_not_ready; ValidationFailed study_no_models."""
    if study.status != PerturbationStudy.Status.READY:
        raise Conflict(
            f"study {study.name!r} is {study.status}: build its items first",
            code="study_not_ready",
        )
    models = study_models(study)
    if not models:
        raise ValidationFailed(
            "the campaign has no active model to score the study with", code="study_no_models"
        )
    return [
        bulk_score_start(
            model_version=mv,
            created_by=created_by,
            campaign=study.campaign,
            target="perturbed",
            study=study,
            enqueue=enqueue,
        )
        for mv in models
    ]


def _curve(
    levels: list[float],
    observations: list[tuple[int, bool]],
    *,
    chance: float,
    seed: int,
) -> dict[str, Any]:
    points = accuracy_by_level(levels, observations, n_boot=N_BOOT, seed=seed)
    fit = fit_psychometric(
        levels, [p.correct for p in points], [p.n for p in points], chance=chance
    )
    halfway = fit.halfway if fit is not None else None
    return {
        "points": [p.as_dict() for p in points],
        "fit": fit.as_dict() if fit is not None else None,
        "fit_curve": _fit_curve(levels, fit),
        "halfway": halfway,
        # A flat curve's fitted halfway lies far beyond the ladder: extrapolated, not measured.
        "halfway_on_ladder": halfway is not None and levels[0] <= halfway <= levels[-1],
        "empirical_halfway": empirical_halfway(points, chance=chance),
        "observations": len(observations),
    }


def _fit_curve(levels: list[float], fit: Any) -> list[dict[str, float]]:
    if fit is None:
        return []
    lo, hi = levels[0], levels[-1]
    xs = [lo + (hi - lo) * i / 40 for i in range(41)]
    return [{"level": x, "accuracy": float(fit.p(x))} for x in xs]


def study_curves(*, study: PerturbationStudy) -> dict[str, Any]:
    """Humans' and every campaign model's accuracy by level (bootstrap intervals, the fitted
    curve, the halfway level) and the human - model gap by level. Gold labels count like any
    other at level 0. Reads only stored rows."""
    levels = [float(x) for x in study.levels]
    chance = study_chance(study)
    items = list(
        PerturbedItem.objects.filter(study=study).values_list(
            "id", "level_index", "values", "example__label"
        )
    )
    gold = {ident: label for ident, _, _, label in items}
    human_obs = [
        (level_index, label == gold.get(item_id))
        for item_id, level_index, label in PerturbationLabel.objects.filter(study=study)
        .values_list("item_id", "level_index", "label")
        .order_by("id")
        if gold.get(item_id) is not None
    ]
    humans = _curve(levels, human_obs, chance=chance, seed=study.seed)
    models = []
    labelled = [(i, li, v, lab) for i, li, v, lab in items if lab is not None]
    for mv in study_models(study):
        hashes = {i: input_hash(mv.modalities, v) for i, _, v, _ in labelled}
        found = cached_scores((mv.pk, h) for h in hashes.values())
        obs = []
        for i, li, _, lab in labelled:
            hit = found.get((mv.pk, hashes[i]))
            if hit is not None:
                obs.append((li, hit.predicted_label == lab))
        curve = _curve(levels, obs, chance=chance, seed=study.seed)
        curve.update({"id": mv.pk, "name": str(mv), "scored": len(obs), "items": len(labelled)})
        models.append(curve)
    gap = []
    for index, level in enumerate(levels):
        h = humans["points"][index]["accuracy"]
        for m in models:
            a = m["points"][index]["accuracy"]
            gap.append(
                {
                    "level_index": index,
                    "level": level,
                    "model": m["id"],
                    "model_name": m["name"],
                    "human": h,
                    "accuracy": a,
                    "gap": None if h is None or a is None else h - a,
                }
            )
    return {
        "study": study.pk,
        "perturbation": study.perturbation,
        "modality": study.modality,
        "levels": levels,
        "chance": chance,
        "humans": humans,
        "models": models,
        "gap": gap,
    }


# --- minimal perturbation to chance -----------------------------------------------------------


class _Values:
    """The values of an example at any level: a rung's stored item, or (between rungs) a new
    perturbation of the same seed, stored like the rungs (images as Media) so the model's
    input is kept and its score cached."""

    def __init__(self, study: PerturbationStudy) -> None:
        self.study = study
        self.kind = study.campaign.dataset.modality_kind(study.modality) or ""
        self.rungs: dict[tuple[int, float], dict[str, Any]] = {}
        self.bytes: dict[str, bytes] = {}
        self.mad = (
            tabular_mad(dataset=study.campaign.dataset, modality=study.modality)
            if self.kind == "tabular"
            else {}
        )

    def at(self, example: Any, level: float) -> tuple[dict[str, Any], CheckedImage | None]:
        """(values, the new image to store first, if any)."""
        found = self.rungs.get((example.pk, level))
        if found is not None:
            return found, None
        study, modality = self.study, self.study.modality
        values = dict(example.values)
        original = example.values.get(modality)
        key = example.content_hash
        if self.kind == "image":
            sha = str(original)
            if sha not in self.bytes:
                self.bytes[sha] = media_read(Media.objects.get(sha256=sha))
            data = pt.perturb_image(
                self.bytes[sha], name=study.perturbation, level=level, seed=study.seed, key=key
            )
            checked = check_image_bytes(data)
            values[modality] = checked.sha256
            return values, checked
        elif self.kind == "text":
            values[modality] = pt.perturb_text(
                str(original or ""), name=study.perturbation, level=level, seed=study.seed, key=key
            )
        else:
            values[modality] = pt.perturb_tabular(
                original if isinstance(original, dict) else {},
                name=study.perturbation,
                level=level,
                seed=study.seed,
                key=key,
                mad=self.mad,
            )
        return values, None


def minimal_perturbation(
    *,
    study: PerturbationStudy,
    model_version: ModelVersion,
    refine: int = 3,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    stats: ScoreStats | None = None,
) -> dict[str, Any]:
    """Per example of the study, the smallest level at which `model_version` fails: its
    prediction differs from its prediction on the unperturbed input, or its probability of the
    example's label falls to chance or below (models_bridge/analysis/perturbation_curves.py
    `minimal_levels`: bisection over the rungs, then `refine` steps between rungs for
    continuous perturbations). Model calls are counted per example (an evaluation answered
    from the Score cache counts too: it is one the search asked for)."""
    spec = pt.perturbation_get(study.perturbation)
    levels = [float(x) for x in study.levels]
    chance = study_chance(study)
    items = (
        PerturbedItem.objects.filter(study=study)
        .select_related("example")
        .order_by("example_id", "level_index")
    )
    values = _Values(study)
    examples: dict[int, Any] = {}
    for item in items.iterator(chunk_size=2000):
        examples.setdefault(item.example_id, item.example)
        values.rungs[(item.example_id, float(item.level))] = item.values
    order = sorted(examples)[:limit] if limit else sorted(examples)
    reference: dict[int, str] = {}
    steps = {"n": 0}

    def evaluate(asked: list[tuple[int, float]]) -> list[bool]:
        steps["n"] += 1
        made = [values.at(examples[order[i]], level) for i, level in asked]
        images = [img for _, img in made if img is not None]
        if images:
            media_store_many(checked=images)  # stored like the rungs, before scoring
        rows = [v for v, _ in made]
        results = score(model_version=model_version, inputs=rows, stats=stats)
        out = []
        for (i, _), res in zip(asked, results, strict=True):
            ex = examples[order[i]]
            ref = reference.setdefault(i, res.predicted_label)
            correct = ex.label
            p_correct = res.probabilities.get(correct) if correct else None
            out.append(
                res.predicted_label != ref or (p_correct is not None and p_correct <= chance)
            )
        if progress:
            progress(steps["n"], 0)
        return out

    found = minimal_levels(len(order), levels, evaluate, continuous=spec.continuous, refine=refine)
    rows = [
        {"example": order[i], "level": f.level, "rung": f.rung, "calls": f.calls}
        for i, f in enumerate(found)
    ]
    calls = [f.calls for f in found]
    reached = [f.level for f in found if f.level is not None]
    return {
        "study": study.pk,
        "model": model_version.pk,
        "model_name": str(model_version),
        "refine": refine if spec.continuous else 0,
        "examples": len(rows),
        "mean_calls": sum(calls) / len(calls) if calls else None,
        "max_calls": max(calls) if calls else None,
        "steps": steps["n"],
        "reached_chance": len(reached),
        "median_level": _median(reached),
        "rows": rows,
        "levels_histogram": _histogram(reached, levels),
        "human_edits": human_edit_sizes(study=study),
    }


def study_minimal(*, study: PerturbationStudy) -> list[dict[str, Any]]:
    """The latest stored minimal perturbation to chance of the study per model (analysis jobs
    of method perturbation_minimal on it; one query), as its distribution chart draws it."""
    latest: dict[Any, AnalysisResult] = {}
    for row in (
        AnalysisResult.objects.filter(
            method="perturbation_minimal",
            job__campaign_id=study.campaign_id,
            job__params__params__study=study.pk,
        )
        .select_related("job")
        .order_by("job_id")
    ):
        latest[row.result.get("model")] = row
    return [
        {
            **minimal_distribution(row.result),
            "job": row.job_id,
            "report": f"/manage/campaigns/{study.campaign_id}/analyses/{row.job_id}/",
        }
        for row in sorted(latest.values(), key=lambda r: r.job_id)
    ]


# The minimality figure that says how big a human edit of each modality kind is
# (annotation/minimality.py): the counterpart of a perturbation's level.
EDIT_SIZE = {"text": "minimality", "image": "pixel_fraction", "tabular": "fraction_changed"}


def human_edit_sizes(*, study: PerturbationStudy) -> dict[str, Any]:
    """The campaign's human counterfactual edits of the study's modality: their sizes (the
    modality kind's minimality figure), to set beside the models' minimal perturbations."""
    kind = study.campaign.dataset.modality_kind(study.modality) or ""
    measure = EDIT_SIZE.get(kind, "")
    sizes = sorted(
        float(m[measure])
        for m in CounterfactualEdit.objects.filter(
            campaign=study.campaign, modality=study.modality
        ).values_list("minimality", flat=True)
        if isinstance(m, dict) and isinstance(m.get(measure), int | float)
    )
    return {
        "modality": study.modality,
        "measure": measure,
        "count": len(sizes),
        "median": _median(sizes),
        "sizes": sizes[:1000],
    }


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def _histogram(values: list[float], levels: list[float]) -> list[dict[str, Any]]:
    """How many examples first fail within each rung interval (level_i-1, level_i]."""
    out = []
    for index, level in enumerate(levels):
        lo = levels[index - 1] if index else None
        n = sum(
            1 for v in values if (lo is None and v <= level) or (lo is not None and lo < v <= level)
        )
        out.append({"level_index": index, "level": level, "examples": n})
    return out
