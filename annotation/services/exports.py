"""Exports of a campaign (docs/exports.md): one zip archive per export job holding the
annotations file, the pairs file (one row per counterfactual edit), the media they use (JSONL,
CSV) and a datasheet (README.md).

Streamed: rows are read in keyset batches of BATCH_ROWS (one query per table and batch, plus
one for the batch's validations and one for its images) and written to the archive batch by
batch, so memory stays flat whatever the campaign's size. What grows with the campaign is only
the set of distinct image addresses a JSONL/CSV archive must copy in (about 100 bytes each).

Immutable and stored once: an export covers the rows that existed when it was requested (the
highest annotation and edit ids are kept in the job's params), the archive's bytes are a
function of those rows (fixed entry times and order), it is written to a temporary file and
renamed to `<campaign>-<UTC time>-<sha256 prefix>.zip` under MEDIA_ROOT/exports/. A job run
twice, or taken over from a dead worker, renames the same bytes onto the same name."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import time
import uuid
import zipfile
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
from django.conf import settings
from django.db import transaction
from django.db.models import Max, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from annotation import export_format as fmtmod
from annotation.export_format import FORMATS, Column
from annotation.models import (
    Annotation,
    Campaign,
    CounterfactualEdit,
    Job,
    Media,
    PerturbationLabel,
    PerturbedItem,
    Validation,
)
from counterpoint.errors import NotFound, ValidationFailed

BATCH_ROWS = 5000
# Bytes of image data kept in memory for Parquet (images repeat across rows of one example).
IMAGE_CACHE_BYTES = 32 * 1024 * 1024
# Agreement is computed over at most this many examples (the first by id): the figures are
# estimates on big campaigns, and their memory stays bounded.
AGREEMENT_UNITS_CAP = 20_000
EXPORTS_DIR = "exports"
_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}

Progress = Callable[[int, int], None]
Flush = Callable[[str, int], None]


def exports_root() -> Path:
    root = Path(settings.MEDIA_ROOT) / EXPORTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    return root


@dataclass
class Snapshot:
    """Which rows an export covers: everything submitted up to `as_of`."""

    as_of: datetime
    max_annotation_id: int
    max_edit_id: int
    # The analysis results (models_bridge.AnalysisResult ids) of the campaign's analysis jobs
    # that had finished when the export was requested: results are immutable, so the ids fix
    # the archive's analyses/ files.
    analysis_results: list[int] = field(default_factory=list)
    # Perturbation studies' labels (PERTURBATION_FILE); 0 on jobs made before studies existed.
    max_perturbation_label_id: int = 0

    def as_params(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "max_annotation_id": self.max_annotation_id,
            "max_edit_id": self.max_edit_id,
            "analysis_results": list(self.analysis_results),
            "max_perturbation_label_id": self.max_perturbation_label_id,
        }

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Snapshot:
        return cls(
            as_of=datetime.fromisoformat(params["as_of"]),
            max_annotation_id=int(params["max_annotation_id"]),
            max_edit_id=int(params["max_edit_id"]),
            # Jobs requested before analyses were exported have none.
            analysis_results=[int(x) for x in params.get("analysis_results") or []],
            max_perturbation_label_id=int(params.get("max_perturbation_label_id", 0)),
        )


def export_snapshot(*, campaign: Campaign) -> Snapshot:
    from models_bridge.models import AnalysisResult

    now = timezone.now().astimezone(UTC).replace(microsecond=0)
    max_a = Annotation.objects.filter(campaign=campaign).aggregate(m=Max("id"))["m"] or 0
    max_e = CounterfactualEdit.objects.filter(campaign=campaign).aggregate(m=Max("id"))["m"] or 0
    results = AnalysisResult.objects.filter(
        job__campaign=campaign, job__kind=Job.Kind.ANALYSIS, job__status=Job.Status.SUCCEEDED
    ).order_by("id")
    max_p = (
        PerturbationLabel.objects.filter(study__campaign=campaign).aggregate(m=Max("id"))["m"] or 0
    )
    return Snapshot(
        as_of=now,
        max_annotation_id=max_a,
        max_edit_id=max_e,
        analysis_results=list(results.values_list("id", flat=True)),
        max_perturbation_label_id=max_p,
    )


def _write_analyses(zout: _ZipOut, snapshot: Snapshot) -> list[dict[str, Any]]:
    """The snapshot's analysis results as analyses/<job>-<method>.json (sorted keys, so the
    same results give the same bytes); returns what the datasheet lists of each."""
    from models_bridge.models import AnalysisResult

    listed = []
    rows = AnalysisResult.objects.filter(id__in=snapshot.analysis_results).select_related("job")
    for row in rows.order_by("id"):
        name = f"analyses/{row.job_id}-{row.method}.json"
        with zout.open(name) as fh:
            fh.write(orjson.dumps(row.result, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2))
        listed.append(
            {
                "file": name,
                "job": row.job_id,
                "method": row.method,
                "model": str(row.job.params.get("model", "")),
                "variant": str(row.result.get("variant", "")),
                "finished": _iso(row.created_at),
            }
        )
    return listed


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValidationFailed(
            f"format must be one of {', '.join(FORMATS)}, not {fmt!r}", code="export_format"
        )
    return fmt


def export_job_create(*, campaign: Campaign, created_by: Any, fmt: str) -> Job:
    """Create an export Job for `campaign` and enqueue it on commit. Precondition: the caller
    manages the campaign (access.campaign_for_user with the manager role)."""
    from annotation.services.jobs import job_create, job_enqueue
    from annotation.tasks import export_run

    check_format(fmt)
    with transaction.atomic():
        snapshot = export_snapshot(campaign=campaign)
        job = job_create(
            kind=Job.Kind.EXPORT,
            created_by=created_by,
            params={"format": fmt, **snapshot.as_params()},
            campaign=campaign,
            dataset=campaign.dataset,
        )
        job_enqueue(job=job, task=export_run)
    return job


# --- building the archive ---------------------------------------------------------------


@dataclass
class BuildReport:
    sha256: str
    size_bytes: int
    rows: dict[str, int]
    media_files: int
    flushes: int
    max_rows_per_flush: int
    seconds: float
    files: list[str] = field(default_factory=list)


class _Media:
    """Images of the rows: their archive path, their bytes (Parquet: a bounded LRU cache)
    and, for JSONL/CSV, the set of files to copy into the archive at the end."""

    def __init__(self, *, inline: bool) -> None:
        self.inline = inline
        self.files: dict[str, str] = {}  # sha256 → stored file (JSONL/CSV only)
        self.meta: dict[str, tuple[str, str]] = {}
        self.cache: OrderedDict[str, bytes | None] = OrderedDict()
        self.cache_bytes = 0

    def load(self, shas: set[str]) -> None:
        """One query for the batch's images not seen in this batch before."""
        self.meta = {
            sha: (file, _EXT.get(mime, "bin"))
            for sha, file, mime in Media.objects.filter(sha256__in=shas).values_list(
                "sha256", "file", "mime_type"
            )
        }

    def value(self, sha: Any) -> Any:
        if not isinstance(sha, str) or sha not in self.meta:
            return None
        file, ext = self.meta[sha]
        path = fmtmod.image_entry_path(sha, ext)
        if not self.inline:
            self.files[sha] = file
            return {"sha256": sha, "path": path}
        return {"bytes": self._bytes(sha, file), "path": path}

    def _bytes(self, sha: str, file: str) -> bytes | None:
        if sha in self.cache:
            self.cache.move_to_end(sha)
            return self.cache[sha]
        try:
            data: bytes | None = (Path(settings.MEDIA_ROOT) / file).read_bytes()
        except FileNotFoundError:
            data = None
        self.cache[sha] = data
        self.cache_bytes += len(data or b"")
        while self.cache_bytes > IMAGE_CACHE_BYTES and len(self.cache) > 1:
            _, old = self.cache.popitem(last=False)
            self.cache_bytes -= len(old or b"")
        return data


