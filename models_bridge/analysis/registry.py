"""The analysis methods an analysis job can run, by name (docs/analysis.md).

A method is a callable `run(*, campaign, model_version, params, progress) -> dict`: it reads
the campaign's examples, calls the model through models_bridge/analysis/pairs.py, reports
`progress(done, total)` and returns a JSON-serialisable result that says which variant it
used. The job stores each method's result once (models_bridge.models.AnalysisResult)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from counterpoint.errors import ValidationFailed
from models_bridge.analysis.grounding_method import run_grounding
from models_bridge.analysis.methods import ablation_run, emap_run, perceptual_run
from models_bridge.analysis.pid_method import run_clusters, run_counterfactual, run_pid
from models_bridge.analysis.reliance_method import run_reliance


class AnalysisMethod(Protocol):
    def __call__(
        self,
        *,
        campaign: Any,
        model_version: Any,
        params: dict[str, Any],
        progress: Callable[[int, int], None],
    ) -> dict[str, Any]: ...


def perturbation_minimal_run(
    *,
    campaign: Any,
    model_version: Any,
    params: dict[str, Any],
    progress: Callable[[int, int], None],
) -> dict[str, Any]:
    """The minimal perturbation to chance per example of study `params["study"]` of the
    campaign (models_bridge/services/perturbation.py; docs/perturbation.md)."""
    from annotation.models import PerturbationStudy
    from models_bridge.services.perturbation import minimal_perturbation

    study_id = params.get("study")
    study = (
        PerturbationStudy.objects.select_related("campaign__dataset")
        .filter(pk=study_id, campaign=campaign)
        .first()
        if isinstance(study_id, int) and not isinstance(study_id, bool)
        else None
    )
    if study is None:
        raise ValidationFailed(
            "params.study must name a perturbation study of the campaign",
            code="analysis_params",
        )
    refine = params.get("refine", 3)
    if not isinstance(refine, int) or not 0 <= refine <= 10:
        raise ValidationFailed("params.refine must be 0 to 10", code="analysis_params")
    return minimal_perturbation(
        study=study, model_version=model_version, refine=refine, progress=progress
    )


METHODS: dict[str, AnalysisMethod] = {
    "emap": emap_run,
    "ablation": ablation_run,
    "perceptual": perceptual_run,
    "pid": run_pid,
    "counterfactual": run_counterfactual,
    "clusters": run_clusters,
    "reliance": run_reliance,
    "grounding": run_grounding,
    "perturbation_minimal": perturbation_minimal_run,
}


def methods_check(names: list[str]) -> list[str]:
    """The names in order, duplicates dropped; an unknown or empty list is a named 400."""
    if not names:
        raise ValidationFailed(
            f"name at least one method: {', '.join(sorted(METHODS))}",
            code="analysis_methods_empty",
            details={"known": sorted(METHODS)},
        )
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ValidationFailed(
            f"unknown analysis method(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(METHODS))}",
            code="analysis_method_unknown",
            details={"unknown": unknown, "known": sorted(METHODS)},
        )
    return list(dict.fromkeys(names))
