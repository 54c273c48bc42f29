"""Inter-annotator agreement and annotator quality: pure functions, numpy only, no database.

The dashboard and the exports call these with plain Python data. Every function answers
``nan`` (never raises) when the figure is undefined: fewer than two categories in use, no
unit with two values to pair, no gold item answered. A value that is ``None`` (or a float
NaN) means "this rater gave no value" and is left out.

The formulas follow Krippendorff (2011, "Computing Krippendorff's alpha-reliability"),
Fleiss (1971) and Cohen (1960); the test suite checks them against the ``krippendorff``
package, ``statsmodels`` and ``scikit-learn`` to 1e-9.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

Level = Literal["nominal", "ordinal", "interval"]
LEVELS: tuple[str, ...] = ("nominal", "ordinal", "interval")
NAN = float("nan")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _codes(reliability_data: Any, level: str) -> tuple[np.ndarray, np.ndarray]:
    """(codes of shape raters x units with -1 for missing, sorted value domain)."""
    if isinstance(reliability_data, np.ndarray) and reliability_data.dtype.kind in "iuf":
        # Fast path for numeric arrays (NaN = missing): no per-cell Python work.
        data = reliability_data.astype(np.float64, copy=False)
        if data.ndim != 2:
            raise ValueError("reliability_data must be two-dimensional (raters x units)")
        present = ~np.isnan(data)
        values = data[present]
        codes = np.full(data.shape, -1, dtype=np.int64)
        if values.size == 0:
            return codes, np.zeros(0)
        low, high = values.min(), values.max()
        if high - low < 1_000_000 and np.all(values == np.floor(values)):
            # Small integer codes (the usual labels): a lookup table instead of a sort.
            offsets = (values - low).astype(np.int64)
            used = np.bincount(offsets) > 0
            lookup = np.cumsum(used) - 1
            codes[present] = lookup[offsets]
            return codes, np.flatnonzero(used).astype(np.float64) + low
        domain, inverse = np.unique(values, return_inverse=True)
        codes[present] = inverse
        return codes, domain
    rows = [list(row) for row in reliability_data]
    n_units = len(rows[0]) if rows else 0
    if any(len(row) != n_units for row in rows):
        raise ValueError("every rater's row must cover the same units")
    seen: set[Any] = {v for row in rows for v in row if not _missing(v)}
    if level == "interval":
        seen = {float(v) for v in seen}
    try:
        ordered = sorted(seen)
    except TypeError:
        if level != "nominal":
            raise ValueError(f"{level} alpha needs values that can be ordered") from None
        ordered = sorted(seen, key=repr)  # nominal needs identity only, not an order
    index = {v: i for i, v in enumerate(ordered)}
    codes = np.full((len(rows), n_units), -1, dtype=np.int64)
    for r, row in enumerate(rows):
        for u, v in enumerate(row):
            if not _missing(v):
                codes[r, u] = index[float(v) if level == "interval" else v]
    domain = np.asarray(ordered, dtype=np.float64 if level == "interval" else object)
    return codes, domain


def krippendorff_alpha(
    reliability_data: Sequence[Sequence[Any]] | np.ndarray, *, level: str = "nominal"
) -> float:
    """Krippendorff's alpha over ``reliability_data[rater][unit]`` (``None`` = no value).

    ``level`` is ``"nominal"`` (labels compared for identity), ``"ordinal"`` (rank distance
    weighted by how often each value was used) or ``"interval"`` (squared difference; values
    must be numbers). Units with fewer than two values do not count. Answers ``nan`` when
    no unit has two values or only one value is ever used (agreement is undefined there).
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}")
    codes, domain = _codes(reliability_data, level)
    n_values = len(domain)
    if n_values < 2 or codes.size == 0:
        return NAN
    n_units = codes.shape[1]
    present = codes >= 0
    # value_counts[u, c]: how many raters put unit u in category c.
    flat = (np.nonzero(present)[1] * n_values + codes[present]).astype(np.int64)
    counts = np.bincount(flat, minlength=n_units * n_values).reshape(n_units, n_values)
    return krippendorff_alpha_from_counts(counts, level=level, domain=domain)