def _iso(value: Any) -> str:
    return value.astimezone(UTC).isoformat() if value is not None else ""


def _values(prefix: str, values: Any, modalities: list[dict[str, Any]], media: _Media) -> dict:
    out: dict[str, Any] = {}
    values = values if isinstance(values, dict) else {}
    for m in modalities:
        v = values.get(m["name"])
        if m["kind"] == "image":
            out[f"{prefix}{m['name']}"] = media.value(v)
        elif m["kind"] == "text":
            out[f"{prefix}{m['name']}"] = v
        else:
            out[f"{prefix}{m['name']}"] = v
    return out


def _image_shas(values: Any, images: list[str]) -> set[str]:
    if not isinstance(values, dict):
        return set()
    return {v for name in images if isinstance(v := values.get(name), str)}


# A nested field is carried as the database's JSON text, never decoded: JSONL embeds it as
# it is (orjson.Fragment), CSV and Parquet write it as the string it already is.
RawWrap = Callable[[str], Any]


# JSON columns read as text (alias → column): decoding and re-encoding every nested field
# of a million rows would cost more than the rest of the export.
ANNOTATION_JSON = {"raw_values": "example__values", "raw_evidence": "evidence"}
EDIT_JSON = {
    "raw_values": "example__values",
    "raw_edited": "edited_values",
    "raw_minimality": "minimality",
    "raw_scores": "scores",
    "raw_evidence": "annotation__evidence",
}


