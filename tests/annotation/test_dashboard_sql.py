"""The dashboard's SQL aggregates (annotation/selectors_dashboard.py) against the pure-Python
definitions (annotation.agreement, numpy) on campaigns built through the real services.
Run on SQLite and on PostgreSQL (DATABASE_URL=postgres://...): the median is
percentile_cont there and a window-function rank here; both must give these same numbers."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from annotation import agreement
from annotation.models import Annotation, CampaignExample, CounterfactualEdit
from annotation.selectors_dashboard import (
    EDGES,
    SIZE_FIGURES,
    THROUGHPUT_MIN_BUCKETS,
    campaign_dashboard,
    throughput_buckets,
    throughput_unit,
)
from tests.annotation.dashboard_helpers import worked_campaign

pytestmark = pytest.mark.django_db


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None or (isinstance(b, float) and math.isnan(b)):
        return a is None and (b is None or math.isnan(b))
    return abs(a - b) < 1e-6  # the API rounds to 6 places


def _prediction(entry: Any, side: str) -> str | None:
    if not isinstance(entry, dict) or "error" in entry:
        return None
    summary = entry.get(side)
    label = summary.get("predicted_label") if isinstance(summary, dict) else None
    return None if label is None else str(label)


def _size(figures: Any) -> float | None:
    for key in SIZE_FIGURES:
        v = figures.get(key) if isinstance(figures, dict) else None
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
    return None


def reference(campaign: Any) -> dict[str, Any]:
    """The dashboard's figures the slow way: every row in Python, the pure functions."""
    rows = list(
        Annotation.objects.filter(campaign=campaign).values_list(
            "annotator__username", "example_id", "label", "time_spent_ms", "is_gold"
        )
    )
    gold = {
        e: str(lab)
        for e, lab in CampaignExample.objects.filter(campaign=campaign, is_gold=True)
        .exclude(example__label=None)
        .values_list("example_id", "example__label")
    }
    real = agreement.pivot((who, e, lab) for who, e, lab, _, g in rows if not g)
    gold_given = agreement.pivot((who, e, lab) for who, e, lab, _, g in rows if g)
    times: dict[str, list[int]] = defaultdict(list)
    for who, _, _, ms, _ in rows:
        times[who].append(ms)
    _, matrix = agreement.reliability_matrix(real)
    out: dict[str, Any] = {
        "alpha": agreement.krippendorff_alpha(matrix) if matrix else float("nan"),
        "labels": dict(Counter(lab for _, _, lab, _, _ in rows)),
        "done": {who: len(ts) for who, ts in times.items()},
        "median": {who: float(np.median(ts)) / 1000.0 for who, ts in times.items()},
        "gold_accuracy": agreement.gold_accuracy(gold_given, gold),
        "gold_answered": {who: len(given) for who, given in gold_given.items()},
        "agreement": agreement.majority_agreement(real),
    }
    models = list(campaign.model_versions.order_by("id"))
    stats = {mv.pk: Counter[str]() for mv in models}
    per_author: dict[str, Counter[str]] = defaultdict(Counter)
    sizes: dict[str, list[float]] = defaultdict(list)
    pending = 0
    for edit in CounterfactualEdit.objects.filter(campaign=campaign).select_related("author"):
        mine = per_author[edit.author.username]
        mine["submitted"] += 1
        mine[edit.status] += 1
        if (size := _size(edit.minimality)) is not None:
            sizes[edit.modality].append(size)
        pending += any(str(mv.pk) not in edit.scores for mv in models if mv.is_active)
        fooled_any = False
        for mv in models:
            entry = edit.scores.get(str(mv.pk))
            before, after = _prediction(entry, "original"), _prediction(entry, "edit")
            if before is None or after is None:
                continue
            stats[mv.pk]["scored"] += 1
            stats[mv.pk]["flips"] += before != after
            if edit.status == "verified":
                stats[mv.pk]["verified_scored"] += 1
                stats[mv.pk]["fooled"] += after != edit.target_label
                fooled_any |= after != edit.target_label
        mine["fooling"] += edit.status == "verified" and fooled_any
    out["models"] = stats
    out["edits"] = per_author
    out["pending"] = pending
    out["hist"] = {
        m: np.histogram(np.clip(v, 0.0, 1.0), bins=EDGES)[0].tolist() for m, v in sizes.items()
    }
    return out


