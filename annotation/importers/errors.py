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