def _raw_for(fmt: str) -> RawWrap:
    return orjson.Fragment if fmt == "jsonl" else str


def _decoded(value: Any) -> Any:
    return None if value is None else orjson.loads(value)


ANNOTATION_FIELDS = (
    "id",
    "example_id",
    "example__external_id",
    "example__split",
    "example__label",
    "is_gold",
    "annotator__username",
    "label",
    "confidence",
    "rationale",
    "reliance",
    "reliance_modality",
    "time_spent_ms",
    "late",
    "edit__id",
    "created_at",
)

EDIT_FIELDS = (
    "id",
    "annotation_id",
    "example_id",
    "example__external_id",
    "example__split",
    "example__label",
    "author__username",
    "modality",
    "original_label",
    "target_label",
    "status",
    "validations_count",
    "validations_agree",
    "annotation__reliance",
    "annotation__reliance_modality",
    "annotation__rationale",
    "annotation__confidence",
    "annotation__assignment__attempts_count",
    "round__number",
    "created_at",
)


def _keyset(
    qs: Any, fields: tuple[str, ...], raw_json: dict[str, str], batch_rows: int
) -> Iterator[list[dict[str, Any]]]:
    """Batches of rows in id order, each one query (`id > last`), so no cursor stays open
    across writes and memory holds one batch. `raw_json` columns come as JSON text."""
    qs = qs.annotate(**{alias: Cast(col, TextField()) for alias, col in raw_json.items()})
    fields = (*fields, *raw_json)
    last = 0
    while True:
        rows = list(qs.filter(id__gt=last).order_by("id").values(*fields)[:batch_rows])
        if not rows:
            return
        yield rows
        last = rows[-1]["id"]
        if len(rows) < batch_rows:
            return


def _annotation_rows(
    campaign: Campaign,
    snap: Snapshot,
    modalities: list[dict[str, Any]],
    media: _Media,
    n: int,
    raw: RawWrap,
) -> Iterator[list[dict[str, Any]]]:
    """Rows keyed by column name, in the columns' order (export_format.columns)."""
    images = [m["name"] for m in modalities if m["kind"] == "image"]
    qs = Annotation.objects.filter(campaign=campaign, id__lte=snap.max_annotation_id)
    for batch in _keyset(qs, ANNOTATION_FIELDS, ANNOTATION_JSON, n):
        values = [_decoded(r["raw_values"]) for r in batch]
        if images:
            media.load(set().union(*(_image_shas(v, images) for v in values)))
        out = []
        for r, example_values in zip(batch, values, strict=True):
            row = {
                "annotation_id": r["id"],
                "example_id": r["example_id"],
                "example_external_id": r["example__external_id"],
                "split": r["example__split"],
                "gold_label": r["example__label"],
                "is_gold": r["is_gold"],
                "annotator": r["annotator__username"],
                "label": r["label"],
                "confidence": r["confidence"],
                "rationale": r["rationale"],
                "reliance": r["reliance"],
                "reliance_modality": r["reliance_modality"],
                "evidence": None if r["raw_evidence"] is None else raw(r["raw_evidence"]),
                "time_spent_ms": r["time_spent_ms"],
                "late": r["late"],
                "edit_id": r["edit__id"],
                "created_at": _iso(r["created_at"]),
            }
            row.update(_values("input_", example_values, modalities, media))
            out.append(row)
        yield out


