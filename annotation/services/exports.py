"""Exports of a campaign (docs/exports.md): one zip archive per export job holding the
annotations file, the pairs file (one row per counterfactual edit), the media they use (JSONL,
CSV) and a datasheet (README.md).

Streamed: rows are read in keyset batches of BATCH_ROWS (one query per table and batch, plus
one for the batch's validations and one for its images) as the database driver's tuples (no
model objects, no per-row converters), written to the archive batch by batch and released
before the next batch is read, so memory stays flat whatever the campaign's size. What grows with the campaign is only
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
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import IO, Any

import orjson
from django.conf import settings
from django.db import connections, transaction
from django.db.models import F, Max, TextField
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


def _db_iso(value: Any, tz: tzinfo | None) -> str:
    """A DateTimeField as _keyset reads it, as _iso writes the model's value: on SQLite the
    text Django stored (str() of the naive datetime in the connection's time zone), elsewhere
    the driver's aware datetime. The conversion Django's converters make, without their
    per-row cost; the text of a UTC connection is rewritten without parsing it."""
    if value is None:
        return ""
    if isinstance(value, str):
        if tz is UTC and value[10:11] == " " and len(value) in (19, 26):
            return f"{value[:10]}T{value[11:]}+00:00"
        value = datetime.fromisoformat(value)
    if value.tzinfo is None and tz is not None:  # tz is None only when USE_TZ is off
        value = value.replace(tzinfo=tz)
    return _iso(value)


def _stored_datetime(column: str, connection: Any) -> Any:
    """Read a DateTimeField as the database holds it: SQLite's text as it is (the driver
    would parse it per row, and _db_iso only rewrites it), other databases' timestamps."""
    return Cast(column, TextField()) if connection.vendor == "sqlite" else F(column)


# The value columns of a table: (column, modality name, is an image, from the edited side).
ValueColumns = list[tuple[str, str, bool, bool]]


def _value_columns(table: str, modalities: list[dict[str, Any]]) -> ValueColumns:
    """In the columns' order (export_format.columns): input_* for annotations; original_*
    then edited_* per modality for pairs."""
    out: ValueColumns = []
    for m in modalities:
        image = m["kind"] == "image"
        if table == "annotations":
            out.append((f"input_{m['name']}", m["name"], image, False))
        else:
            out.append((f"original_{m['name']}", m["name"], image, False))
            out.append((f"edited_{m['name']}", m["name"], image, True))
    return out


def _put_values(
    row: dict[str, Any], cols: ValueColumns, original: Any, edited: Any, media: _Media
) -> None:
    original = original if isinstance(original, dict) else {}
    edited = edited if isinstance(edited, dict) else {}
    for column, name, image, from_edited in cols:
        v = (edited if from_edited else original).get(name)
        row[column] = media.value(v) if image else v


def _image_shas(values: Any, images: list[str]) -> set[str]:
    if not isinstance(values, dict):
        return set()
    return {v for name in images if isinstance(v := values.get(name), str)}


@dataclass(frozen=True)
class _Json:
    """How a nested field goes into a row: JSONL embeds it as JSON (orjson.Fragment), CSV and
    Parquet hold the JSON string. `raw` takes the database's JSON text written unchanged
    (evidence); `value` a value picked apart on the way (scores renamed, minimality read),
    encoded as soon as its row is built, so a batch holds compact text, not decoded objects."""

    raw: Callable[[str], Any]
    value: Callable[[Any], Any]


def _fragment(value: Any) -> orjson.Fragment:
    # As text: orjson's bytes keep their whole 4 KiB buffer, the str is the JSON's size.
    return orjson.Fragment(orjson.dumps(value).decode())


def _json_for(fmt: str) -> _Json:
    if fmt == "jsonl":
        return _Json(raw=orjson.Fragment, value=_fragment)
    return _Json(raw=str, value=fmtmod.json_cell)


def _decoded(value: Any) -> Any:
    return None if value is None else orjson.loads(value)


# The columns read, in this order (the loops below unpack them so): ORM paths, then
# created_at (_stored_datetime), then JSON columns read as text (alias → column), decoded
# only where a value is picked out of them.
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
)
ANNOTATION_JSON = {"raw_evidence": "evidence", "raw_values": "example__values"}

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
)
EDIT_JSON = {
    "raw_minimality": "minimality",
    "raw_scores": "scores",
    "raw_evidence": "annotation__evidence",
    "raw_values": "example__values",
    "raw_edited": "edited_values",
}


