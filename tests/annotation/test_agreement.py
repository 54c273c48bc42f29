"""Agreement figures (annotation/agreement.py) against the reference implementations: the
``krippendorff`` package, statsmodels' ``fleiss_kappa`` and scikit-learn's
``cohen_kappa_score``, on their documented examples and on random data with missing values."""

from __future__ import annotations

import math
import random

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

from annotation import agreement as ag

TOL = 1e-9
NAN = float("nan")

# The krippendorff package's docstring example (Krippendorff 2011, p. 3).
K_DOC = [
    [NAN, NAN, NAN, NAN, NAN, 3, 4, 1, 2, 1, 1, 3, 3, NAN, 3],
    [1, NAN, 2, 1, 3, 3, 4, 3, NAN, NAN, NAN, NAN, NAN, NAN, NAN],
    [NAN, NAN, 2, 1, 3, 4, 4, NAN, 2, 1, 1, 3, 3, NAN, 4],
]
# Its second example (Hayes & Krippendorff 2007, p. 8).
K_DOC2 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]


def as_none(rows):
    return [[None if isinstance(v, float) and math.isnan(v) else v for v in row] for row in rows]


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
@pytest.mark.parametrize("data", [K_DOC, K_DOC2])
def test_alpha_documented_examples(data, level):
    ref = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    assert abs(ag.krippendorff_alpha(as_none(data), level=level) - ref) < TOL
    # The numeric-array fast path answers the same.
    assert abs(ag.krippendorff_alpha(np.array(data, dtype=float), level=level) - ref) < TOL


def test_alpha_documented_values():
    assert round(ag.krippendorff_alpha(as_none(K_DOC), level="nominal"), 6) == 0.691358
    assert round(ag.krippendorff_alpha(as_none(K_DOC), level="interval"), 6) == 0.810845
    assert round(ag.krippendorff_alpha(as_none(K_DOC2), level="ordinal"), 3) == 0.815


def test_alpha_string_labels_nominal():
    words = {1: "very low", 2: "low", 3: "mid", 4: "high", 5: "very high"}
    rows = [[None if math.isnan(v) else words[int(v)] for v in row] for row in K_DOC2]
    ref = krippendorff.alpha(
        reliability_data=[[NAN if v is None else v for v in r] for r in rows],
        level_of_measurement="nominal",
    )
    assert round(ref, 3) == 0.743
    assert abs(ag.krippendorff_alpha(rows, level="nominal") - ref) < TOL


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_alpha_random_with_missing(seed, level):
    rng = np.random.default_rng(seed)
    raters, units, cats = int(rng.integers(2, 7)), int(rng.integers(5, 80)), int(rng.integers(2, 7))
    data = rng.integers(0, cats, size=(raters, units)).astype(float)
    # Mostly-agreeing data, so alpha is not near zero by construction.
    truth = rng.integers(0, cats, size=units)
    keep = rng.random((raters, units)) < 0.6
    data[keep] = np.broadcast_to(truth, data.shape)[keep]
    data[rng.random((raters, units)) < 0.3] = NAN
    if len(np.unique(data[~np.isnan(data)])) < 2:
        pytest.skip("draw has a single value")
    ref = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    rows = [[None if math.isnan(v) else int(v) for v in row] for row in data]
    assert abs(ag.krippendorff_alpha(rows, level=level) - ref) < TOL
    assert abs(ag.krippendorff_alpha(data, level=level) - ref) < TOL


def test_alpha_edge_cases_are_nan():
    assert math.isnan(ag.krippendorff_alpha([[1, 1, 1], [1, 1, None]]))  # a single category
    assert math.isnan(ag.krippendorff_alpha([[1, None], [None, 2]]))  # nothing pairable
    assert math.isnan(ag.krippendorff_alpha([]))
    assert math.isnan(ag.krippendorff_alpha([[None, None], [None, None]]))
    # A second value only in an unpairable unit: the pairable part has one category.
    assert math.isnan(ag.krippendorff_alpha([["a", "a", "b"], ["a", "a", None]]))
    with pytest.raises(ValueError):
        ag.krippendorff_alpha([[1, 2]], level="ratio")
    with pytest.raises(ValueError):
        ag.krippendorff_alpha([[1, 2], [1]])