PERTURBATION_FILE = "perturbation.jsonl"


def _perturbation_rows(
    campaign: Campaign, snap: Snapshot, modalities: list[dict[str, Any]], media: _Media, n: int
) -> Iterator[list[dict[str, Any]]]:
    """One row per perturbed item of the campaign's studies (study, example, level, the
    values annotators and models saw) with the human labels it got up to the snapshot."""
    images = [m["name"] for m in modalities if m["kind"] == "image"]
    last = 0
    base = PerturbedItem.objects.filter(study__campaign=campaign).order_by("id")
    while True:
        batch = list(
            base.filter(id__gt=last).values(
                "id",
                "study_id",
                "study__name",
                "study__perturbation",
                "study__modality",
                "study__seed",
                "level_index",
                "level",
                "values",
                "example_id",
                "example__external_id",
                "example__label",
            )[:n]
        )
        if not batch:
            return
        last = batch[-1]["id"]
        labels: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for item_id, who, label, confidence, is_gold, spent in (
            PerturbationLabel.objects.filter(
                item_id__in=[b["id"] for b in batch], id__lte=snap.max_perturbation_label_id
            )
            .order_by("id")
            .values_list(
                "item_id", "annotator__username", "label", "confidence", "is_gold", "time_spent_ms"
            )
        ):
            labels[item_id].append(
                {
                    "annotator": who,
                    "label": label,
                    "confidence": confidence,
                    "is_gold": is_gold,
                    "time_spent_ms": spent,
                }
            )
        if images:
            media.load(set().union(*(_image_shas(b["values"], images) for b in batch)))
        out: list[dict[str, Any]] = []
        for b in batch:
            row: dict[str, Any] = {
                "perturbed_item_id": b["id"],
                "study_id": b["study_id"],
                "study": b["study__name"],
                "perturbation": b["study__perturbation"],
                "modality": b["study__modality"],
                "seed": b["study__seed"],
                "level_index": b["level_index"],
                "level": b["level"],
                "example_id": b["example_id"],
                "example_external_id": b["example__external_id"],
                "gold_label": b["example__label"],
                "labels": labels.get(b["id"], []),
            }
            row.update(_values("input_", b["values"], modalities, media))
            out.append(row)
        yield out


def _model_names(campaign: Campaign) -> dict[str, str]:
    from models_bridge.models import ModelVersion

    return {
        str(pk): f"{name}@{version}"
        for pk, name, version in ModelVersion.objects.values_list("id", "name", "version")
    }


def _pair_rows(
    campaign: Campaign,
    snap: Snapshot,
    modalities: list[dict[str, Any]],
    media: _Media,
    n: int,
    names: dict[str, str],
    raw: RawWrap,
) -> Iterator[list[dict[str, Any]]]:
    """Rows keyed by column name, in the columns' order (export_format.columns)."""
    images = [m["name"] for m in modalities if m["kind"] == "image"]
    kinds = {m["name"]: m["kind"] for m in modalities}
    qs = CounterfactualEdit.objects.filter(campaign=campaign, id__lte=snap.max_edit_id)
    for batch in _keyset(qs, EDIT_FIELDS, EDIT_JSON, n):
        for r in batch:
            r["example__values"] = _decoded(r.pop("raw_values"))
            r["edited_values"] = _decoded(r.pop("raw_edited"))
            r["minimality"] = _decoded(r.pop("raw_minimality"))
            r["scores"] = _decoded(r.pop("raw_scores"))
        ids = [r["id"] for r in batch]
        votes: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for v in (
            Validation.objects.filter(edit_id__in=ids)
            .order_by("edit_id", "id")
            .values("edit_id", "validator__username", "label", "broken", "comment", "created_at")
        ):
            votes[v["edit_id"]].append(
                {
                    "validator": v["validator__username"],
                    "label": v["label"],
                    "broken": v["broken"],
                    "comment": v["comment"],
                    "created_at": _iso(v["created_at"]),
                }
            )
        if images:
            shas: set[str] = set()
            for r in batch:
                shas |= _image_shas(r["example__values"], images)
                shas |= _image_shas(r["edited_values"], images)
            media.load(shas)
        out = []
        for r in batch:
            scores = {names.get(k, f"model-{k}"): v for k, v in (r["scores"] or {}).items()}
            row = {
                "edit_id": r["id"],
                "annotation_id": r["annotation_id"],
                "example_id": r["example_id"],
                "example_external_id": r["example__external_id"],
                "split": r["example__split"],
                "gold_label": r["example__label"],
                "author": r["author__username"],
                "modality": r["modality"],
                "original_label": r["original_label"],
                "target_label": r["target_label"],
                "minimality": r["minimality"],
                "minimality_value": fmtmod.minimality_value(
                    kinds.get(r["modality"]), r["minimality"] or {}
                ),
                "scores": dict(sorted(scores.items())),
                "status": r["status"],
                "validations_count": r["validations_count"],
                "validations_agree": r["validations_agree"],
                "validations": votes.get(r["id"], []),
                "reliance": r["annotation__reliance"],
                "reliance_modality": r["annotation__reliance_modality"],
                "evidence": None if r["raw_evidence"] is None else raw(r["raw_evidence"]),
                "rationale": r["annotation__rationale"],
                "confidence": r["annotation__confidence"],
                "attempts_count": r["annotation__assignment__attempts_count"],
                "round": r["round__number"],
                "created_at": _iso(r["created_at"]),
            }
            for m in modalities:
                row.update(_values("original_", r["example__values"], [m], media))
                row.update(_values("edited_", r["edited_values"], [m], media))
            out.append(row)
        yield out


