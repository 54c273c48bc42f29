"""The campaign dashboard's figures, in one read: progress, throughput, the per-annotator
table, labels, minimality, claimed vs verified flips and per-model flip / "model fooled"
rates. Agreement figures come from annotation.agreement (one rule, one place).

Every figure is a SQL aggregate (GROUP BY, conditional counts; the median is
``percentile_cont`` on PostgreSQL and a window-function rank on SQLite, the same number), so
a fixed number of queries (pinned by tests/annotation/test_dashboard_api.py) brings back a
few hundred rows whatever the campaign's size, never the annotations themselves.

Agreement needs only each unit's label counts: the units collapse into their distinct count
vectors ("profiles", a few hundred in a campaign of any size), from which
``krippendorff_alpha_from_counts`` (weighted by how many units share a profile) and
``majority_decision`` (per annotator, label and profile) give exactly what the pure
functions give on the raw labels. Every chart is a list of flat records, so its CSV is the
same list (``dashboard_csv``)."""

from __future__ import annotations

import csv
import io
import math
import operator
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import reduce
from typing import Any

import numpy as np
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Case, Count, FloatField, IntegerField, Q, Value, When
from django.db.models.expressions import RawSQL
from django.db.models.functions import Trunc
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from annotation import agreement
from annotation.models import (
    Annotation,
    Campaign,
    CampaignExample,
    CounterfactualEdit,
    Membership,
)
from annotation.selectors import gold_answer, open_leases_by_kind
from annotation.selectors_perturbations import campaign_studies_progress
from annotation.selectors_results import (
    edit_flipped,
    edit_fooled,
    edit_score_pending,
    edit_scored,
    edit_verified_scored,
)

CHARTS = ("throughput", "annotators", "labels", "minimality", "flips", "models")
MINIMALITY_BINS = 20
EDGES = np.linspace(0.0, 1.0, MINIMALITY_BINS + 1)  # np.histogram's bins: [e_i, e_i+1), last closed
# The size figure each edit kind is budgeted by (annotation.services.counterfactuals): the
# first of these that is a number.
SIZE_FIGURES = ("minimality", "pixel_fraction", "fraction_changed")
# Throughput buckets: the unit follows the span of the work (a campaign of a few minutes is
# drawn in minutes, not on a half-day axis), with at least THROUGHPUT_MIN_BUCKETS buckets
# ending at the last one with work; past THROUGHPUT_MAX_BUCKETS only non-empty buckets.
THROUGHPUT_UNITS = (  # (unit, longest span drawn in it, bucket length)
    ("minute", timedelta(hours=3), timedelta(minutes=1)),
    ("hour", timedelta(days=4), timedelta(hours=1)),
    ("day", timedelta.max, timedelta(days=1)),
)
THROUGHPUT_MIN_BUCKETS = 12
THROUGHPUT_MAX_BUCKETS = 2_000
# PostgreSQL, for the dashboard's statements only: each sorts or hashes up to a campaign's
# annotations (the 4 MB default spills a million rows to disk), and JIT compiling a
# one-off aggregate costs more (50-80 ms a statement, measured) than it saves.
PG_READ_SETTINGS = {"jit": "off", "work_mem": "64MB"}


