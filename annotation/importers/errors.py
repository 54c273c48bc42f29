"""The error vocabulary of imports. Every rule has its own code so a report (and a test) can
say exactly which rule a line broke; `line` is 1-based in the manifest (0 = the file itself)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Codes raised here (image_* codes come from annotation.services.media.check_image_bytes).
JSON_MALFORMED = "json_malformed"
RECORD_NOT_OBJECT = "record_not_object"
FIELD_MISSING = "field_missing"
FIELD_UNKNOWN = "field_unknown"
FIELD_TYPE = "field_type"
FIELD_TOO_LONG = "field_too_long"
MODALITY_UNKNOWN = "modality_unknown"
LABEL_UNKNOWN = "label_unknown"
EXTERNAL_ID_DUPLICATE = "external_id_duplicate"
EXTERNAL_ID_EXISTS = "external_id_exists"
PATH_INVALID = "path_invalid"
PATH_ABSOLUTE = "path_absolute"
PATH_TRAVERSAL = "path_traversal"
PATH_SYMLINK_ESCAPE = "path_symlink_escape"
FILE_MISSING = "file_missing"
FILE_UNREADABLE = "file_unreadable"
DATA_URI_INVALID = "data_uri_invalid"
TEXT_NOT_UTF8 = "text_not_utf8"
TEXT_TOO_LONG = "text_too_long"
TEXT_NUL = "text_nul_char"
LINE_TOO_LONG = "line_too_long"
CSV_MALFORMED = "csv_malformed"
CSV_HEADER = "csv_header"
MANIFEST_EMPTY = "manifest_empty"
MANIFEST_MISSING = "manifest_missing"
MANIFEST_UNREADABLE = "manifest_unreadable"
SCHEMA_FILE_INVALID = "schema_file_invalid"
SCHEMA_FILE_UNKNOWN_KEY = "schema_file_unknown_key"
SCHEMA_MISSING = "schema_missing"
METADATA_TOO_LARGE = "metadata_too_large"
ARCHIVE_INVALID = "archive_invalid"
ARCHIVE_UNSAFE_PATH = "archive_unsafe_path"
ARCHIVE_TOO_LARGE = "archive_too_large"
ARCHIVE_TOO_MANY_FILES = "archive_too_many_files"


class FieldProblem(Exception):
    """One broken rule in one field; the caller adds the line number."""

    def __init__(self, code: str, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


@dataclass(frozen=True)
class LineError:
    line: int
    field: str
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "code": self.code, "message": self.message}

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        return f"{where}, {self.field or '-'}: {self.message} [{self.code}]"


# A report shows at most this many groups: one systematic mistake over a million lines is one
# group, and a file with many different mistakes still prints a screenful, not a scroll.
MAX_ERROR_GROUPS = 20
# Per group, at most this many line ranges are spelled out ("1-3, 7, 9-12 … and 40 more").
MAX_RANGES_SHOWN = 8


def _line_of(err: LineError | dict[str, Any]) -> int:
    return err.line if isinstance(err, LineError) else int(err.get("line") or 0)


def _key_of(err: LineError | dict[str, Any]) -> tuple[str, str, str]:
    if isinstance(err, LineError):
        return (err.field, err.code, err.message)
    return (str(err.get("field") or ""), str(err.get("code") or ""), str(err.get("message") or ""))


def line_ranges(lines: list[int]) -> list[tuple[int, int]]:
    """Sorted, distinct line numbers as closed ranges: [1, 2, 3, 7] → [(1, 3), (7, 7)]."""
    out: list[tuple[int, int]] = []
    for n in sorted(set(lines)):
        if out and n == out[-1][1] + 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


def _where(lines: list[int]) -> str:
    ranges = line_ranges(lines)
    if ranges == [(0, 0)]:
        return "file"
    parts = [f"{a}" if a == b else f"{a}-{b}" for a, b in ranges[:MAX_RANGES_SHOWN]]
    more = len(ranges) - MAX_RANGES_SHOWN
    word = "line" if len(lines) == 1 else "lines"
    return f"{word} {', '.join(parts)}" + (f" and {more} more ranges" if more > 0 else "")


def group_errors(
    errors: list[LineError] | list[dict[str, Any]], *, limit: int = MAX_ERROR_GROUPS
) -> tuple[list[dict[str, Any]], int]:
    """Group errors that are identical but for their line (same field, rule and message),
    largest group first, then by first line. Returns (at most `limit` groups, how many groups
    were left off). Each group: {"lines": "lines 1-600", "count", "first_line", "field",
    "code", "message"}. Pure: the import service, the command and the job result all call it."""
    by_key: dict[tuple[str, str, str], list[int]] = {}
    for err in errors:
        by_key.setdefault(_key_of(err), []).append(_line_of(err))
    groups: list[dict[str, Any]] = [
        {
            "lines": _where(lines),
            "count": len(lines),
            "first_line": min(lines),
            "field": fld,
            "code": code,
            "message": message,
        }
        for (fld, code, message), lines in by_key.items()
    ]
    groups.sort(key=lambda g: (-int(g["count"]), int(g["first_line"]), str(g["field"])))
    return groups[:limit], max(0, len(groups) - limit)


def format_group(group: dict[str, Any]) -> str:
    return f"{group['lines']}, {group['field'] or '-'}: {group['message']} [{group['code']}]"


def format_groups(groups: list[dict[str, Any]], left_off: int) -> list[str]:
    """The printable lines of a grouped report, with the "and N more" line when capped."""
    lines = [format_group(g) for g in groups]
    if left_off:
        lines.append(f"… and {left_off} more kinds of error")
    return lines
