"""The campaign dashboard's figures, in one read: progress, throughput, the per-annotator
table, labels, minimality, claimed vs verified flips and per-model flip / "model fooled"
rates. Agreement figures come from annotation.agreement (one rule, one place).

A fixed number of queries whatever the campaign's size (pinned by
tests/annotation/test_dashboard_api.py); the rows are reduced in numpy. Every chart is a list
of flat records, so its CSV is the same list (``dashboard_csv``)."""

from __future__ import annotations

import csv
import io
import math
from array import array
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping
from datetime import timedelta
from typing import Any

import numpy as np
from django.contrib.auth import get_user_model
from django.db.models import Count, Q
from django.db.models.functions import TruncHour

from annotation import agreement
from annotation.models import (
    Annotation,
    Assignment,
    Campaign,
    CampaignExample,
    CounterfactualEdit,
    Membership,
)
from annotation.selectors import gold_answer

CHARTS = ("throughput", "annotators", "labels", "minimality", "flips", "models")
MINIMALITY_BINS = 20
THROUGHPUT_MIN_HOURS = 12
THROUGHPUT_MAX_HOURS = 24 * 90
# The size figure each edit kind is budgeted by (annotation.services.counterfactuals).
SIZE_FIGURES = ("minimality", "pixel_fraction", "fraction_changed")


def _num(x: float) -> float | None:
    """JSON has no NaN: an undefined figure is null."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 6)


def _size(figures: Any) -> float | None:
    if not isinstance(figures, dict):
        return None
    for key in SIZE_FIGURES:
        v = figures.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
    return None


def _prediction(entry: Any, side: str) -> str | None:
    if not isinstance(entry, dict) or "error" in entry:
        return None
    summary = entry.get(side)
    if not isinstance(summary, dict):
        return None
    label = summary.get("predicted_label")
    return None if label is None else str(label)


def _hourly(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Hour buckets with the empty hours filled in (a gap is a real zero on the chart) and at
    least THROUGHPUT_MIN_HOURS of them, ending at the last hour with work."""
    counts = {r["hour"]: r["n"] for r in rows if r["hour"] is not None}
    if not counts:
        return []
    first, end = min(counts), max(counts)
    hours = int((end - first).total_seconds() // 3600) + 1
    if hours > THROUGHPUT_MAX_HOURS:  # months of work: the non-empty hours only
        return [{"hour": h.isoformat(), "annotations": n} for h, n in sorted(counts.items())]
    hours = max(hours, THROUGHPUT_MIN_HOURS)
    start = end - timedelta(hours=hours - 1)
    return [
        {
            "hour": (start + timedelta(hours=i)).isoformat(),
            "annotations": counts.get(start + timedelta(hours=i), 0),
        }
        for i in range(hours)
    ]


def _annotation_figures(
    rows: Iterable[tuple[int, int, str, int, bool]], gold: Mapping[Hashable, Any]
) -> dict[str, Any]:
    """Per-annotator counts, median seconds, gold accuracy and agreement with the others'
    majority; Krippendorff's alpha (nominal) over the non-gold units; the label counts.
    Rows are streamed into compact arrays (8 bytes a value, not a Python tuple each) and
    reduced in numpy: a million annotations take a few seconds and tens of MB."""
    ann_a, ex_a, lab_a, ms_a, gold_a = array("q"), array("q"), array("q"), array("d"), array("b")
    label_index: dict[str, int] = {}
    gold_rows: list[tuple[int, int, str]] = []
    for annotator, example, label, spent, is_gold_row in rows:
        ann_a.append(annotator)
        ex_a.append(example)
        lab_a.append(label_index.setdefault(label, len(label_index)))
        ms_a.append(spent)
        gold_a.append(bool(is_gold_row))
        if is_gold_row:
            gold_rows.append((annotator, example, label))
    n = len(ann_a)
    if not n:
        return {"per": {}, "alpha": float("nan"), "labels": {}, "done": 0}
    ann = np.frombuffer(ann_a, dtype=np.int64)
    ex = np.frombuffer(ex_a, dtype=np.int64)
    lab = np.frombuffer(lab_a, dtype=np.int64)
    ms = np.frombuffer(ms_a, dtype=np.float64)
    is_gold = np.frombuffer(gold_a, dtype=np.int8).astype(bool)
    names = np.array(list(label_index), dtype=object)
    ids, rater = np.unique(ann, return_inverse=True)
    order = np.argsort(rater, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(rater, minlength=len(ids)))]
    real = ~is_gold
    units, unit = np.unique(ex[real], return_inverse=True)
    agree, total = agreement.majority_agreement_codes(
        rater[real], unit, lab[real], n_raters=len(ids)
    )
    gold_labels = agreement.pivot(gold_rows)
    gold_acc = agreement.gold_accuracy(gold_labels, gold)
    per: dict[int, dict[str, Any]] = {}
    for i, uid in enumerate(ids.tolist()):
        chunk = ms[order[bounds[i] : bounds[i + 1]]]
        per[uid] = {
            "done": len(chunk),
            "median_seconds": float(np.median(chunk)) / 1000.0,
            "gold_accuracy": gold_acc.get(uid, float("nan")),
            "gold_answered": len(gold_labels.get(uid, {})),
            "agreement": float(agree[i] / total[i]) if total[i] else float("nan"),
        }
    alpha = float("nan")
    if len(units):
        # Units x labels counts (no raters x units matrix: that would be 10^7 cells here).
        value_counts = np.bincount(
            unit * len(names) + lab[real], minlength=len(units) * len(names)
        ).reshape(len(units), len(names))
        alpha = agreement.krippendorff_alpha_from_counts(value_counts, level="nominal")
    counts = np.bincount(lab, minlength=len(names))
    return {
        "done": n,
        "per": per,
        "alpha": alpha,
        "labels": {str(names[k]): int(c) for k, c in enumerate(counts)},
    }