def _num(x: float | None) -> float | None:
    """JSON has no NaN: an undefined figure is null."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 6)


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def _when(value: Any) -> datetime:
    """A timestamp from a raw cursor (SQLite hands back text, stored in UTC)."""
    if isinstance(value, str):
        value = parse_datetime(value)
    assert isinstance(value, datetime)
    return value if timezone.is_aware(value) else timezone.make_aware(value, UTC)


@contextmanager
def _aggregate_session() -> Iterator[None]:
    """PG_READ_SETTINGS for the statements inside (SET LOCAL: they end with the
    transaction); nothing on SQLite."""
    if not _postgres():
        yield
        return
    # No savepoint of its own: inside a caller's transaction the settings live to its end.
    with transaction.atomic(savepoint=False):
        with connection.cursor() as cur:
            cur.execute(
                "SELECT " + ", ".join("set_config(%s, %s, true)" for _ in PG_READ_SETTINGS),
                [x for kv in PG_READ_SETTINGS.items() for x in kv],
            )
        yield


def _annotator_rows(campaign: Campaign) -> list[tuple[Any, ...]]:
    """Per annotator: (id, done, median ms, gold answered, gold judged, gold right, first,
    last, last annotation id). Gold is judged where the pool marks the example gold and it has an answer."""
    a = Annotation._meta.db_table
    # The gold items and their answers by THE rule (selectors.gold_answer), as SQL.
    gold_sql, gold_params = (
        CampaignExample.objects.filter(campaign=campaign, is_gold=True)
        .annotate(answer=gold_answer())
        .exclude(answer=None)
        .values("example_id", "answer")
        .query.sql_with_params()
    )
    if _postgres():
        median, median_join = "percentile_cont(0.5) WITHIN GROUP (ORDER BY a.time_spent_ms)", ""
        median_params: list[Any] = []
    else:
        # The two middle values of each annotator's sorted times, averaged: what
        # percentile_cont(0.5) (and numpy's median) answers.
        median = "MAX(md.median)"
        median_join = f"""LEFT JOIN (
            SELECT annotator_id, AVG(time_spent_ms) AS median FROM (
                SELECT annotator_id, time_spent_ms,
                    ROW_NUMBER() OVER (PARTITION BY annotator_id ORDER BY time_spent_ms) AS i,
                    COUNT(*) OVER (PARTITION BY annotator_id) AS n
                FROM {a} WHERE campaign_id = %s
            ) ranked WHERE i IN ((n + 1) / 2, (n + 2) / 2) GROUP BY annotator_id
        ) md ON md.annotator_id = a.annotator_id"""
        median_params = [campaign.pk]
    sql = f"""
        SELECT a.annotator_id, COUNT(*), {median},
            SUM(CASE WHEN a.is_gold THEN 1 ELSE 0 END),
            COUNT(g.example_id),
            SUM(CASE WHEN a.label = g.answer THEN 1 ELSE 0 END),
            MIN(a.created_at), MAX(a.created_at), MAX(a.id)
        FROM {a} a
        LEFT JOIN ({gold_sql}) g ON a.is_gold AND g.example_id = a.example_id
        {median_join}
        WHERE a.campaign_id = %s
        GROUP BY a.annotator_id"""
    with connection.cursor() as cur:
        cur.execute(sql, [*gold_params, *median_params, campaign.pk])
        return cur.fetchall()


def _profile_rows(campaign: Campaign, labels: list[str]) -> list[tuple[Any, ...]]:
    """(annotator, label's index in ``labels``, is_gold, count of each label on the unit...,
    annotations): each annotation grouped by its annotator, its label and its unit's label
    counts (a window over the unit: one pass, no join back)."""
    a = Annotation._meta.db_table
    cols = ", ".join(
        f"SUM(CASE WHEN label = %s THEN 1 ELSE 0 END) OVER unit AS c{i}" for i in range(len(labels))
    )
    keys = ", ".join(f"c{i}" for i in range(len(labels)))
    column = " ".join(f"WHEN %s THEN {i}" for i in range(len(labels)))
    sql = f"""
        SELECT annotator_id, CASE label {column} END AS k, is_gold, {keys}, COUNT(*) FROM (
            SELECT annotator_id, label, is_gold, {cols} FROM {a}
            WHERE campaign_id = %s WINDOW unit AS (PARTITION BY example_id, is_gold)
        ) p
        GROUP BY annotator_id, k, is_gold, {keys}"""
    with connection.cursor() as cur:
        cur.execute(sql, [*labels, *labels, campaign.pk])
        return cur.fetchall()


def _agreement_figures(
    rows: list[tuple[Any, ...]], labels: list[str]
) -> tuple[dict[int, tuple[int, int]], float, dict[str, int]]:
    """From ``_profile_rows``: per annotator (agreeing, counted) units against the others'
    majority (agreement.majority_decision), Krippendorff's alpha (nominal) over the non-gold
    units, and annotations per label (gold included). Vectorised: tens of thousands of rows
    at a million annotations."""
    if not rows:
        return {}, float("nan"), {}
    k = len(labels)
    table = np.array(rows, dtype=np.int64)
    annotator, label, gold = table[:, 0], table[:, 1], table[:, 2].astype(bool)
    counts, n = table[:, 3 : 3 + k], table[:, 3 + k]
    per_label = np.bincount(label, weights=n, minlength=k).astype(np.int64)
    real = ~gold
    counts, label, annotator, n = counts[real], label[real], annotator[real], n[real]
    per_annotator: dict[int, tuple[int, int]] = {}
    alpha = float("nan")
    if len(n):
        top = -np.sort(-counts, axis=1)
        top = np.pad(top, ((0, 0), (0, max(0, 3 - k))))[:, :3]
        own = counts[np.arange(len(n)), label]
        agrees, counted = agreement.majority_decision(own, top[:, 0], top[:, 1], top[:, 2])
        ids, who = np.unique(annotator, return_inverse=True)
        agree_n = np.bincount(who, weights=n * agrees, minlength=len(ids)).astype(np.int64)
        count_n = np.bincount(who, weights=n * counted, minlength=len(ids)).astype(np.int64)
        per_annotator = {
            int(uid): (int(a), int(c))
            for uid, a, c in zip(ids.tolist(), agree_n, count_n, strict=True)
        }
        # Every unit with a profile gave sum(profile) annotations, one per annotator.
        index: dict[tuple[int, ...], int] = {}
        which = [index.setdefault(p, len(index)) for p in map(tuple, counts.tolist())]
        profiles = np.array(list(index), dtype=np.int64).reshape(len(index), k)
        annotations = np.bincount(which, weights=n, minlength=len(profiles))
        alpha = agreement.krippendorff_alpha_from_counts(
            profiles, level="nominal", units=annotations / profiles.sum(axis=1)
        )
    return per_annotator, alpha, {lab: int(per_label[i]) for i, lab in enumerate(labels)}


def throughput_unit(first: datetime, last: datetime) -> tuple[str, timedelta]:
    """The bucket (unit, length) for work that ran from ``first`` to ``last``."""
    return next((u, step) for u, longest, step in THROUGHPUT_UNITS if last - first <= longest)


def throughput_buckets(counts: dict[datetime, int], step: timedelta) -> list[dict[str, Any]]:
    """Buckets (start, end, annotations) from ``counts`` keyed by bucket start, the empty
    ones filled in (a gap is a real zero on the chart), at least THROUGHPUT_MIN_BUCKETS of
    them ending at the last with work."""
    if not counts:
        return []
    start, end = min(counts), max(counts)
    buckets = int((end - start) / step) + 1
    if buckets > THROUGHPUT_MAX_BUCKETS:
        keys = sorted(counts)
    else:
        buckets = max(buckets, THROUGHPUT_MIN_BUCKETS)
        keys = [end - step * (buckets - 1 - i) for i in range(buckets)]
    return [
        {"start": k.isoformat(), "end": (k + step).isoformat(), "annotations": counts.get(k, 0)}
        for k in keys
    ]


def _throughput(
    campaign: Campaign, first: datetime | None, last: datetime | None
) -> tuple[str, list[dict[str, Any]]]:
    """(unit, buckets): annotations per minute, hour or day, by the span of the work."""
    if first is None or last is None:
        return THROUGHPUT_UNITS[0][0], []
    unit, step = throughput_unit(first, last)
    rows = (
        Annotation.objects.filter(campaign=campaign)
        .annotate(t=Trunc("created_at", unit))
        .values("t")
        .annotate(n=Count("id"))
        .order_by("t")
    )
    return unit, throughput_buckets({r["t"]: r["n"] for r in rows}, step)


def _flag(condition: Q) -> Case:
    return Case(When(condition, then=Value(1)), default=Value(0), output_field=IntegerField())


def _edit_rows(
    campaign: Campaign, models: list[tuple[int, str, str, bool]]
) -> list[tuple[Any, ...]]:
    """One statement, three kinds of rows over the campaign's edits:
    ("a", author, modality, status, -, edits, model-fooling edits, scores pending, last id),
    ("h", -, modality, -, bin, edits, -, -) and ("m", -, -, -, model index, scored, flipped,
    verified and scored, fooled). Its per-edit flags are the ORM conditions of
    selectors_results (edit_scored, edit_flipped, edit_verified_scored, edit_fooled,
    edit_score_pending: the rules are written there once), compiled into the statement's CTE."""

    def figure(key: str) -> tuple[str, str]:  # (is a number, its value)
        if _postgres():
            return (
                f"jsonb_typeof(minimality -> '{key}') = 'number'",
                f"(minimality ->> '{key}')::float8",
            )
        return (
            f"json_type(minimality, '$.{key}') IN ('integer', 'real')",
            f"json_extract(minimality, '$.{key}')",
        )

    size = "CASE " + " ".join(f"WHEN {t} THEN {v}" for t, v in map(figure, SIZE_FIGURES)) + " END"
    flags: dict[str, Any] = {}
    pending: list[Q] = []
    for k, (pk, _, _, is_active) in enumerate(models):
        flags[f"s{k}"] = _flag(edit_scored(pk))
        flags[f"f{k}"] = _flag(edit_flipped(pk))
        flags[f"v{k}"] = _flag(edit_verified_scored(pk))
        flags[f"x{k}"] = _flag(edit_fooled(pk))
        if is_active:
            pending.append(edit_score_pending(pk))
    flags["pending"] = _flag(reduce(operator.or_, pending)) if pending else Value(0)
    flags["size"] = RawSQL(size, [], output_field=FloatField())
    cte, cte_params = (
        CounterfactualEdit.objects.filter(campaign=campaign)
        .annotate(**flags)
        .values("id", "author_id", "modality", "status", *flags)
        .order_by()
        .query.sql_with_params()
    )
    bins = " ".join(f"WHEN size < %s THEN {i}" for i in range(MINIMALITY_BINS - 1))
    params: list[Any] = [float(x) for x in EDGES[1:-1]]
    any_fooled = " + ".join(f"x{k}" for k in range(len(models))) or "0"
    int_null, text_null = "CAST(NULL AS INTEGER)", "CAST(NULL AS VARCHAR(100))"
    parts = [
        f"""SELECT 'a', author_id, modality, status, {int_null}, COUNT(*),
            SUM(CASE WHEN {any_fooled} > 0 THEN 1 ELSE 0 END), SUM(pending), MAX(id)
            FROM e GROUP BY author_id, modality, status""",
        f"""SELECT 'h', {int_null}, modality, {text_null}, bin, COUNT(*), 0, 0, 0
            FROM (SELECT modality, CASE {bins} ELSE {MINIMALITY_BINS - 1} END AS bin
                  FROM e WHERE size IS NOT NULL) b
            GROUP BY modality, bin""",
    ] + [
        f"""SELECT 'm', {int_null}, {text_null}, {text_null}, {k}, COALESCE(SUM(s{k}), 0),
            COALESCE(SUM(f{k}), 0), COALESCE(SUM(v{k}), 0), COALESCE(SUM(x{k}), 0) FROM e"""
        for k in range(len(models))
    ]
    sql = f"WITH e AS ({cte}) " + " UNION ALL ".join(parts)
    with connection.cursor() as cur:
        cur.execute(sql, [*cte_params, *params])
        return cur.fetchall()