def krippendorff_alpha_from_counts(
    value_counts: Any,
    *,
    level: str = "nominal",
    domain: Sequence[float] | np.ndarray | None = None,
    units: Sequence[float] | np.ndarray | None = None,
) -> float:
    """Krippendorff's alpha from ``value_counts[unit][category]`` (raters per category), the
    form a GROUP BY gives without a raters x units matrix. ``domain`` holds the categories'
    numeric values for ``"interval"`` (default 0, 1, 2, ...); ``"ordinal"`` takes the columns
    in their order. ``units[i]``, when given, says how many units share row ``i``'s counts
    (alpha is a sum over units, so a campaign's units collapse into a few hundred distinct
    count vectors). Same answers (and ``nan`` cases) as ``krippendorff_alpha``."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}")
    counts = np.asarray(value_counts, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[1] < 2 or counts.shape[0] == 0:
        return NAN
    many = np.ones(counts.shape[0]) if units is None else np.asarray(units, dtype=np.float64)
    if many.shape != (counts.shape[0],):
        raise ValueError("units must hold one multiplicity per row of value_counts")
    n_values = counts.shape[1]
    m_u = counts.sum(axis=1)
    pairable = (m_u >= 2) & (many > 0)
    if not pairable.any():
        return NAN
    counts = counts[pairable]
    weights = many[pairable] / (m_u[pairable] - 1.0)
    # Coincidence matrix o = sum_u (c_u c_u^T - diag(c_u)) / (m_u - 1), as one matrix product.
    o = (counts * weights[:, None]).T @ counts
    o[np.diag_indices(n_values)] -= weights @ counts
    n_v = o.sum(axis=0)
    n = n_v.sum()
    e = (np.outer(n_v, n_v) - np.diag(n_v)) / (n - 1.0)
    if level == "nominal":
        d = 1.0 - np.eye(n_values)
    elif level == "interval":
        values = (
            np.arange(n_values, dtype=np.float64)
            if domain is None
            else np.asarray(domain, dtype=np.float64)
        )
        d = (values[:, None] - values[None, :]) ** 2
    else:
        cum = np.concatenate(([0.0], np.cumsum(n_v)))
        lo = np.minimum.outer(np.arange(n_values), np.arange(n_values))
        hi = np.maximum.outer(np.arange(n_values), np.arange(n_values))
        d = (cum[hi + 1] - cum[lo] - (n_v[lo] + n_v[hi]) / 2.0) ** 2
    expected = float((e * d).sum())
    if expected == 0.0:
        return NAN
    return float(1.0 - (o * d).sum() / expected)


def fleiss_kappa(table: Sequence[Sequence[float]]) -> float:
    """Fleiss' kappa; ``table[i][k]`` = raters who put unit ``i`` in category ``k``.

    Every unit must have the same number of raters (a ``ValueError`` otherwise: the
    statistic is not defined for unequal counts; use ``krippendorff_alpha`` there).
    Answers ``nan`` for no units, fewer than two raters, or a single category in use.
    """
    t = np.asarray(table, dtype=np.float64)
    if t.size == 0:
        return NAN
    if t.ndim != 2:
        raise ValueError("table must be two-dimensional (units x categories)")
    per_unit = t.sum(axis=1)
    n_raters = per_unit[0]
    if not np.all(per_unit == n_raters):
        raise ValueError("every unit must have the same number of raters")
    if n_raters < 2:
        return NAN
    p_cat = t.sum(axis=0) / t.sum()
    p_unit = ((t * t).sum(axis=1) - n_raters) / (n_raters * (n_raters - 1.0))
    p_exp = float((p_cat * p_cat).sum())
    if p_exp >= 1.0:
        return NAN
    return float((p_unit.mean() - p_exp) / (1.0 - p_exp))


def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Cohen's (unweighted) kappa of two raters over the same units, in the same order.

    Positions where either rater gave ``None`` are left out. Answers ``nan`` when nothing
    is left or both raters only ever used one and the same label.
    """
    if len(a) != len(b):
        raise ValueError("a and b must have the same length")
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if not _missing(x) and not _missing(y)]
    if not pairs:
        return NAN
    labels = {x for x, _ in pairs} | {y for _, y in pairs}
    index = {v: i for i, v in enumerate(labels)}
    k = len(index)
    ia = np.fromiter((index[x] for x, _ in pairs), dtype=np.int64, count=len(pairs))
    ib = np.fromiter((index[y] for _, y in pairs), dtype=np.int64, count=len(pairs))
    confusion = np.bincount(ia * k + ib, minlength=k * k).reshape(k, k).astype(np.float64)
    n = confusion.sum()
    observed = np.trace(confusion) / n
    expected = float((confusion.sum(axis=1) @ confusion.sum(axis=0)) / (n * n))
    if expected >= 1.0:
        return NAN
    return float((observed - expected) / (1.0 - expected))


def gold_accuracy(
    labels: Mapping[Hashable, Mapping[Hashable, Any]], gold: Mapping[Hashable, Any]
) -> dict[Hashable, float]:
    """Per rater, the share of the gold units they labelled that match the gold answer.

    ``labels[rater][unit]`` is that rater's label; ``gold[unit]`` the answer. A rater who
    labelled no gold unit gets ``nan``.
    """
    result: dict[Hashable, float] = {}
    for rater, given in labels.items():
        judged = [unit for unit in given if unit in gold and not _missing(given[unit])]
        right = sum(1 for unit in judged if given[unit] == gold[unit])
        result[rater] = right / len(judged) if judged else NAN
    return result