class _ZipOut:
    """Entries with fixed times, in a fixed order: the same rows give the same bytes."""

    def __init__(self, path: Path, as_of: datetime) -> None:
        self.zf = zipfile.ZipFile(path, "w", allowZip64=True)
        self.date_time = as_of.astimezone(UTC).timetuple()[:6]
        self.names: list[str] = []

    def open(self, name: str, *, compress: bool = True) -> IO[bytes]:
        info = zipfile.ZipInfo(name, date_time=self.date_time)  # type: ignore[arg-type]
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        self.names.append(name)
        if compress:
            info._compresslevel = 1  # type: ignore[attr-defined]
        return self.zf.open(info, "w", force_zip64=True)

    def add_file(self, name: str, src: Path, *, compress: bool) -> None:
        with src.open("rb") as fh, self.open(name, compress=compress) as out:
            while chunk := fh.read(1 << 20):
                out.write(chunk)

    def close(self) -> None:
        self.zf.close()


def _pa_type(col: Column) -> Any:
    import pyarrow as pa

    return {
        "int": pa.int64(),
        "float": pa.float64(),
        "bool": pa.bool_(),
        "string": pa.string(),
        "json": pa.string(),
        "image": pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
    }[col.kind]


def _hf_feature(col: Column) -> dict[str, Any]:
    if col.kind == "image":
        return {"_type": "Image"}
    dtype = {"int": "int64", "float": "float64", "bool": "bool"}.get(col.kind, "string")
    return {"dtype": dtype, "_type": "Value"}


def parquet_schema(cols: list[Column]) -> Any:
    """The Arrow schema with the `datasets` feature metadata, so load_dataset gives Image
    features for the image columns (and pandas reads the same file as plain structs)."""
    import pyarrow as pa

    features = {c.name: _hf_feature(c) for c in cols}
    meta = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
    return pa.schema([pa.field(c.name, _pa_type(c)) for c in cols], metadata=meta)


def _parquet_cell(col: Column, value: Any) -> Any:
    if col.kind == "json" and value is not None and not isinstance(value, str):
        return fmtmod.json_cell(value)
    return value


def _hf_header(tables: list[str]) -> str:
    lines = ["---", "configs:"]
    for i, table in enumerate(tables):
        lines += [
            f"- config_name: {table}",
            "  data_files:",
            "  - split: train",
            f"    path: {table}/*.parquet",
        ]
        if i == 0:
            lines.append("  default: true")
    lines.append("---")
    return "\n".join(lines)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _campaign_facts(campaign: Campaign) -> dict[str, Any]:
    from annotation.services.campaigns import SETTABLE_FIELDS

    settings_ = {
        f: getattr(campaign, f)
        for f in SETTABLE_FIELDS
        if f not in ("instructions", "name", "dataset", "status")
    }
    return {
        "name": campaign.name,
        "status": campaign.status,
        "instructions": campaign.instructions,
        "settings": settings_,
    }


