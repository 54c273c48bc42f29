"""JSONL and CSV manifests: one example per line (CSV: per record).

JSONL line: {"external_id": "a1", "values": {"image": "imgs/a1.png", "text": "..."},
             "label": "yes", "split": "test", "metadata": {...}}  (label, split, metadata optional;
             `id` is accepted for external_id)
CSV: a header row with `external_id` (or `id`), one column per modality, optional `label`,
`split`, `metadata` (a JSON object) and `metadata.<key>` / `meta.<key>` columns (text, or the
type the schema file declares for the key: annotation.importers.metadata).

`read_manifest` validates every record and returns the good rows and every bad line; it never
stops at the first error, so a report lists all of them at once."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from annotation.importers import errors as E
from annotation.importers.errors import FieldProblem, LineError
from annotation.importers.images import ImageInfo, ImageReader
from annotation.importers.metadata import check_metadata_types, metadata_from_text
from annotation.schema import content_hash, tabular_value_ok

MAX_EXTERNAL_ID = 255
MAX_LABEL = 200
MAX_SPLIT = 50
JSONL_KEYS = ("external_id", "values", "label", "split", "metadata")
# Accepted spellings: `id` for external_id, `meta` / `meta.<key>` for metadata.
_CSV_ALIASES = {"id": "external_id", "meta": "metadata"}
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Schema:
    modalities: list[dict[str, str]]
    label_space: list[str]
    # Declared metadata key → type (annotation.importers.metadata); undeclared keys are free.
    metadata_types: dict[str, str] = field(default_factory=dict)

    @property
    def kinds(self) -> dict[str, str]:
        return {m["name"]: m["kind"] for m in self.modalities}


@dataclass
class PreparedRow:
    """A validated example, ready to write (image values already replaced by media hashes)."""

    line: int
    external_id: str
    values: dict[str, Any]
    label: str | None
    split: str
    metadata: dict[str, Any]
    content_hash: str
    images: list[ImageInfo] = field(default_factory=list)


@dataclass
class ManifestResult:
    rows: list[PreparedRow]
    errors: list[LineError]
    records: int
    # Errors that make the whole file unusable (a bad CSV header, an empty manifest).
    fatal: list[LineError] = field(default_factory=list)


def _bad_utf8(text: str) -> bool:
    """True when `text` holds characters that are not valid UTF-8: lone surrogates from a
    JSON escape or from bytes decoded with surrogateescape."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check_string(value: str, *, what: str, max_chars: int) -> str:
    if _bad_utf8(value):
        raise FieldProblem(E.TEXT_NOT_UTF8, f"{what} is not valid UTF-8 text")
    if "\x00" in value:
        raise FieldProblem(E.TEXT_NUL, f"{what} contains a NUL character")
    if len(value) > max_chars:
        raise FieldProblem(
            E.TEXT_TOO_LONG if what.startswith("text") else E.FIELD_TOO_LONG,
            f"{what} is {len(value):,} characters, over the cap of {max_chars:,}",
        )
    return value