def campaign_dashboard(*, campaign: Campaign) -> dict[str, Any]:
    with _aggregate_session():
        return _campaign_dashboard(campaign)


def _campaign_dashboard(campaign: Campaign) -> dict[str, Any]:
    pool = CampaignExample.objects.filter(campaign=campaign).aggregate(
        examples=Count("id"),
        complete=Count("id", filter=Q(completed__gte=campaign.redundancy)),
        started=Count("id", filter=Q(completed__gt=0) | Q(in_flight__gt=0)),
        gold=Count("id", filter=Q(is_gold=True)),
    )
    leases = open_leases_by_kind(campaign=campaign)
    models = list(
        campaign.model_versions.order_by("id").values_list("id", "name", "version", "is_active")
    )
    # Labels are checked against the label space on submit (an empty label where the
    # campaign asks for none): these columns hold every annotation.
    space = [str(lab) for lab in campaign.dataset.label_space]
    labels = list(dict.fromkeys([*space, ""]))
    per = {row[0]: row for row in _annotator_rows(campaign)}
    agree, alpha, label_counts = _agreement_figures(_profile_rows(campaign, labels), labels)
    first = min((_when(r[6]) for r in per.values()), default=None)
    last = max((_when(r[7]) for r in per.values()), default=None)
    unit, throughput = _throughput(campaign, first, last)

    verified = CounterfactualEdit.Status.VERIFIED
    disputed = CounterfactualEdit.Status.DISPUTED
    by_author: dict[int, Counter[str]] = defaultdict(Counter)
    flips: dict[str, Counter[str]] = defaultdict(Counter)
    hist: dict[str, list[int]] = defaultdict(lambda: [0] * MINIMALITY_BINS)
    model_stats: dict[int, tuple[int, int, int, int]] = {}
    pending = n_edits = 0
    last_edit: int | None = None
    for kind, author, modality, status, index, n, v1, v2, v3 in _edit_rows(campaign, models):
        n, v1, v2, v3 = int(n or 0), int(v1 or 0), int(v2 or 0), int(v3 or 0)
        if kind == "a":
            last_edit = max(v3, last_edit or 0)
            n_edits += n
            pending += v2
            mine = by_author[author]
            mine["submitted"] += n
            flips[modality]["claimed"] += n
            flips[modality][status] += n
            if status == verified:
                mine["verified"] += n
                mine["fooling"] += v1
            elif status == disputed:
                mine["disputed"] += n
        elif kind == "h":
            hist[modality][int(index)] += n
        else:
            model_stats[int(index)] = (n, v1, v2, v3)

    member_ids = set(
        Membership.objects.filter(campaign=campaign, role=Membership.Role.ANNOTATOR).values_list(
            "user_id", flat=True
        )
    )
    people = member_ids | set(per) | set(by_author)
    names = dict(
        get_user_model().objects.filter(pk__in=sorted(people)).values_list("pk", "username")
    )
    annotators = []
    for uid in sorted(people, key=lambda u: names.get(u, "")):
        _, done, median_ms, gold_answered, judged, right, _, _, _ = per.get(
            uid, (uid, 0, None, 0, 0, 0, None, None, None)
        )
        agreeing, counted = agree.get(uid, (0, 0))
        e = by_author.get(uid, Counter())
        annotators.append(
            {
                "annotator": names.get(uid, str(uid)),
                "done": int(done),
                "median_seconds": _num(None if median_ms is None else float(median_ms) / 1000.0),
                "gold_answered": int(gold_answered or 0),
                "gold_accuracy": _num(int(right or 0) / int(judged) if judged else None),
                "agreement": _num(agreeing / counted if counted else None),
                "edits_submitted": e["submitted"],
                "edits_verified": e["verified"],
                "edits_disputed": e["disputed"],
                "model_fooling_edits": e["fooling"],
            }
        )

    minimality = [
        {
            "modality": modality,
            "bin_start": round(float(EDGES[i]), 4),
            "bin_end": round(float(EDGES[i + 1]), 4),
            "edits": n,
        }
        for modality in sorted(hist)
        for i, n in enumerate(hist[modality])
    ]
    flip_rows: list[dict[str, Any]] = [
        {"modality": modality, "status": status, "edits": c[status]}
        for modality, c in sorted(flips.items())
        for status in ("claimed", verified, disputed, CounterfactualEdit.Status.PENDING)
    ]
    model_rows = []
    for k, (mv_id, name, version, _) in enumerate(models):
        scored, flipped, verified_scored, fooled = model_stats.get(k, (0, 0, 0, 0))
        model_rows.append(
            {
                "model": f"{name} {version}".strip(),
                "model_id": mv_id,
                "scored_edits": scored,
                "flips": flipped,
                "flip_rate": _num(flipped / scored) if scored else None,
                "verified_scored": verified_scored,
                "fooled": fooled,
                "fooled_rate": _num(fooled / verified_scored) if verified_scored else None,
            }
        )
    done = sum(int(r[1]) for r in per.values())
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
            "open_leases": sum(leases.values()),
            "open_leases_by_kind": leases,
            "edits": n_edits,
            "edits_verified": sum(c[verified] for c in flips.values()),
            "edits_disputed": sum(c[disputed] for c in flips.values()),
            "scores_pending": pending,
            "annotators": len(people),
        },
        "agreement": {"krippendorff_alpha_nominal": _num(alpha)},
        "throughput_unit": unit,
        "throughput": throughput,
        "annotators": annotators,
        # Every label of the label space once there is work (unused ones at 0: a label
        # nobody gives is a finding), and any other label given (the empty one).
        "labels": [
            {"label": lab, "annotations": label_counts.get(lab, 0)}
            for lab in sorted(set(space) | {k for k, n in label_counts.items() if n})
        ]
        if done
        else [],
        "minimality": minimality,
        "flips": flip_rows,
        "models": model_rows,
        # The last annotation and edit the statements above read (None: none yet).
        "covers": {
            "annotation_id": max((int(r[8]) for r in per.values()), default=None),
            "edit_id": last_edit,
        },
        # Perturbation studies: the humans' progress per level cell, apart from the pool's.
        "perturbation": campaign_studies_progress(campaign=campaign),
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