def export_agreement(*, campaign: Campaign, snap: Snapshot) -> dict[str, Any]:
    """Agreement on the labels of the originals (annotation/agreement.py), over at most
    AGREEMENT_UNITS_CAP examples with two or more labels, read in example order."""
    from annotation.agreement import fleiss_kappa, krippendorff_alpha

    units: list[dict[int, str]] = []
    current: int | None = None
    for example_id, annotator_id, label in (
        Annotation.objects.filter(campaign=campaign, id__lte=snap.max_annotation_id)
        .order_by("example_id", "annotator_id")
        .values_list("example_id", "annotator_id", "label")
        .iterator(chunk_size=BATCH_ROWS)
    ):
        if example_id != current:
            if units and len(units[-1]) < 2:
                units.pop()
            if len(units) >= AGREEMENT_UNITS_CAP:
                break
            units.append({})
            current = example_id
        units[-1][annotator_id] = label
    if units and len(units[-1]) < 2:
        units.pop()
    result: dict[str, Any] = {"units": len(units), "units_cap": AGREEMENT_UNITS_CAP}
    if not units:
        return result
    raters = sorted({a for u in units for a in u})
    data = [[u.get(a) for u in units] for a in raters]
    result["raters"] = len(raters)
    result["krippendorff_alpha_nominal"] = krippendorff_alpha(data, level="nominal")
    sizes: dict[int, int] = defaultdict(int)
    for u in units:
        sizes[len(u)] += 1
    k = max(sizes, key=lambda s: (sizes[s], s))
    labels = list(campaign.dataset.label_space)
    extra = sorted({lab for u in units for lab in u.values()} - set(labels))
    cats = labels + extra
    table = [[list(u.values()).count(c) for c in cats] for u in units if len(u) == k]
    result["fleiss_raters"] = k
    result["fleiss_units"] = len(table)
    result["fleiss_kappa"] = fleiss_kappa(table) if len(table) >= 1 else None
    return result