def majority_agreement(labels: Mapping[Hashable, Mapping[Hashable, Any]]) -> dict[Hashable, float]:
    """Per rater, how often their label equals the majority label of the *other* raters.

    A unit counts for a rater when at least one other rater labelled it and the others'
    most frequent label is unique; units where the others tie are left out (neither
    agreement nor disagreement). A rater with no such unit gets ``nan``.
    """
    raters = list(labels)
    unit_index: dict[Hashable, int] = {}
    label_index: dict[Any, int] = {}
    r_codes: list[int] = []
    u_codes: list[int] = []
    l_codes: list[int] = []
    for i, rater in enumerate(raters):
        for unit, label in labels[rater].items():
            if _missing(label):
                continue
            r_codes.append(i)
            u_codes.append(unit_index.setdefault(unit, len(unit_index)))
            l_codes.append(label_index.setdefault(label, len(label_index)))
    agree, total = majority_agreement_codes(
        np.asarray(r_codes, dtype=np.int64),
        np.asarray(u_codes, dtype=np.int64),
        np.asarray(l_codes, dtype=np.int64),
        n_raters=len(raters),
    )
    return {
        rater: float(agree[i] / total[i]) if total[i] else NAN for i, rater in enumerate(raters)
    }


def majority_agreement_codes(
    rater: np.ndarray, unit: np.ndarray, label: np.ndarray, *, n_raters: int
) -> tuple[np.ndarray, np.ndarray]:
    """``majority_agreement`` on integer codes, one entry per (rater, unit): returns, per
    rater code, (units agreeing with the others' unique majority, units counted). Vectorised
    so a campaign's million annotations take a fraction of a second."""
    if rater.size == 0:
        return np.zeros(n_raters, dtype=np.int64), np.zeros(n_raters, dtype=np.int64)
    n_labels = int(label.max()) + 1
    groups, inverse, counts = np.unique(
        unit * n_labels + label, return_inverse=True, return_counts=True
    )
    g_unit = groups // n_labels
    # Groups of a unit, most frequent first.
    order = np.lexsort((-counts, g_unit))
    s_unit, s_count = g_unit[order], counts[order]
    first = np.r_[0, np.flatnonzero(s_unit[1:] != s_unit[:-1]) + 1]
    size = np.diff(np.r_[first, len(order)])
    unit_of = np.repeat(np.arange(len(first)), size)
    slot = np.empty(len(order), dtype=np.int64)
    slot[order] = unit_of

    def nth(n: int) -> np.ndarray:  # the n-th largest label count of each unit (0 if none)
        out = np.zeros(len(first), dtype=np.int64)
        has = size > n
        out[has] = s_count[first[has] + n]
        return out

    c1, c2, c3 = nth(0), nth(1), nth(2)
    g = inverse.reshape(-1)
    u = slot[g]
    agrees, counted = majority_decision(counts[g], c1[u], c2[u], c3[u])
    agree = np.bincount(rater, weights=agrees, minlength=n_raters).astype(np.int64)
    total = np.bincount(rater, weights=counted, minlength=n_raters).astype(np.int64)
    return agree, total


def majority_decision(
    n: np.ndarray, c1: np.ndarray, c2: np.ndarray, c3: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The rule behind ``majority_agreement``, elementwise: ``n`` is how many raters of the
    unit gave this rater's label (the rater included), ``c1 >= c2 >= c3`` the unit's three
    largest label counts (0 where it has fewer labels). Answers (agrees, counted): the
    others' votes for the rater's label beat every other label (agrees), or another label is
    the others' unique majority (counted, not agreeing); a tie among the others is neither."""
    own = n - 1  # the others' votes for this rater's label
    # The others' best other label, and the runner-up among the other labels.
    best = np.where(n >= c1, c2, c1)
    runner = np.where(n >= c2, c3, c2)
    agrees = own > best
    disagrees = (best > own) & (best > runner)
    return agrees, agrees | disagrees


def pivot(triples: Iterable[tuple[Hashable, Hashable, Any]]) -> dict[Hashable, dict[Hashable, Any]]:
    """``(rater, unit, label)`` rows -> ``{rater: {unit: label}}`` (the last row wins)."""
    out: dict[Hashable, dict[Hashable, Any]] = {}
    for rater, unit, label in triples:
        out.setdefault(rater, {})[unit] = label
    return out


def reliability_matrix(
    labels: Mapping[Hashable, Mapping[Hashable, Any]],
) -> tuple[list[Hashable], list[list[Any]]]:
    """``{rater: {unit: label}}`` -> (units, rows for ``krippendorff_alpha``, ``None`` = missing)."""
    units = sorted({u for given in labels.values() for u in given}, key=repr)
    return units, [[given.get(u) for u in units] for given in labels.values()]
