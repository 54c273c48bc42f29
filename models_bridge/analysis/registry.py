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
from models_bridge.analysis.heads_method import run_heads
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


def perturbation_study_param(*, campaign: Any, params: dict[str, Any]) -> Any:
    """The perturbation study `params["study"]` of the campaign, and `params["refine"]` in
    range, or a named 400: checked when the job starts and again when the method runs."""
    from annotation.models import PerturbationStudy

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
            "params.study must name a perturbation study of the campaign (start this method "
            "from the study's page)",
            code="analysis_params",
        )
    refine = params.get("refine", 3)
    if not isinstance(refine, int) or isinstance(refine, bool) or not 0 <= refine <= 10:
        raise ValidationFailed("params.refine must be 0 to 10", code="analysis_params")
    return study


def perturbation_minimal_run(
    *,
    campaign: Any,
    model_version: Any,
    params: dict[str, Any],
    progress: Callable[[int, int], None],
) -> dict[str, Any]:
    """The minimal perturbation to chance per example of study `params["study"]` of the
    campaign (models_bridge/services/perturbation.py; docs/perturbation.md)."""
    from models_bridge.services.perturbation import minimal_perturbation

    study = perturbation_study_param(campaign=campaign, params=params)
    return minimal_perturbation(
        study=study,
        model_version=model_version,
        refine=params.get("refine", 3),
        progress=progress,
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
    "heads": run_heads,
}


def _heads_start_check(*, campaign: Any, model_version: Any, params: dict[str, Any]) -> None:
    from models_bridge.analysis.heads_method import heads_check

    heads_check(model_version)


def _study_start_check(*, campaign: Any, model_version: Any, params: dict[str, Any]) -> None:
    perturbation_study_param(campaign=campaign, params=params)


# What a method needs before a job of it may start (a named 400 otherwise, nothing stored).
START_CHECKS: dict[str, Callable[..., None]] = {
    "heads": _heads_start_check,
    "perturbation_minimal": _study_start_check,
}
# Methods of one perturbation study (params.study), started from the study's page, not from
# the campaign's analyses form.
STUDY_METHODS = frozenset({"perturbation_minimal"})


def methods_start_check(
    *, names: list[str], campaign: Any, model_version: Any, params: dict[str, Any]
) -> None:
    for name in names:
        if check := START_CHECKS.get(name):
            check(campaign=campaign, model_version=model_version, params=params)


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