def _keyset(
    qs: Any, fields: tuple[str, ...], raw_json: dict[str, str], batch_rows: int
) -> Iterator[list[tuple[Any, ...]]]:
    """Batches of rows in id order, each one query (`id > last`) run on the database cursor,
    so no cursor stays open across writes and memory holds one batch. A row is the driver's
    tuple of `fields`, created_at, then the `raw_json` aliases (JSON text): no model objects,
    no per-row converters (the callers convert the columns that need it: booleans, _db_iso)."""
    connection = connections[qs.db]
    qs = qs.annotate(
        raw_created=_stored_datetime("created_at", connection),
        **{alias: Cast(col, TextField()) for alias, col in raw_json.items()},
    )
    wanted = [*fields, "raw_created", *raw_json]
    last = 0
    while True:
        page = qs.filter(id__gt=last).order_by("id").values_list(*wanted)[:batch_rows]
        query = page.query
        selected = [*query.extra_select, *query.values_select, *query.annotation_select]
        if selected != wanted:  # Django selects fields before annotations
            raise RuntimeError(f"export read selects {selected}, not {wanted}")
        sql, params = query.get_compiler(using=page.db).as_sql()
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        if not rows:
            return
        yield rows
        last = rows[-1][0]
        if len(rows) < batch_rows:
            return
        del rows


def _annotation_rows(
    campaign: Campaign,
    snap: Snapshot,
    modalities: list[dict[str, Any]],
    media: _Media,
    n: int,
    nested: _Json,
) -> Iterator[list[dict[str, Any]]]:
    """Rows keyed by column name, in the columns' order (export_format.columns)."""
    images = [m["name"] for m in modalities if m["kind"] == "image"]
    value_cols = _value_columns("annotations", modalities)
    qs = Annotation.objects.filter(campaign=campaign, id__lte=snap.max_annotation_id)
    tz = connections[qs.db].timezone
    for batch in _keyset(qs, ANNOTATION_FIELDS, ANNOTATION_JSON, n):
        values = [_decoded(t[-1]) for t in batch]
        if images:
            media.load(set().union(*(_image_shas(v, images) for v in values)))
        out = []
        for (
            aid,
            example_id,
            external_id,
            split,
            gold_label,
            is_gold,
            annotator,
            label,
            confidence,
            rationale,
            reliance,
            reliance_modality,
            time_spent_ms,
            late,
            edit_id,
            created_at,
            evidence,
            _,
        ), example_values in zip(batch, values, strict=True):
            row = {
                "annotation_id": aid,
                "example_id": example_id,
                "example_external_id": external_id,
                "split": split,
                "gold_label": gold_label,
                "is_gold": bool(is_gold),
                "annotator": annotator,
                "label": label,
                "confidence": confidence,
                "rationale": rationale,
                "reliance": reliance,
                "reliance_modality": reliance_modality,
                "evidence": None if evidence is None else nested.raw(evidence),
                "time_spent_ms": time_spent_ms,
                "late": bool(late),
                "edit_id": edit_id,
                "created_at": _db_iso(created_at, tz),
            }
            _put_values(row, value_cols, example_values, None, media)
            out.append(row)
        del batch, values
        yield out
        del out


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
            _put_values(row, _value_columns("annotations", modalities), b["values"], None, media)
            out.append(row)
        yield out


def _model_names(campaign: Campaign) -> dict[str, str]:
    from models_bridge.models import ModelVersion

    return {
        str(pk): f"{name}@{version}"
        for pk, name, version in ModelVersion.objects.values_list("id", "name", "version")
    }


def _votes(campaign: Campaign, first: int, last: int) -> dict[int, list[dict[str, Any]]]:
    """The validations of a batch of the campaign's edits (ids `first`..`last`), in order:
    one query, by id range (a list of 5,000 ids costs more to bind than the rows to read)."""
    votes: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for edit_id, validator, label, broken, comment, created_at in (
        Validation.objects.filter(edit__gte=first, edit__lte=last, edit__campaign=campaign)
        .order_by("edit_id", "id")
        .values_list("edit_id", "validator__username", "label", "broken", "comment", "created_at")
    ):
        votes[edit_id].append(
            {
                "validator": validator,
                "label": label,
                "broken": broken,
                "comment": comment,
                "created_at": _iso(created_at),
            }
        )
    return votes


