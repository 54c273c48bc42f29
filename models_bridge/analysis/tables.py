"""Every analysis result as named tables, for the report page and its CSV downloads
(docs/analysis.md "Reading the report"). Pure: plain dicts in, plain lists out.

`result_tables(method, result)` knows the methods of the registry; a result of any other
method (`heads`, or one added later) is laid out generically: each top-level list of objects
becomes a table with their keys as columns, each object of scalars a two-column table, and the
top-level scalars a summary table. A cell is a str, int, float, bool or None; anything nested
is written as compact JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from models_bridge.analysis.grounding import METRICS
from models_bridge.analysis.reliance import GROUPS

Cell = str | int | float | bool | None


@dataclass
class Table:
    key: str
    title: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "columns": self.columns,
            "rows": self.rows,
            "note": self.note,
        }


def cell(value: Any) -> Cell:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _ci(entry: Mapping[str, Any] | None) -> tuple[Cell, Cell]:
    ci = (entry or {}).get("ci95")
    return (ci[0], ci[1]) if ci else (None, None)


def _emap(r: Mapping[str, Any]) -> list[Table]:
    acc = Table(
        "accuracy",
        "Accuracy of f and of EMAP(f)",
        ["grouping", "group", "n", "model", "emap", "gap"],
        note=f"variant: {r.get('variant')}; the gap says how much f uses interactions",
    )
    for grouping, groups in (r.get("accuracy") or {}).items():
        if grouping == "overall":
            g = groups
            acc.rows.append(
                ["overall", "all", g.get("n"), g.get("model"), g.get("emap"), g.get("gap")]
            )
            continue
        for name, g in groups.items():
            acc.rows.append(
                [
                    grouping.removeprefix("by_"),
                    name,
                    g.get("n"),
                    g.get("model"),
                    g.get("emap"),
                    g.get("gap"),
                ]
            )
    examples = Table(
        "examples",
        "Per example: interaction score ‖f(x) - EMAP f(x)‖₂",
        ["example", "predicted", "predicted_emap", "argmax_changed", "interaction"],
    )
    rows = sorted(
        r.get("examples") or [],
        key=lambda e: (-float(e.get("interaction", 0)), e.get("example", 0)),
    )
    for e in rows:
        examples.rows.append(
            [
                e.get("example"),
                e.get("predicted"),
                e.get("predicted_emap"),
                e.get("argmax_changed"),
                e.get("interaction"),
            ]
        )
    return [acc, examples]


def _ablation(r: Mapping[str, Any]) -> list[Table]:
    main = Table(
        "modalities",
        "Unimodal ablation",
        ["modality", "null_input", "accuracy", "delta", "prediction_changed"],
        note=f"intact accuracy {r.get('accuracy')}; variant: {r.get('variant')}",
    )
    groups = Table(
        "by_group", "Ablation by group", ["modality", "grouping", "group", "n", "intact", "nulled"]
    )
    for m, e in (r.get("modalities") or {}).items():
        main.rows.append(
            [
                m,
                cell(e.get("null_input")),
                e.get("accuracy"),
                e.get("delta"),
                e.get("prediction_changed_fraction"),
            ]
        )
        for grouping, gs in (e.get("by_group") or {}).items():
            if grouping == "overall":
                continue
            for name, g in gs.items():
                groups.rows.append(
                    [
                        m,
                        grouping.removeprefix("by_"),
                        name,
                        g.get("n"),
                        g.get("model"),
                        g.get("emap"),
                    ]
                )
    return [main, groups]


def _perceptual(r: Mapping[str, Any]) -> list[Table]:
    t = Table(
        "modalities",
        "Perceptual score: accuracy drop when a modality is permuted",
        ["modality", "mean_drop", "std", "drops"],
        note=f"intact accuracy {r.get('accuracy')}; variant: {r.get('variant')}",
    )
    for m, e in (r.get("modalities") or {}).items():
        t.rows.append([m, e.get("mean"), e.get("std"), cell(e.get("drops"))])
    return [t]


def _counterfactual(r: Mapping[str, Any]) -> list[Table]:
    t = Table(
        "metrics",
        "Counterfactual metrics with bootstrap 95% intervals",
        ["group", "metric", "value", "numerator", "denominator", "ci_low", "ci_high"],
        note=f"bootstrap: {cell(r.get('bootstrap'))}",
    )

    def add(group: str, figures: Mapping[str, Any]) -> None:
        for metric, e in figures.items():
            if isinstance(e, Mapping):
                t.rows.append(
                    [
                        group,
                        metric,
                        e.get("value"),
                        e.get("numerator"),
                        e.get("denominator"),
                        *_ci(e),
                    ]
                )

    add("overall", r.get("overall") or {})
    for m, f in (r.get("by_modality") or {}).items():
        add(f"modality: {m}", f)
    for a, f in (r.get("by_annotator") or {}).items():
        add(f"annotator: {a}", f)
    return [t]


PID_TERMS = ("redundancy", "unique_1", "unique_2", "synergy")


def _pid(r: Mapping[str, Any]) -> list[Table]:
    mods = r.get("modalities") or {}
    t = Table(
        "terms",
        "Partial information decomposition (bits)",
        ["of", *PID_TERMS],
        note=f"unique_1 = {mods.get('x1')}, unique_2 = {mods.get('x2')}; k = {cell(r.get('k'))}; "
        f"{r.get('examples')} examples",
    )
    for source in ("labels", "predictions"):
        terms = r.get(source)
        if isinstance(terms, Mapping):
            t.rows.append([source, *(terms.get(k) for k in PID_TERMS)])
    return [t]


def _clusters(r: Mapping[str, Any]) -> list[Table]:
    t = Table(
        "clusters",
        "Interaction clusters",
        ["cluster", "size", "mean_interaction_norm", "reliance"],
        note=f"k = {r.get('chosen_k')} by silhouette {cell(r.get('silhouette'))}; {r.get('variant')}",
    )
    members = Table("members", "Cluster members", ["cluster", "example", "external_id", "label"])
    for c in r.get("clusters") or []:
        t.rows.append(
            [
                c.get("cluster"),
                c.get("size"),
                c.get("mean_interaction_norm"),
                cell(c.get("reliance")),
            ]
        )
        for e in c.get("examples") or []:
            members.rows.append(
                [c.get("cluster"), e.get("id"), e.get("external_id"), e.get("label")]
            )
    return [t, members]


def _reliance(r: Mapping[str, Any]) -> list[Table]:
    mods = list(r.get("modalities") or [])
    edited = list(r.get("edited_modalities") or [])
    cols = [
        "category",
        "examples",
        "emap_changed",
        "emap_changed_ci_low",
        "emap_changed_ci_high",
        "interaction_mean",
    ]
    for m in mods:
        cols += [f"ablation_delta_{m}", f"ablation_delta_{m}_ci_low", f"ablation_delta_{m}_ci_high"]
    for m in edited:
        cols += [
            f"flip_rate_{m}_edits",
            f"flip_rate_{m}_ci_low",
            f"flip_rate_{m}_ci_high",
            f"scored_{m}_edits",
        ]
    t = Table(
        "categories",
        "Per human reliance category",
        cols,
        note="category: the majority reliance answer of the example's annotators",
    )
    by_category = r.get("by_category") or {}
    # In the taxonomy's order (PostgreSQL's jsonb keeps no key order).
    order = [g for g in GROUPS if g in by_category] + sorted(set(by_category) - set(GROUPS))
    groups = [("overall", r.get("overall") or {}), *((g, by_category[g]) for g in order)]
    for name, g in groups:
        e = g.get("emap_changed") or {}
        row: list[Cell] = [
            name,
            g.get("examples"),
            e.get("value"),
            *_ci(e),
            g.get("interaction_mean"),
        ]
        for m in mods:
            d = ((g.get("ablation") or {}).get(m) or {}).get("delta") or {}
            row += [d.get("value"), *_ci(d)]
        for m in edited:
            f = ((g.get("edits") or {}).get(m) or {}).get("model_flip_rate") or {}
            row += [f.get("value"), *_ci(f), f.get("denominator")]
        t.rows.append(row)
    k = r.get("kappa") or {}
    table = k.get("table") or {}
    kappa = Table(
        "kappa",
        "Cohen's κ: humans needed both vs the model uses the interaction",
        [
            "kappa",
            "ci_low",
            "ci_high",
            "n",
            "agreement",
            "both_yes",
            "humans_only",
            "model_only",
            "both_no",
        ],
    )
    kappa.rows.append(
        [
            k.get("value"),
            *_ci(k),
            k.get("n"),
            k.get("agreement"),
            table.get("both_yes"),
            table.get("humans_only"),
            table.get("model_only"),
            table.get("both_no"),
        ]
    )
    dis = Table(
        "disagreements",
        "Where humans and the model disagree most",
        [
            "example",
            "disagreement",
            "human_category",
            "needed_both_share",
            "reliance",
            "model_uses_interaction",
            "interaction",
            "predicted",
            "predicted_emap",
            "gold",
            "edits",
        ],
    )
    for d in r.get("disagreements") or []:
        h, m = d.get("humans") or {}, d.get("model") or {}
        dis.rows.append(
            [
                d.get("example"),
                d.get("disagreement"),
                h.get("category"),
                h.get("needed_both_share"),
                cell(h.get("reliance")),
                m.get("uses_interaction"),
                m.get("interaction"),
                m.get("predicted"),
                m.get("predicted_emap"),
                d.get("gold"),
                cell(d.get("edits")),
            ]
        )
    return [t, kappa, dis]


def _grounding(r: Mapping[str, Any]) -> list[Table]:
    figures = Table(
        "figures",
        "Plausibility and faithfulness, overall and per human reliance category",
        ["group", "metric", "examples", "n", "value", "ci_low", "ci_high"],
        note="plausibility: text_* and image_*; faithfulness: {human,model}_{comprehensiveness,"
        "sufficiency}_{all,text,image} (the evidence of that side removed / kept alone); "
        "n: the examples where the figure is defined; 95% percentile bootstrap intervals",
    )
    by_category = r.get("by_category") or {}
    order = [g for g in GROUPS if g in by_category] + sorted(set(by_category) - set(GROUPS))
    for name, g in [("overall", r.get("overall") or {}), *((c, by_category[c]) for c in order)]:
        for metric in METRICS:
            e = g.get(metric) or {}
            figures.rows.append(
                [name, metric, g.get("examples"), e.get("denominator"), e.get("value"), *_ci(e)]
            )
    dis = Table(
        "disagreements",
        "Where the model looks furthest from the annotators",
        ["example", "disagreement", "category", "predicted", "gold", "text_top_k_f1", "image_iou"],
        note="disagreement: 1 - the mean of the example's text top-k F1 and image IoU",
    )
    for d in r.get("disagreements") or []:
        dis.rows.append([cell(d.get(c)) for c in dis.columns])
    cols = [
        "example",
        "category",
        "annotators",
        "predicted",
        "p_predicted",
        "gold",
        "text_top_k_f1",
        "text_auprc",
        "image_pointing",
        "image_iou",
        "human_comprehensiveness",
        "human_sufficiency",
        "model_comprehensiveness",
        "model_sufficiency",
        "disagreement",
    ]
    examples = Table("examples", "Per example", cols, note="faithfulness columns: scope all")
    for e in r.get("examples") or []:
        t, i = e.get("text") or {}, e.get("image") or {}
        f = e.get("faithfulness") or {}
        h, m = (f.get("human") or {}).get("all") or {}, (f.get("model") or {}).get("all") or {}
        examples.rows.append(
            [
                e.get("example"),
                e.get("category"),
                e.get("annotators"),
                e.get("predicted"),
                e.get("p_predicted"),
                e.get("gold"),
                t.get("top_k_f1"),
                t.get("auprc"),
                i.get("pointing"),
                i.get("iou"),
                h.get("comprehensiveness"),
                h.get("sufficiency"),
                m.get("comprehensiveness"),
                m.get("sufficiency"),
                e.get("disagreement"),
            ]
        )
    attributions = Table(
        "attributions", "How the model's evidence was computed", ["field", "value"]
    )
    for name, rec in sorted((r.get("attributions") or {}).items()):
        attributions.rows.append([name, cell(rec)])
    return [figures, dis, examples, attributions]


KEY_NAMES = re.compile(
    r"^(head|heads|layer|name|id|example|cluster|modality|label|group|k)$|removed|pruned|step|level"
)


def _key_first(columns: list[str], records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Columns in a fixed order whatever the database kept of the keys' order (PostgreSQL's
    jsonb does not): the key column first (a name like head / heads_removed / step, else the
    first column of strings), the rest sorted."""
    cols = sorted(columns)
    named = [c for c in cols if KEY_NAMES.search(c)]
    texts = [c for c in cols if all(isinstance(r.get(c), str) for r in records)]
    key = (named or texts or cols)[0]
    return [key, *[c for c in cols if c != key]]


