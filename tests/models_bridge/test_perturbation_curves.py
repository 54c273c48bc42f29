"""Perturbation curves (models_bridge/analysis/perturbation_curves.py): bootstrap intervals are
seeded and cover the truth; the chance-floored logistic recovers known parameters from
synthetic psychometric data (and matches statsmodels' binomial GLM where the two models
coincide); the halfway level matches its closed form; the minimal-level search finds known
thresholds within the call budget 2·log2(L) + 3."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models_bridge.analysis import perturbation_curves as pc


def synthetic(levels, *, chance, top, mid, scale, n, seed):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    x = np.asarray(levels)
    p = chance + (top - chance) / (1 + np.exp((x - mid) / scale))
    return rng.binomial(n, p), np.full(len(levels), n), p


def test_accuracy_by_level_is_seeded_and_brackets_the_mean() -> None:
    rng = np.random.default_rng(1)
    obs = [(i, bool(rng.random() < 0.9 - 0.2 * i)) for i in range(4) for _ in range(200)]
    a = pc.accuracy_by_level([0, 1, 2, 3, 4], obs, seed=3)
    b = pc.accuracy_by_level([0, 1, 2, 3, 4], obs, seed=3)
    assert a == b
    for row in a[:4]:
        assert row.n == 200 and row.low < row.accuracy < row.high
        # the percentile interval of a proportion is about ±1.96·sqrt(p(1-p)/n)
        half = 1.96 * math.sqrt(row.accuracy * (1 - row.accuracy) / row.n)
        assert row.high - row.low == pytest.approx(2 * half, rel=0.2)
    assert a[4].n == 0 and a[4].accuracy is None


def test_fit_recovers_known_parameters_and_halfway() -> None:
    levels = np.linspace(0, 1, 11)
    k, n, _ = synthetic(levels, chance=0.25, top=0.95, mid=0.5, scale=0.08, n=4000, seed=0)
    fit = pc.fit_psychometric(levels, k, n, chance=0.25)
    assert fit is not None and fit.converged
    assert fit.top == pytest.approx(0.95, abs=0.01)
    assert fit.midpoint == pytest.approx(0.5, abs=0.01)
    assert fit.scale == pytest.approx(0.08, rel=0.1)
    # halfway: where p is midway between p(0) and chance; p(x½) checks the closed form.
    half = fit.halfway
    assert half is not None
    assert float(fit.p(half)) == pytest.approx((float(fit.p(0.0)) + 0.25) / 2, abs=1e-9)
    assert half == pytest.approx(0.5, abs=0.02)


def test_fit_matches_a_binomial_glm_when_the_top_is_one() -> None:
    """With chance 0 and the top at 1 the model is a logistic regression in x: statsmodels'
    GLM gives the same curve."""
    import statsmodels.api as sm

    levels = np.linspace(0, 4, 9)
    k, n, _ = synthetic(levels, chance=1e-6, top=1 - 1e-9, mid=2.0, scale=0.6, n=300, seed=5)
    glm = sm.GLM(
        np.column_stack([k, n - k]), sm.add_constant(levels), family=sm.families.Binomial()
    ).fit()
    b0, b1 = glm.params
    fit = pc.fit_psychometric(levels, k, n, chance=1e-6)
    assert fit is not None
    # logistic(b0 + b1 x) = sig(-(x - m)/s): m = -b0/b1, s = -1/b1
    assert fit.midpoint == pytest.approx(-b0 / b1, abs=0.05)
    assert fit.scale == pytest.approx(-1 / b1, rel=0.1)


def test_fit_needs_two_rungs_and_halfway_needs_room_above_chance() -> None:
    assert pc.fit_psychometric([0, 1], [5, 0], [10, 0], chance=0.5) is None
    flat = pc.fit_psychometric([0, 1, 2], [50, 50, 50], [100, 100, 100], chance=0.5)
    assert flat is not None
    assert flat.halfway is None or flat.top - flat.chance < 0.05


def test_empirical_halfway_interpolates() -> None:
    points = pc.accuracy_by_level(
        [0, 1, 2],
        [(0, True)] * 9 + [(0, False)] + [(1, True)] * 6 + [(1, False)] * 4 + [(2, False)] * 10,
        n_boot=10,
    )
    # 0.9 → 0.6 → 0.0 with chance 0.5: target 0.7, reached 2/3 of the way from 0 to 1.
    assert pc.empirical_halfway(points, chance=0.5) == pytest.approx(2 / 3)


@pytest.mark.parametrize("continuous", [True, False])
def test_minimal_levels_finds_thresholds_within_budget(continuous: bool) -> None:
    levels = [0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0]
    rng = np.random.default_rng(0)
    thresholds = [*rng.uniform(0.01, 1.0, 300), 2.0, 0.0]  # never; already at chance
    calls = {"n": 0}

    def evaluate(asked):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        assert len({i for i, _ in asked}) == len(asked)  # one per example per step
        return [level >= thresholds[i] for i, level in asked]

    found = pc.minimal_levels(len(thresholds), levels, evaluate, continuous=continuous, refine=3)
    budget = 2 * math.log2(len(levels)) + 3
    assert np.mean([f.calls for f in found]) <= budget
    assert max(f.calls for f in found) <= 1 + 1 + math.ceil(math.log2(9)) + 3
    assert calls["n"] <= 1 + 1 + math.ceil(math.log2(9)) + 3
    for t, f in zip(thresholds, found, strict=True):
        if t > 1.0:
            assert f.level is None and f.calls == 2
            continue
        if t == 0.0:
            assert f.level == 0.0 and f.calls == 1
            continue
        rung = next(i for i, lv in enumerate(levels) if lv >= t)
        assert f.rung == rung
        if continuous:
            width = (levels[rung] - levels[rung - 1]) / 8
            assert t <= f.level <= t + width + 1e-12
        else:
            assert f.level == levels[rung]


@pytest.mark.parametrize(
    "correct",
    [[20, 20, 20, 20, 20], [0, 0, 0, 0, 0], [20, 0, 0, 0, 0], [0, 0, 0, 0, 20], [3, 1, 4, 1, 5]],
)
def test_fit_survives_degenerate_data(correct: list[int]) -> None:
    fit = pc.fit_psychometric([0, 0.1, 0.2, 0.4, 0.8], correct, [20] * 5, chance=1 / 13)
    assert fit is not None
    assert 1 / 13 <= fit.top <= 1 and fit.scale > 0
    assert np.all(np.isfinite(fit.p([0, 0.5, 1.0])))


def test_minimal_distribution_lays_out_a_result_for_its_chart() -> None:
    result = {
        "model": 3,
        "model_name": "m@1",
        "rows": [
            {"example": 1, "level": 0.3, "rung": 3, "calls": 5},
            {"example": 2, "level": None, "rung": None, "calls": 2},
            {"example": 3, "level": 0.1, "rung": 1, "calls": 5},
        ],
        "median_level": 0.2,
        "mean_calls": 4.0,
        "levels_histogram": [
            {"level_index": i, "level": x, "examples": 0}
            for i, x in enumerate([0.0, 0.1, 0.2, 0.4])
        ],
        "human_edits": {
            "modality": "image",
            "measure": "pixel_fraction",
            "count": 2,
            "median": 0.05,
            "sizes": [0.04, 0.06],
        },
    }
    d = pc.minimal_distribution(result)
    assert d["levels"] == [0.1, 0.3] and d["beyond"] == 1 and d["examples"] == 3
    assert d["ladder"] == [0.0, 0.1, 0.2, 0.4]
    assert (d["human_measure"], d["human_sizes"], d["human_count"]) == (
        "pixel_fraction",
        [0.04, 0.06],
        2,
    )
    # A result without human edits or rows (an empty study) still lays out.
    empty = pc.minimal_distribution({})
    assert empty["levels"] == [] and empty["beyond"] == 0 and empty["human_sizes"] == []