class RecordValidator:
    """Turns one raw record (a dict) into a PreparedRow or the list of its field errors."""

    def __init__(self, *, schema: Schema, images: ImageReader, max_text_chars: int) -> None:
        self.schema = schema
        self.kinds = schema.kinds
        self.labels = set(schema.label_space)
        self.images = images
        self.max_text = max_text_chars
        self.seen_ids: dict[str, int] = {}

    def validate(
        self, line: int, rec: dict[str, Any]
    ) -> tuple[PreparedRow | None, list[LineError]]:
        errs: list[LineError] = []

        def bad(fld: str, problem: FieldProblem) -> None:
            errs.append(LineError(line, problem.field or fld, problem.code, problem.message))

        # external id first: duplicates are reported even when the rest of the line is bad.
        ext_id = ""
        raw_id = rec.get("external_id")
        try:
            ext_id = self._external_id(raw_id)
            first = self.seen_ids.get(ext_id)
            if first is not None:
                raise FieldProblem(
                    E.EXTERNAL_ID_DUPLICATE,
                    f"external id {ext_id!r} already appears on line {first}",
                )
            self.seen_ids[ext_id] = line
        except FieldProblem as p:
            bad("external_id", p)

        label: str | None = None
        raw_label = rec.get("label")
        if raw_label is not None and raw_label != "":
            try:
                if not isinstance(raw_label, str):
                    raise FieldProblem(
                        E.FIELD_TYPE, f"label must be a string, not {type(raw_label).__name__}"
                    )
                label = _check_string(raw_label, what="label", max_chars=MAX_LABEL)
                if label not in self.labels:
                    raise FieldProblem(
                        E.LABEL_UNKNOWN,
                        f"label {label!r} is not in the label space ({', '.join(self.schema.label_space)})",
                    )
            except FieldProblem as p:
                bad("label", p)

        split = ""
        raw_split = rec.get("split")
        if raw_split is not None:
            try:
                if not isinstance(raw_split, str):
                    raise FieldProblem(
                        E.FIELD_TYPE, f"split must be a string, not {type(raw_split).__name__}"
                    )
                split = _check_string(raw_split, what="split", max_chars=MAX_SPLIT)
            except FieldProblem as p:
                bad("split", p)

        metadata: dict[str, Any] = {}
        raw_meta = rec.get("metadata")
        if raw_meta is not None:
            try:
                metadata = self._metadata(raw_meta)
            except FieldProblem as p:
                bad("metadata", p)

        values: dict[str, Any] = {}
        images: list[ImageInfo] = []
        raw_values = rec.get("values")
        if raw_values is None:
            errs.append(LineError(line, "values", E.FIELD_MISSING, "the line has no values"))
        elif not isinstance(raw_values, dict):
            errs.append(
                LineError(
                    line, "values", E.FIELD_TYPE, "values must be an object of modality → value"
                )
            )
        else:
            for name in raw_values:
                if name not in self.kinds:
                    errs.append(
                        LineError(
                            line,
                            f"values.{name}",
                            E.MODALITY_UNKNOWN,
                            f"{name!r} is not a modality of this dataset ({', '.join(self.kinds)})",
                        )
                    )
            for name, kind in self.kinds.items():
                fld = f"values.{name}"
                if name not in raw_values or raw_values[name] is None or raw_values[name] == "":
                    errs.append(
                        LineError(
                            line, fld, E.FIELD_MISSING, f"the {kind} modality {name!r} has no value"
                        )
                    )
                    continue
                try:
                    if kind == "image":
                        info = self.images.read(raw_values[name])
                        images.append(info)
                        values[name] = info.sha256
                    elif kind == "text":
                        values[name] = self._text(name, raw_values[name])
                    else:
                        values[name] = self._tabular(name, raw_values[name])
                except FieldProblem as p:
                    bad(fld, p)

        if errs:
            return None, errs
        row = PreparedRow(
            line=line,
            external_id=ext_id,
            values=values,
            label=label,
            split=split,
            metadata=metadata,
            content_hash=content_hash(values),
            images=images,
        )
        return row, []

    def _external_id(self, raw: Any) -> str:
        if raw is None or raw == "":
            raise FieldProblem(E.FIELD_MISSING, "the line has no external_id")
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            raise FieldProblem(
                E.FIELD_TYPE, f"external_id must be a string, not {type(raw).__name__}"
            )
        return _check_string(str(raw), what="external_id", max_chars=MAX_EXTERNAL_ID)

    def _text(self, name: str, raw: Any) -> str:
        if not isinstance(raw, str):
            raise FieldProblem(
                E.FIELD_TYPE, f"text modality {name!r} needs a string, not {type(raw).__name__}"
            )
        return _check_string(raw, what=f"text of {name!r}", max_chars=self.max_text)

    def _tabular(self, name: str, raw: Any) -> dict[str, Any]:
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError:
                pass
        if not isinstance(raw, dict) or not raw:
            raise FieldProblem(
                E.FIELD_TYPE,
                f"tabular modality {name!r} needs a non-empty object of feature → value",
            )
        for key, val in raw.items():
            # The same rule as edits (NaN and infinity are not valid JSON in the database).
            if not tabular_value_ok(val):
                raise FieldProblem(
                    E.FIELD_TYPE,
                    f"feature {key!r} of {name!r} must be a finite number or a string",
                )
            _check_string(str(key), what=f"feature name in {name!r}", max_chars=200)
            if isinstance(val, str):
                _check_string(val, what=f"text of feature {key!r}", max_chars=self.max_text)
        return raw

    def _metadata(self, raw: Any) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise FieldProblem(E.FIELD_TYPE, "metadata must be an object")
        try:
            blob = json.dumps(raw, ensure_ascii=False, allow_nan=False)
        except ValueError:
            raise FieldProblem(
                E.FIELD_TYPE, "metadata holds NaN or infinity, which JSON cannot store"
            ) from None
        if _bad_utf8(blob):
            raise FieldProblem(E.TEXT_NOT_UTF8, "metadata holds text that is not valid UTF-8")
        if "\x00" in blob:
            raise FieldProblem(E.TEXT_NUL, "metadata contains a NUL character")
        if len(blob) > self.max_text:
            raise FieldProblem(
                E.METADATA_TOO_LARGE,
                f"metadata is {len(blob):,} characters of JSON, over the cap of {self.max_text:,}",
            )
        check_metadata_types(raw, self.schema.metadata_types)
        return raw


