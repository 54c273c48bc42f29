"""Perturbation curves and the point of chance (docs/perturbation.md "Curves"), DB-free and
torch-free: numpy, and scipy.optimize for the fit.

- `accuracy_by_level`: accuracy at each rung of the ladder with a seeded percentile bootstrap
  interval (observations resampled with replacement within the rung).
- `fit_psychometric`: a logistic in the level with chance as its floor,

      p(x) = c + (a - c) · sig(-(x - m) / s),   c < a ≤ 1, s > 0,

  fitted by binomial maximum likelihood on the per-rung counts (c fixed: 1 / |labels| or the
  study's own figure). `halfway` is the level where the fitted p is halfway between the fitted
  p at the first rung (the unperturbed input) and chance:
  x½ = m - s · logit(sig(-(x₀ - m)/s) / 2). None when the first rung is already at chance.
- `minimal_levels`: per example, the smallest level at which a model fails — its prediction
  differs from its prediction on the unperturbed input, or its probability of the correct label
  falls to chance — by bisection over the ladder's rungs, then (continuous perturbations)
  `refine` bisection steps between the last passing and the first failing rung. All examples
  advance in lockstep, so every step is one batched evaluation. Calls per example: 1 (the first
  rung) + 1 (the top rung) + ⌈log2(L - 1)⌉ + refine, i.e. ≤ 2·log2(L) + 3 for L ≥ 4 rungs and
  refine ≤ 3. Assumes the failure is monotone in the level (the ladders are nested, see
  annotation/perturbations.py); where it is not, the search still returns a failing level.
- `minimal_distribution`: what a minimal-perturbation result's distribution chart draws, beside
  the human counterfactual edit sizes of the same campaign and modality."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LevelAccuracy:
    level_index: int
    level: float
    n: int
    correct: int
    accuracy: float | None
    low: float | None
    high: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "level_index": self.level_index,
            "level": self.level,
            "n": self.n,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "low": self.low,
            "high": self.high,
        }


def accuracy_by_level(
    levels: Sequence[float],
    observations: Sequence[tuple[int, bool]],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> list[LevelAccuracy]:
    """`observations`: (rung index, correct) pairs. A rung without observations has None."""
    rng = np.random.default_rng(seed)
    by_level: list[list[bool]] = [[] for _ in levels]
    for index, correct in observations:
        by_level[index].append(bool(correct))
    alpha = (1 - confidence) / 2
    out = []
    for index, (level, hits) in enumerate(zip(levels, by_level, strict=True)):
        n = len(hits)
        if n == 0:
            out.append(LevelAccuracy(index, float(level), 0, 0, None, None, None))
            continue
        arr = np.asarray(hits, dtype=np.float64)
        draws = arr[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
        low, high = np.quantile(draws, [alpha, 1 - alpha])
        out.append(
            LevelAccuracy(
                index, float(level), n, int(arr.sum()), float(arr.mean()), float(low), float(high)
            )
        )
    return out


@dataclass(frozen=True)
class PsychometricFit:
    chance: float
    top: float  # a: the asymptote at low levels
    midpoint: float  # m
    scale: float  # s
    first_level: float  # x0: the unperturbed rung
    converged: bool

    def p(self, x: Any) -> Any:
        z = -(np.asarray(x, dtype=np.float64) - self.midpoint) / self.scale
        return self.chance + (self.top - self.chance) / (1 + np.exp(np.clip(-z, -500, 500)))

    @property
    def halfway(self) -> float | None:
        if self.top - self.chance <= 1e-9:
            return None
        h = _sigmoid(-(self.first_level - self.midpoint) / self.scale) / 2
        if not 0 < h < 1:
            return None
        return float(self.midpoint - self.scale * math.log(h / (1 - h)))

    def as_dict(self) -> dict[str, Any]:
        return {
            "chance": self.chance,
            "top": self.top,
            "midpoint": self.midpoint,
            "scale": self.scale,
            "halfway": self.halfway,
            "converged": self.converged,
        }


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))


def fit_psychometric(
    levels: Sequence[float], correct: Sequence[int], totals: Sequence[int], *, chance: float
) -> PsychometricFit | None:
    """Binomial MLE of the chance-floored logistic on per-rung counts. None when fewer than two
    rungs have observations (nothing to fit)."""
    from scipy.optimize import minimize

    x = np.asarray(levels, dtype=np.float64)
    k = np.asarray(correct, dtype=np.float64)
    n = np.asarray(totals, dtype=np.float64)
    seen = n > 0
    if seen.sum() < 2:
        return None
    x, k, n = x[seen], k[seen], n[seen]
    span = float(x.max() - x.min()) or 1.0
    eps = 1e-9

    def unpack(theta: np.ndarray) -> tuple[float, float, float]:
        top = chance + (1 - chance) * _sigmoid(float(theta[0]))
        # log-scale clamped: flat data drive it off to ±infinity, where exp overflows.
        return top, float(theta[1]), math.exp(min(max(float(theta[2]), -30.0), 30.0))

    def nll(theta: np.ndarray) -> float:
        top, mid, scale = unpack(theta)
        p = chance + (top - chance) / (1 + np.exp(np.clip((x - mid) / scale, -500, 500)))
        p = np.clip(p, eps, 1 - eps)
        return float(-(k * np.log(p) + (n - k) * np.log(1 - p)).sum())

    rate = np.clip(k / n, chance + 1e-3, 1 - 1e-3)
    u = min(max((float(rate.max()) - chance) / (1 - chance), 1e-3), 1 - 1e-3)
    best = None
    # A few starts along the ladder: the likelihood has flat regions when the curve's bend
    # lies between two rungs.
    for mid0 in np.linspace(x.min(), x.max(), 5):
        start = np.array([math.log(u / (1 - u)), float(mid0), math.log(span / 8)])
        res = minimize(
            nll,
            start,
            method="Nelder-Mead",
            options={"maxiter": 4000, "xatol": 1e-8, "fatol": 1e-10},
        )
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None
    top, mid, scale = unpack(best.x)
    return PsychometricFit(
        chance=chance,
        top=top,
        midpoint=mid,
        scale=scale,
        first_level=float(levels[0]),
        converged=bool(best.success),
    )


def empirical_halfway(points: Sequence[LevelAccuracy], *, chance: float) -> float | None:
    """The level where the observed accuracy first reaches halfway between the first rung's
    and chance, by linear interpolation between rungs; None when it never does on the ladder."""
    seen = [p for p in points if p.accuracy is not None]
    if not seen or seen[0].level_index != 0:
        return None
    start = seen[0].accuracy
    assert start is not None
    target = (start + chance) / 2
    if start <= chance:
        return None
    for a, b in itertools.pairwise(seen):
        assert a.accuracy is not None and b.accuracy is not None
        if b.accuracy <= target:
            if a.accuracy == b.accuracy:
                return b.level
            t = (a.accuracy - target) / (a.accuracy - b.accuracy)
            return a.level + t * (b.level - a.level)
    return None


# --- minimal perturbation to chance -------------------------------------------------------


@dataclass(frozen=True)
class MinimalLevel:
    level: float | None  # None: never fails on the ladder
    rung: int | None  # the first failing rung
    calls: int


def _search(
    levels: Sequence[float], *, continuous: bool, refine: int
) -> Generator[float, bool, MinimalLevel]:
    calls = 0

    def ask(level: float) -> Generator[float, bool, bool]:
        nonlocal calls
        calls += 1
        return (yield level)

    if (yield from ask(levels[0])):
        return MinimalLevel(levels[0], 0, calls)
    top = len(levels) - 1
    if top == 0 or not (yield from ask(levels[top])):
        return MinimalLevel(None, None, calls)
    lo, hi = 0, top  # lo passes, hi fails
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (yield from ask(levels[mid])):
            hi = mid
        else:
            lo = mid
    if not continuous:
        return MinimalLevel(levels[hi], hi, calls)
    a, b = float(levels[lo]), float(levels[hi])
    for _ in range(refine):
        mid_level = (a + b) / 2
        if (yield from ask(mid_level)):
            b = mid_level
        else:
            a = mid_level
    return MinimalLevel(b, hi, calls)


def minimal_levels(
    n_examples: int,
    levels: Sequence[float],
    evaluate: Callable[[list[tuple[int, float]]], Sequence[bool]],
    *,
    continuous: bool,
    refine: int = 3,
) -> list[MinimalLevel]:
    """Run the search for `n_examples` at once. `evaluate` gets the (example index, level)
    pairs of one step (at most one per example) and says, for each, whether the model fails
    there; it is called about log2(L) + refine + 2 times in all."""
    searches = [_search(levels, continuous=continuous, refine=refine) for _ in range(n_examples)]
    results: list[MinimalLevel | None] = [None] * n_examples
    pending: dict[int, float] = {}
    for i, s in enumerate(searches):
        pending[i] = next(s)
    while pending:
        asked = sorted(pending.items())
        answers = evaluate(asked)
        pending = {}
        for (i, _), failed in zip(asked, answers, strict=True):
            try:
                pending[i] = searches[i].send(bool(failed))
            except StopIteration as stop:
                results[i] = stop.value
    return [r for r in results if r is not None]


def minimal_distribution(result: Mapping[str, Any]) -> dict[str, Any]:
    """What the distribution chart of a `perturbation_minimal` result draws (the study page and
    the analysis report, js/minimal_chart.js): the model's minimal level per example that
    reached chance, how many did not within the ladder, and the human counterfactual edit
    sizes of the same campaign and modality, with the figure that measures them."""
    rows = [r for r in result.get("rows") or [] if isinstance(r, Mapping)]
    reached = sorted(float(r["level"]) for r in rows if isinstance(r.get("level"), int | float))
    humans = result.get("human_edits") or {}
    ladder = [
        float(h["level"])
        for h in result.get("levels_histogram") or []
        if isinstance(h, Mapping) and isinstance(h.get("level"), int | float)
    ]
    return {
        "model": result.get("model"),
        "model_name": result.get("model_name", ""),
        "ladder": ladder,
        "examples": len(rows),
        "levels": reached,
        "beyond": len(rows) - len(reached),
        "median_level": result.get("median_level"),
        "mean_calls": result.get("mean_calls"),
        "human_modality": humans.get("modality", ""),
        "human_measure": humans.get("measure", ""),
        "human_sizes": [float(x) for x in humans.get("sizes") or [] if isinstance(x, int | float)],
        "human_count": humans.get("count", 0),
        "human_median": humans.get("median"),
    }