def _pair_rows(
    campaign: Campaign,
    snap: Snapshot,
    modalities: list[dict[str, Any]],
    media: _Media,
    n: int,
    names: dict[str, str],
    nested: _Json,
) -> Iterator[list[dict[str, Any]]]:
    """Rows keyed by column name, in the columns' order (export_format.columns)."""
    images = [m["name"] for m in modalities if m["kind"] == "image"]
    kinds = {m["name"]: m["kind"] for m in modalities}
    value_cols = _value_columns("pairs", modalities)
    qs = CounterfactualEdit.objects.filter(campaign=campaign, id__lte=snap.max_edit_id)
    tz = connections[qs.db].timezone
    for batch in _keyset(qs, EDIT_FIELDS, EDIT_JSON, n):
        sides = [(_decoded(t[-2]), _decoded(t[-1])) for t in batch]
        votes = _votes(campaign, batch[0][0], batch[-1][0])
        if images:
            shas: set[str] = set()
            for original, edited in sides:
                shas |= _image_shas(original, images)
                shas |= _image_shas(edited, images)
            media.load(shas)
        out = []
        for (
            edit_id,
            annotation_id,
            example_id,
            external_id,
            split,
            gold_label,
            author,
            modality,
            original_label,
            target_label,
            status,
            validations_count,
            validations_agree,
            reliance,
            reliance_modality,
            rationale,
            confidence,
            attempts_count,
            round_number,
            created_at,
            raw_minimality,
            raw_scores,
            evidence,
            _,
            _,
        ), (original, edited) in zip(batch, sides, strict=True):
            minimality = _decoded(raw_minimality)
            scores = {
                names.get(k, f"model-{k}"): v for k, v in (_decoded(raw_scores) or {}).items()
            }
            row = {
                "edit_id": edit_id,
                "annotation_id": annotation_id,
                "example_id": example_id,
                "example_external_id": external_id,
                "split": split,
                "gold_label": gold_label,
                "author": author,
                "modality": modality,
                "original_label": original_label,
                "target_label": target_label,
                "minimality": None if minimality is None else nested.value(minimality),
                "minimality_value": fmtmod.minimality_value(kinds.get(modality), minimality or {}),
                "scores": nested.value(dict(sorted(scores.items()))),
                "status": status,
                "validations_count": validations_count,
                "validations_agree": validations_agree,
                "validations": nested.value(votes.get(edit_id, [])),
                "reliance": reliance,
                "reliance_modality": reliance_modality,
                "evidence": None if evidence is None else nested.raw(evidence),
                "rationale": rationale,
                "confidence": confidence,
                "attempts_count": attempts_count,
                "round": round_number,
                "created_at": _db_iso(created_at, tz),
            }
            _put_values(row, value_cols, original, edited, media)
            out.append(row)
        del batch, sides, votes
        yield out
        del out


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


def _jsonl(rows: list[dict[str, Any]]) -> bytearray:
    """The lines of a batch. Each line is copied into one growing buffer as it is made, so
    its memory is reused at once: a list of a batch's lines joined at the end cost ten times
    as much (every line a fresh allocation that faults in new pages)."""
    out = bytearray()
    dumps, option = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    for row in rows:
        out += dumps(row, option=option)
    return out


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


def _parquet_column(col: Column, rows: list[dict[str, Any]]) -> list[Any]:
    """One column of a batch; nested values as JSON strings (raw JSON text stays as it is)."""
    name = col.name
    if col.kind != "json":
        return [r[name] for r in rows]
    return [
        fmtmod.json_cell(v) if v is not None and not isinstance(v, str) else v
        for v in (r[name] for r in rows)
    ]


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
    nested = _json_for(fmt)
    done = 0
    rows = {t: 0 for t in fmtmod.TABLES}
    flushes = 0
    max_rows = 0
    zout = _ZipOut(dest, snapshot.as_of)
    scratch: list[Path] = []
    try:

        def batches(table: str) -> Iterator[list[dict[str, Any]]]:
            if table == "annotations":
                return _annotation_rows(campaign, snapshot, modalities, media, batch_rows, nested)
            return _pair_rows(campaign, snapshot, modalities, media, batch_rows, names, nested)

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
                        record_batch = pa.RecordBatch.from_pydict(
                            {c.name: _parquet_column(c, batch) for c in cols}, schema=schema
                        )
                        writer.write_batch(record_batch, row_group_size=batch_rows)
                        del record_batch
                        flushed(table, len(batch))
                        del batch  # before the next one is read: one batch in memory
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
                            stream.write(_jsonl(batch))
                            flushed(table, len(batch))
                            del batch  # before the next one is read: one batch in memory
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
                        del batch  # before the next one is read: one batch in memory
        # Perturbation studies (docs/perturbation.md): one JSON Lines file in every format,
        # its images always as files under media/ (they are not in the tables' rows).
        perturbed = _Media(inline=False)
        perturbed_rows = 0
        if PerturbedItem.objects.filter(study__campaign=campaign).exists():
            with zout.open(PERTURBATION_FILE) as stream:
                for batch in _perturbation_rows(
                    campaign, snapshot, modalities, perturbed, batch_rows
                ):
                    stream.write(_jsonl(batch))
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
