"""What an export contains, with no database access (docs/exports.md): the columns of the
annotations file and of the pairs file for a dataset's modalities, what each column means,
how a row becomes a CSV line (nested fields as JSON strings) and the datasheet (the README.md
inside every archive). The service (annotation/services/exports.py) feeds it rows in batches.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

FORMATS = ("jsonl", "csv", "parquet", "hf")
TABLES = ("annotations", "pairs")


@dataclass(frozen=True)
class Column:
    name: str
    # "int", "float", "bool", "string", "json" (nested: a JSON string in CSV and Parquet),
    # "image" (JSONL/CSV: the SHA-256 and the file in media/; Parquet: {bytes, path})
    kind: str
    meaning: str


def _annotation_fields() -> list[Column]:
    return [
        Column("annotation_id", "int", "the annotation's id"),
        Column("example_id", "int", "the example's id"),
        Column("example_external_id", "string", "the example's id in the imported dataset"),
        Column("split", "string", "the example's split"),
        Column("gold_label", "string", "the example's gold label (empty when it has none)"),
        Column("is_gold", "bool", "the task was a gold check"),
        Column("annotator", "string", "the annotator's username"),
        Column("label", "string", "the label the annotator gave"),
        Column("confidence", "int", "how sure the annotator was, 1-5 (empty when not asked)"),
        Column("rationale", "string", "the annotator's free-text reason"),
        Column(
            "reliance",
            "string",
            "which inputs were needed, as the stored category: specialization, equivalence, "
            "synergy, complementarity or transfer (empty when not asked)",
        ),
        Column(
            "reliance_modality",
            "string",
            "for specialization: the one modality needed; for transfer: the guiding one",
        ),
        Column(
            "evidence",
            "json",
            'highlights: [{"modality", "type": "span", "start", "end", "text"} | '
            '{"modality", "type": "box", "x", "y", "w", "h"}] in characters / source pixels',
        ),
        Column("time_spent_ms", "int", "time on the task in milliseconds (server-bounded)"),
        Column("late", "bool", "submitted after the lease had expired"),
        Column("edit_id", "int", "the counterfactual edit made in this task (empty: none)"),
        Column("created_at", "string", "when it was submitted (ISO 8601, UTC)"),
    ]


def _pair_fields() -> list[Column]:
    return [
        Column("edit_id", "int", "the counterfactual edit's id"),
        Column("annotation_id", "int", "the annotation it was made in"),
        Column("example_id", "int", "the original example's id"),
        Column("example_external_id", "string", "the original example's id in the dataset"),
        Column("split", "string", "the original example's split"),
        Column("gold_label", "string", "the original example's gold label (empty: none)"),
        Column("author", "string", "who wrote the edit"),
        Column("modality", "string", "the one modality that was edited"),
        Column("original_label", "string", "the author's label of the original"),
        Column("target_label", "string", "the label the author claims the edit now has"),
        Column(
            "minimality",
            "json",
            "the edit's size: text {token_distance, minimality, char_distance, tokens}; "
            "image {pixel_fraction, changed_pixels, bbox_area, bbox}; tabular "
            "{fraction_changed, scaled_l1}",
        ),
        Column(
            "minimality_value",
            "float",
            "the budgeted figure: text minimality, image pixel_fraction, tabular fraction_changed",
        ),
        Column(
            "scores",
            "json",
            'every campaign model\'s scores on both sides: {"<name>@<version>": {"original": '
            '{"predicted", "probabilities", ...}, "edit": {...}}} (or {"error": ...})',
        ),
        Column("status", "string", "pending, verified or disputed (blind validation)"),
        Column("validations_count", "int", "how many validators relabelled the edit"),
        Column("validations_agree", "int", "how many of them gave the target label"),
        Column(
            "validations",
            "json",
            '[{"validator", "label", "broken", "comment", "created_at"}] in order',
        ),
        Column("reliance", "string", "the author's reliance answer on the original"),
        Column("reliance_modality", "string", "the modality that answer names"),
        Column("evidence", "json", "the author's highlights on the original"),
        Column("rationale", "string", "the author's free-text reason"),
        Column("confidence", "int", "the author's confidence 1-5 on the original"),
        Column("attempts_count", "int", "how many drafts were scored live before the submit"),
        Column(
            "round",
            "int",
            "the number of the campaign round open when the edit was submitted (docs/rounds.md; "
            "empty: no round was open)",
        ),
        Column("created_at", "string", "when the edit was submitted (ISO 8601, UTC)"),
    ]


def _value_kind(kind: str) -> str:
    return {"image": "image", "text": "string"}.get(kind, "json")


def columns(table: str, modalities: Sequence[Mapping[str, Any]]) -> list[Column]:
    """The columns of `table` ("annotations" or "pairs") for a dataset's modalities, in order.
    Values are prefixed (input_*, original_*, edited_*) so a modality named like a column
    ("label") cannot collide with one."""
    if table == "annotations":
        values = [
            Column(f"input_{m['name']}", _value_kind(m["kind"]), f"the example's {m['name']}")
            for m in modalities
        ]
        return [*_annotation_fields(), *values]
    if table == "pairs":
        values = []
        for m in modalities:
            kind = _value_kind(m["kind"])
            values.append(Column(f"original_{m['name']}", kind, f"the original {m['name']}"))
            values.append(
                Column(
                    f"edited_{m['name']}",
                    kind,
                    f"the edited example's {m['name']} (byte-identical unless it is the "
                    "edited modality)",
                )
            )
        return [*_pair_fields(), *values]
    raise ValueError(f"unknown table {table!r}")


def minimality_value(modality_kind: str | None, figures: Mapping[str, Any]) -> float | None:
    key = {"text": "minimality", "image": "pixel_fraction", "tabular": "fraction_changed"}.get(
        modality_kind or ""
    )
    value = figures.get(key) if key else None
    return float(value) if isinstance(value, int | float) else None


def image_entry_path(sha256: str, ext: str) -> str:
    """Where an image lives inside a JSONL/CSV archive (and the `path` of a Parquet image)."""
    return f"media/{sha256}.{ext}"


def json_cell(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def csv_cell(column: Column, value: Any) -> Any:
    """One CSV cell: nested fields as JSON strings, images as their archive path, None empty."""
    if value is None:
        return ""
    if column.kind == "json":
        return value if isinstance(value, str) else json_cell(value)
    if column.kind == "image":
        return value.get("path", "") if isinstance(value, dict) else str(value)
    if column.kind == "bool":
        return "true" if value else "false"
    return value


def slug(name: str) -> str:
    out = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()
    return out[:60] or "campaign"


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


# perturbation.jsonl (annotation/services/exports.py `_perturbation_rows`): one row per
# perturbed item of the campaign's studies, whatever the export's format (docs/exports.md).
PERTURBATION_COLUMNS = [
    Column("perturbed_item_id", "int", "the perturbed item (one per study, example and level)"),
    Column("study_id", "int", "the perturbation study"),
    Column("study", "string", "the study's name"),
    Column("perturbation", "string", "the perturbation (docs/perturbation.md lists them)"),
    Column("modality", "string", "the modality perturbed"),
    Column("seed", "int", "the study's seed: (example, perturbation, level, seed) gives the value"),
    Column("level_index", "int", "the rung of the ladder, 0 the unperturbed example"),
    Column("level", "float", "the perturbation's level at that rung"),
    Column("example_id", "int", "the base example"),
    Column("example_external_id", "string", "the base example's id in its source"),
    Column("gold_label", "string", "the base example's label (null when it has none)"),
    Column(
        "input_<modality>",
        "value",
        "the values people and models saw; images as {sha256, path} with the file under media/",
    ),
    Column(
        "labels",
        "json",
        "the human labels of the item: annotator, label, confidence "
        "(1-5), is_gold, time_spent_ms (up to the export's snapshot)",
    ),
]


def datasheet(
    *,
    campaign: Mapping[str, Any],
    dataset: Mapping[str, Any],
    fmt: str,
    files: Iterable[str],
    counts: Mapping[str, Any],
    agreement: Mapping[str, Any],
    tables: Mapping[str, list[Column]],
    models: Sequence[str],
    as_of: str,
    hf_header: str = "",
    analyses: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The README.md of an archive: what the campaign was, how it was set up, how much it
    holds, how far annotators agreed, and what every column means."""
    lines: list[str] = []
    if hf_header:
        lines += [hf_header.rstrip(), ""]
    lines += [
        f"# {campaign['name']} — Counterpoint export",
        "",
        f"Exported as `{fmt}`; rows as of {as_of} (annotations and edits submitted up to the "
        "moment the export was requested).",
        "",
        "## Campaign",
        "",
        f"- dataset: **{dataset['name']}** — modalities "
        + ", ".join(f"{m['name']} ({m['kind']})" for m in dataset["modalities"])
        + "; labels "
        + ", ".join(f"`{label}`" for label in dataset["label_space"]),
        f"- status: {campaign['status']}",
        "- models scored on every edit: " + (", ".join(models) if models else "none"),
        "",
        "### Instructions",
        "",
        campaign.get("instructions") or "_(none)_",
        "",
        "### Settings",
        "",
        "| setting | value |",
        "| --- | --- |",
    ]
    for key, value in campaign["settings"].items():
        lines.append(f"| {key} | {_md_escape(json_cell(value))} |")
    lines += ["", "## Counts", "", "| what | count |", "| --- | --- |"]
    for key, value in counts.items():
        lines.append(f"| {key} | {value} |")
    lines += ["", "## Agreement on the labels of the originals", ""]
    if agreement.get("units", 0):
        lines += [
            "| figure | value |",
            "| --- | --- |",
        ]
        for key, value in agreement.items():
            lines.append(f"| {key} | {_fmt_number(value)} |")
        lines += [
            "",
            "Krippendorff's alpha (nominal) over every example with at least two labels "
            "(`units`); Fleiss' kappa over the examples with exactly `fleiss_raters` labels. "
            "Computed on at most `units_cap` examples, the first by id.",
        ]
    else:
        lines.append("No example has two labels yet: no agreement figure.")
    lines += ["", "## Analyses", ""]
    if analyses:
        lines += [
            "Results of the campaign's analysis jobs that had finished when the export was "
            "requested (docs/analysis.md defines every figure); each file is the stored result.",
            "",
            "| file | job | method | model | variant | finished |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for a in analyses:
            lines.append(
                f"| `{a['file']}` | {a['job']} | {a['method']} | {_md_escape(a['model'])} | "
                f"{_md_escape(a['variant'])} | {a['finished']} |"
            )
    else:
        lines.append("No analysis of this campaign had finished when the export was requested.")
    lines += ["", "## Files", ""]
    lines += [f"- `{name}`" for name in files]
    lines += [
        "",
        "Nested fields (kind `json`) are JSON strings in CSV and Parquet and JSON values in "
        "JSONL. Images are files under `media/` named by SHA-256 in JSONL and CSV (the cell "
        "holds the path), and `{bytes, path}` structs (the Hugging Face `datasets` Image "
        "feature) in Parquet.",
    ]
    shown = dict(tables)
    if any(str(name) == "perturbation.jsonl" for name in files):
        shown["perturbation.jsonl"] = PERTURBATION_COLUMNS
    for table, cols in shown.items():
        lines += ["", f"## Columns of `{table}`", "", "| column | kind | meaning |"]
        lines.append("| --- | --- | --- |")
        for col in cols:
            lines.append(f"| `{col.name}` | {col.kind} | {_md_escape(col.meaning)} |")
    return "\n".join(lines) + "\n"


def _fmt_number(value: Any) -> str:
    if isinstance(value, float):
        return "undefined" if value != value else f"{value:.4f}"
    return "—" if value is None else str(value)