@pytest.mark.parametrize("seed", [0, 5])
def test_sql_figures_equal_the_pure_definitions(seed: int) -> None:
    campaign, _ = worked_campaign(f"ref{seed}", examples=10, annotators=5, tasks_each=5, seed=seed)
    want = reference(campaign)
    got = campaign_dashboard(campaign=campaign)

    assert want["alpha"] == pytest.approx(
        got["agreement"]["krippendorff_alpha_nominal"], abs=1e-6
    ) or (math.isnan(want["alpha"]) and got["agreement"]["krippendorff_alpha_nominal"] is None)
    assert {r["label"]: r["annotations"] for r in got["labels"]} == want["labels"]
    # Units with ties among the others and gold items both occur in these campaigns.
    assert any(r["gold_answered"] for r in got["annotators"])
    assert any(math.isnan(v) for v in want["agreement"].values()) or any(
        0 < v < 1 for v in want["agreement"].values()
    )
    for row in got["annotators"]:
        who = row["annotator"]
        assert row["done"] == want["done"].get(who, 0)
        assert _close(row["median_seconds"], want["median"].get(who))
        assert row["gold_answered"] == want["gold_answered"].get(who, 0)
        assert _close(row["gold_accuracy"], want["gold_accuracy"].get(who))
        assert _close(row["agreement"], want["agreement"].get(who))
        e = want["edits"].get(who, Counter())
        assert (
            row["edits_submitted"],
            row["edits_verified"],
            row["edits_disputed"],
            row["model_fooling_edits"],
        ) == (e["submitted"], e["verified"], e["disputed"], e["fooling"])
    for m in got["models"]:
        s = want["models"][m["model_id"]]
        assert (m["scored_edits"], m["flips"], m["verified_scored"], m["fooled"]) == (
            s["scored"],
            s["flips"],
            s["verified_scored"],
            s["fooled"],
        )
    assert got["progress"]["scores_pending"] == want["pending"]
    hist: dict[str, list[int]] = defaultdict(list)
    for h in got["minimality"]:
        hist[h["modality"]].append(h["edits"])
    assert dict(hist) == want["hist"]
    assert sum(t["annotations"] for t in got["throughput"]) == sum(want["done"].values())


def test_profiles_give_the_alpha_of_the_units() -> None:
    """krippendorff_alpha_from_counts weighted by units per count vector = over the units."""
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 4, size=(300, 4))
    profiles = Counter(map(tuple, counts.tolist()))
    vectors = list(profiles)
    for level in ("nominal", "ordinal", "interval"):
        assert agreement.krippendorff_alpha_from_counts(
            vectors, level=level, units=[profiles[v] for v in vectors]
        ) == pytest.approx(agreement.krippendorff_alpha_from_counts(counts, level=level), abs=1e-12)


def test_throughput_unit_follows_the_span_of_the_work() -> None:
    t0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    assert throughput_unit(t0, t0 + timedelta(minutes=7))[0] == "minute"
    assert throughput_unit(t0, t0 + timedelta(hours=3))[0] == "minute"
    assert throughput_unit(t0, t0 + timedelta(hours=5))[0] == "hour"
    assert throughput_unit(t0, t0 + timedelta(days=12))[0] == "day"
    # Work in the last few minutes: a dozen minute buckets ending at the last, gaps at zero.
    step = timedelta(minutes=1)
    rows = throughput_buckets({t0: 2, t0 + 3 * step: 5}, step)
    assert len(rows) == THROUGHPUT_MIN_BUCKETS
    assert rows[-1] == {
        "start": (t0 + 3 * step).isoformat(),
        "end": (t0 + 4 * step).isoformat(),
        "annotations": 5,
    }
    assert [r["annotations"] for r in rows[-4:]] == [2, 0, 0, 5]
    assert throughput_buckets({}, step) == []
