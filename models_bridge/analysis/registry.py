"""The analysis methods an analysis job can run, by name (docs/analysis.md).

A method is a callable `run(*, campaign, model_version, params, progress) -> dict`: it reads
the campaign's examples, calls the model through models_bridge/analysis/pairs.py, reports
`progress(done, total)` and returns a JSON-serialisable result that says which variant it
used. The job stores each method's result once (models_bridge.models.AnalysisResult)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from counterpoint.errors import ValidationFailed
from models_bridge.analysis.heads_method import run_heads
from models_bridge.analysis.methods import ablation_run, emap_run, perceptual_run
from models_bridge.analysis.pid_method import run_clusters, run_counterfactual, run_pid


class AnalysisMethod(Protocol):
    def __call__(
        self,
        *,
        campaign: Any,
        model_version: Any,
        params: dict[str, Any],
        progress: Callable[[int, int], None],
    ) -> dict[str, Any]: ...


METHODS: dict[str, AnalysisMethod] = {
    "emap": emap_run,
    "ablation": ablation_run,
    "perceptual": perceptual_run,
    "pid": run_pid,
    "counterfactual": run_counterfactual,
    "clusters": run_clusters,
    "heads": run_heads,
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