# statsmodels' documented Fleiss example (Wikipedia's table: 10 units, 14 raters).
FLEISS_DOC = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_documented_example():
    ref = sm_fleiss(np.array(FLEISS_DOC))
    assert round(ref, 3) == 0.210
    assert abs(ag.fleiss_kappa(FLEISS_DOC) - ref) < TOL


@pytest.mark.parametrize("seed", range(12))
def test_fleiss_random(seed):
    rng = np.random.default_rng(seed)
    units, cats, raters = int(rng.integers(3, 60)), int(rng.integers(2, 6)), int(rng.integers(2, 9))
    table = np.zeros((units, cats), dtype=int)
    for i in range(units):
        p = rng.dirichlet(np.ones(cats) * 0.5)
        table[i] = rng.multinomial(raters, p)
    ref = sm_fleiss(table)
    assert abs(ag.fleiss_kappa(table.tolist()) - ref) < TOL


def test_fleiss_edge_cases():
    assert math.isnan(ag.fleiss_kappa([]))
    assert math.isnan(ag.fleiss_kappa([[3], [3]]))  # a single category
    assert math.isnan(ag.fleiss_kappa([[3, 0], [3, 0]]))  # one category used
    assert math.isnan(ag.fleiss_kappa([[1, 0], [0, 1]]))  # one rater per unit
    with pytest.raises(ValueError):
        ag.fleiss_kappa([[2, 1], [1, 1]])


def test_cohen_documented_example():
    # scikit-learn's user guide example for cohen_kappa_score.
    y1 = ["negative", "positive", "negative", "neutral", "positive"]
    y2 = ["negative", "positive", "negative", "neutral", "negative"]
    ref = cohen_kappa_score(y1, y2)
    assert abs(ag.cohen_kappa(y1, y2) - ref) < TOL


@pytest.mark.parametrize("seed", range(12))
def test_cohen_random_with_missing(seed):
    rnd = random.Random(seed)
    cats = ["cat", "dog", "bird", "fish"][: rnd.randint(2, 4)]
    n = rnd.randint(5, 100)
    a = [rnd.choice(cats) for _ in range(n)]
    b = [x if rnd.random() < 0.6 else rnd.choice(cats) for x in a]
    a = [None if rnd.random() < 0.15 else x for x in a]
    b = [None if rnd.random() < 0.15 else x for x in b]
    kept = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    if len({v for p in kept for v in p}) < 2:
        pytest.skip("draw has a single label")
    ref = cohen_kappa_score([x for x, _ in kept], [y for _, y in kept])
    assert abs(ag.cohen_kappa(a, b) - ref) < TOL


def test_cohen_edge_cases():
    assert math.isnan(ag.cohen_kappa([], []))
    assert math.isnan(ag.cohen_kappa(["a", "a"], ["a", "a"]))
    assert math.isnan(ag.cohen_kappa([None, "a"], ["b", None]))
    with pytest.raises(ValueError):
        ag.cohen_kappa(["a"], ["a", "b"])


def test_gold_accuracy():
    labels = {"ann": {1: "x", 2: "y", 3: "z"}, "bob": {1: "y"}, "cy": {4: "x"}}
    acc = ag.gold_accuracy(labels, {1: "x", 2: "x"})
    assert acc["ann"] == 0.5
    assert acc["bob"] == 0.0
    assert math.isnan(acc["cy"])


