"""Counterfactual metrics with seeded bootstrap intervals (docs/analysis_pid.md).

Pure: numpy only. One row per stored counterfactual edit (`EditRow`), with one model's
predictions on its original and on the edit (None when that model has not scored it).

Definitions — every metric is a ratio numerator / denominator over edit rows; the
*reference label of the original* is the example's gold label when it has one, otherwise
the label the edit's author gave the original:

- claimed flip rate = edits whose target label differs from the original's reference label
  / all submitted edits. (The protocol makes the target differ from the author's own label,
  so this is below 1 only where the author's label of the original was not the gold one.)
- verified flip rate = verified edits / decided edits (verified + disputed; pending ones
  have no verdict yet and are left out).
- model flip rate = edits whose prediction on the edit differs from the prediction on the
  original / edits the model scored (both sides), any status.
- model follows human = verified edits whose prediction on the edit equals the verified
  (target) label / verified edits the model scored.
- contrast consistency = verified edits where the original is predicted as its reference
  label and the edit as its target label / verified edits the model scored.
- verified model error rate (vMER, Dynabench-style) = verified edits whose prediction on the
  edit is not the target label / decided edits the model scored (verified + disputed): of
  the edits people have judged, the share that are valid and fool the model.

Intervals: the percentile bootstrap over edits — B resamples of the rows with replacement
from `numpy.random.default_rng(seed)`, the metric on each (resamples whose denominator is 0
are dropped), and the 2.5th and 97.5th percentiles. The same resample indices serve every
metric of a group, so the figures of one group are comparable."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "HUMAN_METRICS",
    "MODEL_METRICS",
    "EditRow",
    "bootstrap_ratio",
    "counterfactual_metrics",
    "metric_indicators",
]

HUMAN_METRICS = ("claimed_flip_rate", "verified_flip_rate")
MODEL_METRICS = (
    "model_flip_rate",
    "model_follows_human",
    "contrast_consistency",
    "verified_model_error_rate",
)


@dataclass(frozen=True)
class EditRow:
    edit_id: int
    modality: str
    annotator: str
    status: str  # pending | verified | disputed
    original_label: str  # the author's label of the original
    target_label: str
    gold_label: str | None = None  # the example's gold label, if any
    pred_original: str | None = None  # the model's prediction on the original
    pred_edit: str | None = None  # the model's prediction on the edit
    example_id: int | None = None  # the edited example

    @property
    def reference_label(self) -> str:
        return self.gold_label if self.gold_label else self.original_label


def metric_indicators(rows: Sequence[EditRow]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """metric → (numerator, denominator) 0/1 vectors over `rows` (the definitions above)."""
    verified = np.array([r.status == "verified" for r in rows], dtype=bool)
    decided = np.array([r.status in ("verified", "disputed") for r in rows], dtype=bool)
    scored = np.array([r.pred_original is not None and r.pred_edit is not None for r in rows])
    claimed = np.array([r.target_label != r.reference_label for r in rows], dtype=bool)
    flipped = np.array([scored[i] and r.pred_edit != r.pred_original for i, r in enumerate(rows)])
    follows = np.array([scored[i] and r.pred_edit == r.target_label for i, r in enumerate(rows)])
    orig_right = np.array(
        [scored[i] and r.pred_original == r.reference_label for i, r in enumerate(rows)]
    )
    everything = np.ones(len(rows), dtype=bool)
    out = {
        "claimed_flip_rate": (claimed, everything),
        "verified_flip_rate": (verified, decided),
        "model_flip_rate": (flipped, scored),
        "model_follows_human": (verified & follows, verified & scored),
        "contrast_consistency": (verified & follows & orig_right, verified & scored),
        "verified_model_error_rate": (verified & scored & ~follows, decided & scored),
    }
    return {k: (n.astype(np.float64), d.astype(np.float64)) for k, (n, d) in out.items()}


def bootstrap_ratio(
    numerator: np.ndarray, denominator: np.ndarray, indices: np.ndarray
) -> tuple[float, float] | None:
    """Percentile 95% interval of Σnum/Σden over the resamples `indices` (B, n); None when
    no resample has a positive denominator."""
    den = denominator[indices].sum(axis=1)
    keep = den > 0
    if not keep.any():
        return None
    ratios = numerator[indices].sum(axis=1)[keep] / den[keep]
    lo, hi = np.percentile(ratios, [2.5, 97.5])
    return float(lo), float(hi)


def _group_figures(
    rows: Sequence[EditRow], *, resamples: int, rng: np.random.Generator, with_model: bool
) -> dict[str, Any]:
    indicators = metric_indicators(rows)
    n = len(rows)
    indices = rng.integers(0, n, size=(resamples, n)) if n and resamples else None
    out: dict[str, Any] = {"edits": n}
    for name in HUMAN_METRICS + (MODEL_METRICS if with_model else ()):
        num, den = indicators[name]
        d = int(den.sum())
        entry: dict[str, Any] = {
            "value": float(num.sum() / d) if d else None,
            "numerator": int(num.sum()),
            "denominator": d,
            "ci95": None,
        }
        if d and indices is not None:
            ci = bootstrap_ratio(num, den, indices)
            entry["ci95"] = list(ci) if ci is not None else None
        out[name] = entry
    return out


def _grouped(rows: Sequence[EditRow], key: Callable[[EditRow], str]) -> dict[str, list[EditRow]]:
    groups: dict[str, list[EditRow]] = {}
    for r in rows:
        groups.setdefault(key(r), []).append(r)
    return dict(sorted(groups.items()))


def counterfactual_metrics(
    rows: Iterable[EditRow], *, resamples: int = 1000, seed: int = 0, with_model: bool = True
) -> dict[str, Any]:
    """The metrics overall, per modality edited and per annotator, each with its numerator,
    denominator and bootstrap 95% interval. Same rows, resamples and seed → same result.
    `with_model=False` leaves out the model metrics (no model's predictions in the rows)."""
    if resamples < 0:
        raise ValueError("resamples must be ≥ 0")
    rows = sorted(rows, key=lambda r: r.edit_id)

    # One generator per group, derived from the seed and the group's name, so adding an
    # annotator does not shift every other group's intervals.
    def figures(group: str, members: Sequence[EditRow]) -> dict[str, Any]:
        rng = np.random.default_rng([seed, *group.encode()])
        return _group_figures(members, resamples=resamples, rng=rng, with_model=with_model)

    return {
        "bootstrap": {"resamples": resamples, "seed": seed, "level": 0.95, "method": "percentile"},
        "overall": figures("overall", rows),
        "by_modality": {
            m: figures(f"modality:{m}", g) for m, g in _grouped(rows, lambda r: r.modality).items()
        },
        "by_annotator": {
            a: figures(f"annotator:{a}", g)
            for a, g in _grouped(rows, lambda r: r.annotator).items()
        },
    }