def export_build(
    *,
    campaign: Campaign,
    fmt: str,
    snapshot: Snapshot,
    dest: Path,
    progress: Progress | None = None,
    batch_rows: int = BATCH_ROWS,
    on_flush: Flush | None = None,
) -> BuildReport:
    """Write the archive of `campaign` in format `fmt` to `dest` (overwritten), reading and
    writing `batch_rows` rows at a time. No transaction is held while it writes."""
    check_format(fmt)
    started = time.monotonic()
    dataset = campaign.dataset
    modalities = list(dataset.modalities)
    tables = {t: fmtmod.columns(t, modalities) for t in fmtmod.TABLES}
    total = (
        Annotation.objects.filter(campaign=campaign, id__lte=snapshot.max_annotation_id).count()
        + CounterfactualEdit.objects.filter(campaign=campaign, id__lte=snapshot.max_edit_id).count()
    )
    names = _model_names(campaign)
    campaign_models = sorted(
        names.get(str(pk), f"model-{pk}")
        for pk in campaign.model_versions.values_list("id", flat=True)
    )
    parquet = fmt in ("parquet", "hf")
    media = _Media(inline=parquet)
    raw = _raw_for(fmt)
    done = 0
    rows = {t: 0 for t in fmtmod.TABLES}
    flushes = 0
    max_rows = 0
    zout = _ZipOut(dest, snapshot.as_of)
    scratch: list[Path] = []
    try:

        def batches(table: str) -> Iterator[list[dict[str, Any]]]:
            if table == "annotations":
                return _annotation_rows(campaign, snapshot, modalities, media, batch_rows, raw)
            return _pair_rows(campaign, snapshot, modalities, media, batch_rows, names, raw)

        def flushed(table: str, n: int) -> None:
            nonlocal done, flushes, max_rows
            rows[table] += n
            done += n
            flushes += 1
            max_rows = max(max_rows, n)
            if on_flush is not None:
                on_flush(table, n)
            if progress is not None:
                progress(done, total)

        if progress is not None:
            progress(0, total)
        for table in fmtmod.TABLES:
            cols = tables[table]
            if parquet:
                import pyarrow as pa
                import pyarrow.parquet as pq

                schema = parquet_schema(cols)
                tmp = dest.with_name(f"{dest.name}.{table}.parquet")
                scratch.append(tmp)
                with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
                    for batch in batches(table):
                        arrays = {
                            c.name: [_parquet_cell(c, r.get(c.name)) for r in batch] for c in cols
                        }
                        writer.write_table(pa.table(arrays, schema=schema))
                        del arrays
                        flushed(table, len(batch))
                    if rows[table] == 0:
                        writer.write_table(schema.empty_table())
                name = (
                    f"{table}/train-00000-of-00001.parquet" if fmt == "hf" else f"{table}.parquet"
                )
                zout.add_file(name, tmp, compress=False)
                tmp.unlink()
            else:
                names_ = [c.name for c in cols]
                if fmt == "jsonl":
                    with zout.open(f"{table}.jsonl") as stream:
                        for batch in batches(table):
                            stream.write(
                                b"".join(
                                    orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in batch
                                )
                            )
                            flushed(table, len(batch))
                    continue
                with (
                    zout.open(f"{table}.csv") as stream,
                    io.TextIOWrapper(stream, encoding="utf-8", newline="") as text,
                ):
                    writer_csv = csv.writer(text)
                    writer_csv.writerow(names_)
                    for batch in batches(table):
                        writer_csv.writerows(
                            [fmtmod.csv_cell(c, r.get(c.name)) for c in cols] for r in batch
                        )
                        flushed(table, len(batch))
        # Perturbation studies (docs/perturbation.md): one JSON Lines file in every format,
        # its images always as files under media/ (they are not in the tables' rows).
        perturbed = _Media(inline=False)
        perturbed_rows = 0
        if PerturbedItem.objects.filter(study__campaign=campaign).exists():
            with zout.open(PERTURBATION_FILE) as stream:
                for batch in _perturbation_rows(
                    campaign, snapshot, modalities, perturbed, batch_rows
                ):
                    stream.write(
                        b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in batch)
                    )
                    perturbed_rows += len(batch)
        media_files = 0
        copied: set[str] = set()
        for sha in sorted(perturbed.files):
            if not parquet and sha in media.files:
                continue  # copied below with the tables' images
            src = Path(settings.MEDIA_ROOT) / perturbed.files[sha]
            if src.exists():
                ext = src.suffix.lstrip(".") or "bin"
                zout.add_file(fmtmod.image_entry_path(sha, ext), src, compress=False)
                copied.add(sha)
                media_files += 1
        if not parquet:
            for sha in sorted(set(media.files) - copied):
                src = Path(settings.MEDIA_ROOT) / media.files[sha]
                if src.exists():
                    ext = src.suffix.lstrip(".") or "bin"
                    zout.add_file(fmtmod.image_entry_path(sha, ext), src, compress=False)
                    media_files += 1
        analyses = _write_analyses(zout, snapshot)
        agreement = export_agreement(campaign=campaign, snap=snapshot)
        counts = {
            "annotations": rows["annotations"],
            "pairs (counterfactual edits)": rows["pairs"],
            **{
                f"edits {status}": n
                for status, n in _edit_counts(campaign=campaign, snap=snapshot).items()
            },
            "annotators": Annotation.objects.filter(
                campaign=campaign, id__lte=snapshot.max_annotation_id
            )
            .values("annotator_id")
            .distinct()
            .count(),
            "examples in the pool": campaign.items.count(),
            "media files": media_files,
            "analysis results": len(analyses),
        }
        if perturbed_rows:
            counts["perturbed items (perturbation.jsonl)"] = perturbed_rows
        # The images are one line, not one per file: an archive may hold a hundred thousand.
        files = [n for n in zout.names if not n.startswith("media/")]
        if media_files:
            files.append(f"media/ ({media_files} images named <sha256>.<ext>)")
        files.append("README.md")
        readme = fmtmod.datasheet(
            campaign=_campaign_facts(campaign),
            dataset={
                "name": dataset.name,
                "modalities": modalities,
                "label_space": dataset.label_space,
            },
            fmt=fmt,
            files=files,
            counts=counts,
            agreement=agreement,
            tables=tables,
            models=campaign_models,
            analyses=analyses,
            as_of=snapshot.as_of.isoformat(),
            hf_header=_hf_header(list(fmtmod.TABLES)[::-1]) if fmt == "hf" else "",
        )
        with zout.open("README.md") as fh:
            fh.write(readme.encode())
    finally:
        zout.close()
        for tmp in scratch:
            tmp.unlink(missing_ok=True)
    return BuildReport(
        sha256=_sha256_file(dest),
        size_bytes=dest.stat().st_size,
        rows=rows,
        media_files=media_files,
        flushes=flushes,
        max_rows_per_flush=max_rows,
        seconds=time.monotonic() - started,
        files=files,
    )