# --- readers: yield (line, record) or (line, LineError) --------------------------------


def _iter_jsonl(
    fh: BinaryIO, *, max_line_bytes: int
) -> Iterator[tuple[int, dict[str, Any] | LineError]]:
    line_no = 0
    while True:
        raw = fh.readline(max_line_bytes + 1)
        if not raw:
            return
        line_no += 1
        if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
            # Skip the rest of an over-long line without holding it in memory.
            while True:
                more = fh.readline(1 << 20)
                if not more or more.endswith(b"\n"):
                    break
            yield (
                line_no,
                LineError(
                    line_no,
                    "line",
                    E.LINE_TOO_LONG,
                    f"the line is longer than {max_line_bytes:,} bytes",
                ),
            )
            continue
        try:
            text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            yield (
                line_no,
                LineError(
                    line_no,
                    "line",
                    E.TEXT_NOT_UTF8,
                    f"the line is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at position {exc.start})",
                ),
            )
            continue
        if not text.strip():
            continue
        try:
            rec = json.loads(text)
        except json.JSONDecodeError as exc:
            yield (
                line_no,
                LineError(
                    line_no,
                    "line",
                    E.JSON_MALFORMED,
                    f"the line is not valid JSON: {exc.msg} at column {exc.colno}",
                ),
            )
            continue
        except RecursionError:
            yield (
                line_no,
                LineError(line_no, "line", E.JSON_MALFORMED, "the line nests JSON too deeply"),
            )
            continue
        if not isinstance(rec, dict):
            yield (
                line_no,
                LineError(
                    line_no,
                    "line",
                    E.RECORD_NOT_OBJECT,
                    f"the line must be a JSON object, not {type(rec).__name__}",
                ),
            )
            continue
        if "id" in rec:
            if "external_id" in rec:
                yield (
                    line_no,
                    LineError(
                        line_no,
                        "id",
                        E.FIELD_UNKNOWN,
                        "give the example's id once, as external_id (or id)",
                    ),
                )
                continue
            rec["external_id"] = rec.pop("id")
        unknown = [k for k in rec if k not in JSONL_KEYS]
        if unknown:
            yield (
                line_no,
                LineError(
                    line_no,
                    unknown[0],
                    E.FIELD_UNKNOWN,
                    f"unknown field(s) {', '.join(map(repr, unknown))}; a line has {', '.join(JSONL_KEYS)} "
                    "(modality values go inside 'values')",
                ),
            )
            continue
        yield line_no, rec


def _csv_header(header: list[str], schema: Schema) -> list[LineError]:
    errs: list[LineError] = []
    names = set(schema.kinds)
    seen: set[str] = set()
    for col in header:
        if col in seen:
            errs.append(
                LineError(1, col, E.CSV_HEADER, f"column {col!r} appears twice in the header")
            )
        seen.add(col)
        if (
            col in names
            or col in ("external_id", "label", "split", "metadata")
            or col.startswith("metadata.")
        ):
            continue
        errs.append(
            LineError(
                1,
                col,
                E.MODALITY_UNKNOWN,
                f"column {col!r} is not a modality of this dataset ({', '.join(schema.kinds)}) "
                "nor one of external_id, label, split, metadata, metadata.<key>",
            )
        )
    for required in ["external_id", *schema.kinds]:
        if required not in seen:
            errs.append(
                LineError(1, required, E.FIELD_MISSING, f"the header has no {required!r} column")
            )
    return errs


