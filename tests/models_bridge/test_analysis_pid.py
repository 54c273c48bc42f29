"""The pure analyses of docs/analysis_pid.md: PID of a discrete joint (Bertschinger et al.
2014), counterfactual metrics with seeded bootstrap intervals, interaction clusters."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from models_bridge.analysis.clusters import ClusterInputError, interaction_clusters, kmeans_codes
from models_bridge.analysis.counterfactual import (
    EditRow,
    bootstrap_ratio,
    counterfactual_metrics,
    metric_indicators,
)
from models_bridge.analysis.pid import (
    PIDInputError,
    joint_from_codes,
    mutual_information,
    pid_from_joint,
)

TOL = 1e-3  # bits, the tolerance on the textbook gates
SOLVER_TOL = 1e-5  # what the identities hold to with Clarabel's default tolerances


def gate(f: Callable[[int, int], int]) -> np.ndarray:
    """Uniform binary x1, x2 and y = f(x1, x2)."""
    p = np.zeros((2, 2, 2))
    for a in (0, 1):
        for b in (0, 1):
            p[a, b, f(a, b)] += 0.25
    return p


def terms(p: np.ndarray) -> tuple[float, float, float, float]:
    d = pid_from_joint(p)
    return d["redundancy"], d["unique_1"], d["unique_2"], d["synergy"]


@pytest.mark.parametrize("f", [lambda a, b: a & b, lambda a, b: a | b], ids=["and", "or"])
def test_and_or_have_redundancy_0311_and_synergy_half_a_bit(f: Callable[[int, int], int]) -> None:
    r, u1, u2, s = terms(gate(f))
    # R = I(X1;Y) = 1 - (3/4)·h(1/3) for AND and OR, S = 1/2.
    assert r == pytest.approx(0.311278, abs=TOL)
    assert s == pytest.approx(0.5, abs=TOL)
    assert u1 == pytest.approx(0.0, abs=TOL) and u2 == pytest.approx(0.0, abs=TOL)


def test_xor_is_one_bit_of_synergy() -> None:
    assert terms(gate(lambda a, b: a ^ b)) == pytest.approx((0, 0, 0, 1), abs=TOL)


def test_copy_of_x1_is_one_bit_unique_to_x1() -> None:
    assert terms(gate(lambda a, b: a)) == pytest.approx((0, 1, 0, 0), abs=TOL)
    assert terms(gate(lambda a, b: b)) == pytest.approx((0, 0, 1, 0), abs=TOL)


def test_x1_equals_x2_equals_y_is_one_bit_of_redundancy() -> None:
    p = np.zeros((2, 2, 2))
    p[0, 0, 0] = p[1, 1, 1] = 0.5
    assert terms(p) == pytest.approx((1, 0, 0, 0), abs=TOL)


@pytest.mark.parametrize("seed", range(6))
def test_on_random_joints_the_terms_add_up_to_the_informations(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(2, 6, size=3))
    p = rng.random(shape) ** 3  # skewed, some cells near 0
    if seed % 2:
        p[rng.random(shape) < 0.3] = 0.0  # and some exactly 0
    p /= p.sum()
    d = pid_from_joint(p)
    i1 = mutual_information(p, (0,), (2,))
    i2 = mutual_information(p, (1,), (2,))
    i12 = mutual_information(p, (0, 1), (2,))
    r, u1, u2, s = d["redundancy"], d["unique_1"], d["unique_2"], d["synergy"]
    assert r + u1 + u2 + s == pytest.approx(i12, abs=SOLVER_TOL)
    assert r + u1 == pytest.approx(i1, abs=SOLVER_TOL)
    assert r + u2 == pytest.approx(i2, abs=SOLVER_TOL)
    assert min(r, u1, u2, s) >= -SOLVER_TOL


def test_swapping_the_modalities_swaps_the_uniquenesses() -> None:
    rng = np.random.default_rng(3)
    p = rng.random((3, 4, 2))
    p /= p.sum()
    a, b = pid_from_joint(p), pid_from_joint(p.transpose(1, 0, 2))
    assert a["unique_1"] == pytest.approx(b["unique_2"], abs=SOLVER_TOL)
    assert a["redundancy"] == pytest.approx(b["redundancy"], abs=SOLVER_TOL)
    assert a["synergy"] == pytest.approx(b["synergy"], abs=SOLVER_TOL)


@pytest.mark.parametrize(
    ("p", "words"),
    [
        (np.ones((2, 2)) / 4, "shape"),
        (np.zeros((2, 0, 2)), "shape"),
        (np.full((2, 2, 2), 0.2), "sums to"),
        (np.array([[[0.5, -0.25], [0.5, 0.25]]]), "negative"),
        (np.full((1, 1, 2), np.nan), "non-finite"),
        ("not numbers", "numbers"),
    ],
)
def test_a_joint_that_is_not_a_distribution_is_refused_by_name(p: object, words: str) -> None:
    with pytest.raises(PIDInputError) as exc:
        pid_from_joint(p)
    assert exc.value.code == "pid_joint_invalid" and words in str(exc.value)


def test_joint_from_codes_counts_and_checks_ranges() -> None:
    p = joint_from_codes([0, 0, 1, 1], [0, 1, 0, 1], [0, 0, 0, 1], sizes=(2, 2, 2))
    assert np.allclose(p, gate(lambda a, b: a & b))
    with pytest.raises(PIDInputError):
        joint_from_codes([0, 2], [0, 0], [0, 0], sizes=(2, 1, 1))


# --- counterfactual metrics ---------------------------------------------------------------


def row(i: int, status: str, **kw: object) -> EditRow:
    base: dict[str, object] = {
        "edit_id": i,
        "modality": "text",
        "annotator": "a",
        "status": status,
        "original_label": "no",
        "target_label": "yes",
        "gold_label": "no",
    }
    base.update(kw)
    return EditRow(**base)  # type: ignore[arg-type]


ROWS = [
    # verified; model right on both sides, so it flips and follows.
    row(1, "verified", pred_original="no", pred_edit="yes"),
    # disputed; the model does not flip.
    row(2, "disputed", pred_original="no", pred_edit="no"),
    # the author's label of the original was wrong: the target is the gold label (no claimed
    # flip); verified; the model gets the edit wrong.
    row(
        3,
        "verified",
        annotator="b",
        original_label="yes",
        target_label="no",
        pred_original="yes",
        pred_edit="yes",
    ),
    row(4, "pending", annotator="b", modality="image", pred_original="no", pred_edit="yes"),
    row(5, "pending", annotator="b", modality="image"),  # not scored by the model
]


def test_metric_definitions_on_hand_built_rows() -> None:
    got = {k: (int(n.sum()), int(d.sum())) for k, (n, d) in metric_indicators(ROWS).items()}
    assert got == {
        "claimed_flip_rate": (4, 5),
        "verified_flip_rate": (2, 3),
        "model_flip_rate": (2, 4),
        "model_follows_human": (1, 2),
        "contrast_consistency": (1, 2),
        "verified_model_error_rate": (1, 3),
    }


def test_grouped_figures_and_reproducible_intervals() -> None:
    a = counterfactual_metrics(ROWS, resamples=500, seed=11)
    assert a == counterfactual_metrics(list(reversed(ROWS)), resamples=500, seed=11)
    assert a != counterfactual_metrics(ROWS, resamples=500, seed=12)
    assert set(a["by_modality"]) == {"image", "text"} and set(a["by_annotator"]) == {"a", "b"}
    b = a["by_annotator"]["b"]
    assert (b["edits"], b["claimed_flip_rate"]["value"]) == (3, pytest.approx(2 / 3))
    assert b["model_follows_human"]["value"] == 0.0
    assert b["verified_model_error_rate"]["denominator"] == 1
    image = a["by_modality"]["image"]
    assert image["verified_flip_rate"] == {
        "value": None,
        "numerator": 0,
        "denominator": 0,
        "ci95": None,
    }
    for group in [a["overall"], *a["by_modality"].values(), *a["by_annotator"].values()]:
        for name, entry in group.items():
            if name == "edits" or entry["value"] is None:
                continue
            lo, hi = entry["ci95"]
            assert 0 <= lo <= entry["value"] <= hi <= 1, (name, entry)


def test_bootstrap_ratio_contains_the_estimate_and_follows_the_seed() -> None:
    rng = np.random.default_rng(0)
    num = (rng.random(200) < 0.3).astype(float)
    den = np.ones(200)
    idx1 = np.random.default_rng(5).integers(0, 200, size=(2000, 200))
    idx2 = np.random.default_rng(5).integers(0, 200, size=(2000, 200))
    ci = bootstrap_ratio(num, den, idx1)
    assert ci == bootstrap_ratio(num, den, idx2)
    assert ci is not None and ci[0] < num.mean() < ci[1]
    # A 95% interval of a proportion over 200 draws is about ±2·sqrt(pq/n) wide.
    assert ci[1] - ci[0] == pytest.approx(4 * np.sqrt(0.3 * 0.7 / 200), rel=0.2)
    assert bootstrap_ratio(num, np.zeros(200), idx1) is None


# --- interaction clusters -----------------------------------------------------------------


def blobs(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.array([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0]])
    sizes = [30, 20, 10]
    return np.concatenate(
        [c + 0.3 * rng.standard_normal((n, 3)) for c, n in zip(centres, sizes, strict=True)]
    )


def test_clusters_pick_k_by_silhouette_and_number_by_size() -> None:
    x = blobs()
    got = interaction_clusters(x, k_range=range(2, 7), seed=0)
    assert got["chosen_k"] == 3
    assert set(got["silhouette"]) == {"2", "3", "4", "5", "6"}
    assert max(got["silhouette"].values()) == got["silhouette"]["3"]
    assert got["sizes"] == [30, 20, 10]
    assert got["members"][0] == list(range(30)) and got["members"][2] == list(range(50, 60))
    assert got == interaction_clusters(x, k_range=range(2, 7), seed=0)


def test_clusters_refuse_what_silhouette_cannot_score() -> None:
    with pytest.raises(ClusterInputError):
        interaction_clusters(np.zeros((5, 2)), k_range=range(2, 4), seed=0)  # 1 distinct point
    with pytest.raises(ClusterInputError):
        interaction_clusters(np.ones(4), k_range=range(2, 3), seed=0)
    with pytest.raises(ClusterInputError):
        interaction_clusters(blobs()[:3], k_range=range(3, 5), seed=0)  # k must be < n


def test_kmeans_codes_cap_k_at_the_distinct_points() -> None:
    assert kmeans_codes(np.zeros((6, 4)), k=5, seed=0).tolist() == [0] * 6
    codes = kmeans_codes(blobs(), k=3, seed=1)
    assert len(set(codes.tolist())) == 3
    assert codes.tolist() == kmeans_codes(blobs(), k=3, seed=1).tolist()