def _generic(r: Mapping[str, Any]) -> list[Table]:
    tables: list[Table] = []
    summary = Table("summary", "Summary", ["field", "value"])
    for key in sorted(r):
        value = r[key]
        title = key.replace("_", " ").capitalize()
        if (
            isinstance(value, Sequence)
            and not isinstance(value, str)
            and value
            and all(isinstance(v, Mapping) for v in value)
        ):
            cols = _key_first(list({c for v in value for c in v}), value)
            tables.append(Table(key, title, cols, [[cell(v.get(c)) for c in cols] for v in value]))
        elif (
            isinstance(value, Mapping)
            and value
            and all(not isinstance(v, Mapping | list) for v in value.values())
        ):
            rows: list[list[Cell]] = [[str(k), cell(value[k])] for k in sorted(value)]
            tables.append(Table(key, title, [key, "value"], rows))
        else:
            summary.rows.append([key, cell(value)])
    return [summary, *tables] if summary.rows else tables


TABLES = {
    "emap": _emap,
    "ablation": _ablation,
    "perceptual": _perceptual,
    "counterfactual": _counterfactual,
    "pid": _pid,
    "clusters": _clusters,
    "reliance": _reliance,
    "grounding": _grounding,
}


def result_tables(method: str, result: Mapping[str, Any]) -> list[Table]:
    return TABLES.get(method, _generic)(result)


def table_csv(table: Table) -> str:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(table.columns)
    writer.writerows(["" if v is None else v for v in row] for row in table.rows)
    return buf.getvalue()