def test_majority_agreement():
    labels = {
        "a": {1: "x", 2: "x", 3: "y", 4: "x"},
        "b": {1: "x", 2: "y", 3: "y"},
        "c": {1: "x", 2: "y", 3: "z"},
        "d": {5: "x"},
    }
    got = ag.majority_agreement(labels)
    # a: unit1 others x,x -> agree; unit2 others y,y -> disagree; unit3 others y,z tie -> out.
    assert got["a"] == 0.5
    # b: unit1 agree; unit2 others x,y tie -> out; unit3 others y,z tie -> out.
    assert got["b"] == 1.0
    # c: unit1 agree; unit2 others x,y tie -> out; unit3 others y,y -> disagree.
    assert got["c"] == 0.5
    assert math.isnan(got["d"])  # nobody else labelled unit 5


def test_pivot_and_matrix_feed_alpha():
    triples = [("a", 1, "x"), ("b", 1, "x"), ("a", 2, "y"), ("b", 2, "x"), ("c", 2, "y")]
    units, rows = ag.reliability_matrix(ag.pivot(triples))
    assert units == [1, 2]
    ref = krippendorff.alpha(
        reliability_data=[[0, 1], [0, 0], [NAN, 1]], level_of_measurement="nominal"
    )
    assert abs(ag.krippendorff_alpha(rows) - ref) < TOL


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_alpha_non_integer_values(level):
    rng = np.random.default_rng(7)
    data = rng.choice([0.5, 1.25, 2.0, 3.75], size=(4, 40))
    data[rng.random(data.shape) < 0.25] = NAN
    ref = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    assert abs(ag.krippendorff_alpha(data, level=level) - ref) < TOL
    assert abs(ag.krippendorff_alpha(as_none(data.tolist()), level=level) - ref) < TOL


def _majority_by_hand(labels):
    """The rule written out unit by unit, to check the vectorised one against."""
    from collections import Counter

    out = {}
    for rater, given in labels.items():
        agree = total = 0
        for unit, label in given.items():
            others = Counter(g[unit] for r, g in labels.items() if r != rater and unit in g)
            if not others:
                continue
            top = others.most_common()
            if len(top) > 1 and top[0][1] == top[1][1]:
                continue
            total += 1
            agree += top[0][0] == label
        out[rater] = agree / total if total else NAN
    return out


@pytest.mark.parametrize("seed", range(15))
def test_majority_agreement_matches_the_rule_by_hand(seed):
    rnd = random.Random(seed)
    cats = ["a", "b", "c", "d"][: rnd.randint(2, 4)]
    labels = {
        f"r{i}": {u: rnd.choice(cats) for u in range(30) if rnd.random() < 0.5}
        for i in range(rnd.randint(2, 7))
    }
    got, want = ag.majority_agreement(labels), _majority_by_hand(labels)
    assert got.keys() == want.keys()
    for rater in want:
        assert (math.isnan(got[rater]) and math.isnan(want[rater])) or got[rater] == want[rater]


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_alpha_from_counts_matches_the_package(level):
    # The package's own value_counts example (its docstring), and random counts.
    counts = np.array(
        [[1, 0, 0, 0], [0, 0, 0, 0], [0, 2, 0, 0], [2, 0, 0, 0], [0, 0, 2, 0], [0, 0, 2, 1],
         [0, 0, 0, 3], [1, 0, 1, 0], [0, 2, 0, 0], [2, 0, 0, 0], [2, 0, 0, 0], [0, 0, 2, 0],
         [0, 0, 2, 0], [0, 0, 0, 0], [0, 0, 1, 1]]
    )  # fmt: skip
    ref = krippendorff.alpha(value_counts=counts, level_of_measurement=level)
    assert abs(ag.krippendorff_alpha_from_counts(counts, level=level) - ref) < TOL
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 3, size=(200, 5))
    domain = [0.5, 1.0, 2.5, 4.0, 8.0]
    ref = krippendorff.alpha(value_counts=counts, value_domain=domain, level_of_measurement=level)
    got = ag.krippendorff_alpha_from_counts(counts, level=level, domain=domain)
    assert abs(got - ref) < TOL