def campaign_dashboard(*, campaign: Campaign) -> dict[str, Any]:
    pool = CampaignExample.objects.filter(campaign=campaign).aggregate(
        examples=Count("id"),
        complete=Count("id", filter=Q(completed__gte=campaign.redundancy)),
        started=Count("id", filter=Q(completed__gt=0) | Q(in_flight__gt=0)),
        gold=Count("id", filter=Q(is_gold=True)),
    )
    open_leases = Assignment.objects.filter(
        campaign=campaign, status=Assignment.Status.ACTIVE
    ).count()
    # Streamed (a server-side cursor on PostgreSQL): no million-tuple list in memory.
    rows = (
        Annotation.objects.filter(campaign=campaign)
        .order_by()
        .values_list("annotator_id", "example_id", "label", "time_spent_ms", "is_gold")
        .iterator(chunk_size=20_000)
    )
    gold: dict[Hashable, str] = {
        e: str(answer)
        for e, answer in CampaignExample.objects.filter(campaign=campaign, is_gold=True)
        .annotate(answer=gold_answer())
        .exclude(answer=None)
        .values_list("example_id", "answer")
    }
    hourly = list(
        Annotation.objects.filter(campaign=campaign)
        .annotate(hour=TruncHour("created_at"))
        .values("hour")
        .annotate(n=Count("id"))
        .order_by("hour")
    )
    edits = (
        CounterfactualEdit.objects.filter(campaign=campaign)
        .order_by()
        .values_list("author_id", "modality", "status", "target_label", "minimality", "scores")
        .iterator(chunk_size=5_000)
    )
    models = list(
        campaign.model_versions.order_by("id").values_list("id", "name", "version", "is_active")
    )
    figs = _annotation_figures(rows, gold)

    # Edits: per author, per modality (claimed / verified / disputed), minimality, per model.
    verified = CounterfactualEdit.Status.VERIFIED
    disputed = CounterfactualEdit.Status.DISPUTED
    by_author: dict[int, Counter[str]] = defaultdict(Counter)
    flips: dict[str, Counter[str]] = defaultdict(Counter)
    sizes: dict[str, list[float]] = defaultdict(list)
    model_stats = {
        str(pk): Counter[str]() for pk, _, _, _ in models
    }  # scored, flipped, verified_scored, fooled
    active = [str(pk) for pk, _, _, is_active in models if is_active]
    pending = n_edits = 0
    for author, modality, status, target, minimality, scores in edits:
        n_edits += 1
        mine = by_author[author]
        mine["submitted"] += 1
        flips[modality]["claimed"] += 1
        flips[modality][status] += 1
        size = _size(minimality)
        if size is not None:
            sizes[modality].append(size)
        scores = scores if isinstance(scores, dict) else {}
        if any(pk not in scores for pk in active):
            pending += 1
        fooled_any = False
        for pk, stats in model_stats.items():
            before, after = (
                _prediction(scores.get(pk), "original"),
                _prediction(scores.get(pk), "edit"),
            )
            if before is None or after is None:
                continue
            stats["scored"] += 1
            stats["flipped"] += before != after
            if status == verified:
                stats["verified_scored"] += 1
                if after != str(target):
                    stats["fooled"] += 1
                    fooled_any = True
        if status == verified:
            mine["verified"] += 1
            mine["fooling"] += fooled_any
        elif status == disputed:
            mine["disputed"] += 1

    member_ids = set(
        Membership.objects.filter(campaign=campaign, role=Membership.Role.ANNOTATOR).values_list(
            "user_id", flat=True
        )
    )
    people = member_ids | set(figs["per"]) | set(by_author)
    names = dict(
        get_user_model().objects.filter(pk__in=sorted(people)).values_list("pk", "username")
    )
    annotators = []
    for uid in sorted(people, key=lambda u: names.get(u, "")):
        a = figs["per"].get(uid, {})
        e = by_author.get(uid, Counter())
        annotators.append(
            {
                "annotator": names.get(uid, str(uid)),
                "done": a.get("done", 0),
                "median_seconds": _num(a.get("median_seconds", float("nan"))),
                "gold_answered": a.get("gold_answered", 0),
                "gold_accuracy": _num(a.get("gold_accuracy", float("nan"))),
                "agreement": _num(a.get("agreement", float("nan"))),
                "edits_submitted": e["submitted"],
                "edits_verified": e["verified"],
                "edits_disputed": e["disputed"],
                "model_fooling_edits": e["fooling"],
            }
        )

    minimality = []
    edges = np.linspace(0.0, 1.0, MINIMALITY_BINS + 1)
    for modality in sorted(sizes):
        hist, _ = np.histogram(np.clip(sizes[modality], 0.0, 1.0), bins=edges)
        minimality += [
            {
                "modality": modality,
                "bin_start": round(float(edges[i]), 4),
                "bin_end": round(float(edges[i + 1]), 4),
                "edits": int(n),
            }
            for i, n in enumerate(hist)
        ]
    flip_rows: list[dict[str, Any]] = [
        {"modality": modality, "status": status, "edits": c[status]}
        for modality, c in sorted(flips.items())
        for status in ("claimed", verified, disputed, CounterfactualEdit.Status.PENDING)
    ]
    model_rows = []
    for mv_id, name, version, _ in models:
        s = model_stats[str(mv_id)]
        model_rows.append(
            {
                "model": f"{name} {version}".strip(),
                "model_id": mv_id,
                "scored_edits": s["scored"],
                "flips": s["flipped"],
                "flip_rate": _num(s["flipped"] / s["scored"]) if s["scored"] else None,
                "verified_scored": s["verified_scored"],
                "fooled": s["fooled"],
                "fooled_rate": _num(s["fooled"] / s["verified_scored"])
                if s["verified_scored"]
                else None,
            }
        )
    done = figs["done"]
    target = pool["examples"] * campaign.redundancy
    return {
        "campaign": campaign.pk,
        "status": campaign.status,
        "progress": {
            **pool,
            "redundancy": campaign.redundancy,
            "annotations": done,
            "target_annotations": target,
            "fraction": _num(min(done / target, 1.0)) if target else 0.0,
            "open_leases": open_leases,
            "edits": n_edits,
            "edits_verified": sum(c[verified] for c in flips.values()),
            "edits_disputed": sum(c[disputed] for c in flips.values()),
            "scores_pending": pending,
            "annotators": len(people),
        },
        "agreement": {"krippendorff_alpha_nominal": _num(figs["alpha"])},
        "throughput": _hourly([dict(h) for h in hourly]),
        "annotators": annotators,
        "labels": [{"label": lab, "annotations": n} for lab, n in sorted(figs["labels"].items())],
        "minimality": minimality,
        "flips": flip_rows,
        "models": model_rows,
    }


def dashboard_csv(data: dict[str, Any], chart: str) -> str:
    """One chart's records as CSV (header from the first record; an empty chart is empty)."""
    records = data[chart]
    out = io.StringIO()
    if records:
        writer = csv.DictWriter(out, fieldnames=list(records[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    return out.getvalue()