def _edit_counts(*, campaign: Campaign, snap: Snapshot) -> dict[str, int]:
    from django.db.models import Count

    found = dict(
        CounterfactualEdit.objects.filter(campaign=campaign, id__lte=snap.max_edit_id)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {s: found.get(s, 0) for s in CounterfactualEdit.Status.values}


def export_file_name(*, campaign: Campaign, as_of: datetime, sha256: str) -> str:
    stamp = as_of.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{fmtmod.slug(campaign.name)}-{stamp}-{sha256[:16]}.zip"


@dataclass
class ExportReport:
    name: str
    rel_path: str
    build: BuildReport

    def as_dict(self) -> dict[str, Any]:
        return {
            "file_name": self.name,
            "sha256": self.build.sha256,
            "size_bytes": self.build.size_bytes,
            "rows": self.build.rows,
            "media_files": self.build.media_files,
            "files": self.build.files,
            "seconds": round(self.build.seconds, 3),
        }


def export_write(
    *,
    campaign: Campaign,
    fmt: str,
    snapshot: Snapshot,
    directory: Path,
    progress: Progress | None = None,
    final_path: Path | None = None,
) -> tuple[Path, BuildReport]:
    """Build the archive in a temporary file beside its destination and rename it into place
    (atomic): under `directory` with its immutable name, or at `final_path` when given."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".tmp-{uuid.uuid4().hex}.zip"
    try:
        report = export_build(
            campaign=campaign, fmt=fmt, snapshot=snapshot, dest=tmp, progress=progress
        )
        target = final_path or directory / export_file_name(
            campaign=campaign, as_of=snapshot.as_of, sha256=report.sha256
        )
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target, report


def _sweep_stale_temps(directory: Path) -> None:
    """Temporary files of runs whose worker died mid-write: none can still be written once
    they are older than the task's hard time limit."""
    cutoff = time.time() - float(getattr(settings, "CELERY_TASK_TIME_LIMIT", 3900)) - 60
    for path in directory.glob(".tmp-*"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except FileNotFoundError:
            pass


def export_job_run(*, job: Job, progress: Progress) -> ExportReport:
    """The work of an export job (annotation/tasks.py export_run). Writes nothing to the
    database: the task's finish records the file on the job."""
    if job.campaign_id is None:
        raise NotFound("the export's campaign no longer exists", code="export_campaign_gone")
    campaign = Campaign.objects.select_related("dataset").get(pk=job.campaign_id)
    snapshot = Snapshot.from_params(job.params)
    _sweep_stale_temps(exports_root())
    path, build = export_write(
        campaign=campaign,
        fmt=str(job.params.get("format")),
        snapshot=snapshot,
        directory=exports_root(),
        progress=progress,
    )
    return ExportReport(name=path.name, rel_path=f"{EXPORTS_DIR}/{path.name}", build=build)


def export_discard(*, rel_path: str) -> None:
    """A run whose finish was refused (another run owns the job now) removes its file,
    unless a job records it: a takeover of the same snapshot writes the same bytes onto the
    same name, which then belongs to the winner."""
    if Job.objects.filter(result_file=rel_path).exists():
        return
    (Path(settings.MEDIA_ROOT) / rel_path).unlink(missing_ok=True)


def export_file_path(*, job: Job) -> Path:
    """The stored archive of a finished export job; 404 when it has none (yet)."""
    if job.status != Job.Status.SUCCEEDED or not job.result_file:
        raise NotFound(f"export {job.pk} has no file (it is {job.status})", code="export_not_ready")
    path = Path(settings.MEDIA_ROOT) / str(job.result_file.name)
    if not path.exists():
        raise NotFound("the export's file is missing", code="export_file_missing")
    return path