def _iter_csv(
    fh: BinaryIO, *, schema: Schema, max_field_chars: int, fatal: list[LineError]
) -> Iterator[tuple[int, dict[str, Any] | LineError]]:
    # Undecodable bytes become lone surrogates, so the bad field (not just the file) is named.
    text = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="surrogateescape", newline="")
    if csv.field_size_limit() < max_field_chars:
        csv.field_size_limit(max_field_chars)
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        fatal.append(
            LineError(1, "header", E.CSV_MALFORMED, f"the header row is not valid CSV: {exc}")
        )
        return
    header = [_CSV_ALIASES.get(h.strip(), h.strip()) for h in header]
    header = ["metadata." + h[len("meta.") :] if h.startswith("meta.") else h for h in header]
    # A bad header makes every record unreadable, so it fails the import even with skip_invalid.
    fatal.extend(_csv_header(header, schema))
    if fatal:
        return
    prev_end = reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield (
                prev_end + 1,
                LineError(
                    prev_end + 1, "line", E.CSV_MALFORMED, f"the record is not valid CSV: {exc}"
                ),
            )
            if reader.line_num == prev_end:
                return  # no progress: stop instead of looping
            prev_end = reader.line_num
            continue
        line_no = prev_end + 1
        prev_end = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            yield (
                line_no,
                LineError(
                    line_no,
                    "line",
                    E.CSV_MALFORMED,
                    f"the record has {len(row)} fields; the header has {len(header)}",
                ),
            )
            continue
        cells = dict(zip(header, row, strict=True))
        bad_utf8 = [col for col, val in cells.items() if _bad_utf8(val)]
        if bad_utf8:
            for col in bad_utf8:
                yield (
                    line_no,
                    LineError(
                        line_no, col, E.TEXT_NOT_UTF8, f"column {col!r} is not valid UTF-8 text"
                    ),
                )
            continue
        rec: dict[str, Any] = {
            "external_id": cells["external_id"],
            "values": {name: cells[name] for name in schema.kinds},
            "label": cells.get("label") or None,
            "split": cells.get("split", ""),
        }
        meta: dict[str, Any] = {}
        if cells.get("metadata", "").strip():
            try:
                loaded = json.loads(cells["metadata"])
            except json.JSONDecodeError as exc:
                yield (
                    line_no,
                    LineError(
                        line_no,
                        "metadata",
                        E.JSON_MALFORMED,
                        f"metadata is not valid JSON: {exc.msg}",
                    ),
                )
                continue
            if not isinstance(loaded, dict):
                yield (
                    line_no,
                    LineError(line_no, "metadata", E.FIELD_TYPE, "metadata must be a JSON object"),
                )
                continue
            meta.update(loaded)
        typing_failed = False
        for col, val in cells.items():
            if col.startswith("metadata.") and val != "":
                key = col[len("metadata.") :]
                kind = schema.metadata_types.get(key)
                try:
                    meta[key] = metadata_from_text(kind, val, key=key) if kind else val
                except FieldProblem as p:
                    typing_failed = True
                    yield line_no, LineError(line_no, col, p.code, p.message)
        if typing_failed:
            continue
        if meta:
            rec["metadata"] = meta
        yield line_no, rec


def count_records(path: Path) -> int:
    """A cheap upper bound on the number of records (newlines), for progress bars."""
    n = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            n += chunk.count(b"\n")
    return max(n, 1)


def read_manifest(
    *,
    path: Path,
    fmt: str,
    schema: Schema,
    images: ImageReader,
    max_text_chars: int,
    max_image_bytes: int,
    progress: Progress | None = None,
) -> ManifestResult:
    """Validate a whole manifest. Raises FieldProblem only for a missing/unreadable file."""
    if not path.exists():
        raise FieldProblem(E.MANIFEST_MISSING, f"manifest {path} does not exist")
    if not path.is_file():
        raise FieldProblem(E.MANIFEST_UNREADABLE, f"manifest {path} is not a file")
    n_images = sum(1 for k in schema.kinds.values() if k == "image")
    # Bound one line so a line without newlines cannot fill memory: room for a base64 data:
    # URI per image modality plus UTF-8 text per other modality, plus slack for the JSON.
    max_line = (
        n_images * (max_image_bytes * 4 // 3 + 1024)
        + len(schema.kinds) * max_text_chars * 4
        + (1 << 20)
    )
    total = count_records(path) if progress else 0
    rows: list[PreparedRow] = []
    errors: list[LineError] = []
    fatal: list[LineError] = []
    validator = RecordValidator(schema=schema, images=images, max_text_chars=max_text_chars)
    records = 0
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise FieldProblem(
            E.MANIFEST_UNREADABLE, f"manifest {path} cannot be read: {exc.strerror or exc}"
        ) from None
    with fh:
        it = (
            _iter_jsonl(fh, max_line_bytes=max_line)
            if fmt == "jsonl"
            else _iter_csv(fh, schema=schema, max_field_chars=max_line, fatal=fatal)
        )
        for line_no, item in it:
            records += 1
            if isinstance(item, LineError):
                errors.append(item)
            else:
                row, errs = validator.validate(line_no, item)
                if row is not None:
                    rows.append(row)
                errors.extend(errs)
            if progress and records % 256 == 0:
                progress(min(line_no, total), total)
    if records == 0 and not fatal:
        fatal.append(
            LineError(0, "manifest", E.MANIFEST_EMPTY, f"manifest {path.name} holds no examples")
        )
    if progress:
        progress(total, total)
    return ManifestResult(rows=rows, errors=errors, records=records, fatal=fatal)
