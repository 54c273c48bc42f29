"""Typed example metadata, DB-free. A schema file may declare a type per metadata key; CSV
cells (always text) are parsed to that type and JSON values are checked against it, so a
number in a CSV manifest arrives as a number, not as the string "42"."""

from __future__ import annotations

import math
from typing import Any

from annotation.importers import errors as E
from annotation.importers.errors import FieldProblem

METADATA_TYPES = ("string", "integer", "number", "boolean")
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
MAX_KEY = 100


def parse_metadata_types(raw: Any) -> dict[str, str]:
    """{"age": "integer", ...} from a schema file; raises FieldProblem naming the bad entry."""
    if not isinstance(raw, dict):
        raise FieldProblem(
            E.SCHEMA_FILE_INVALID,
            'metadata must be an object of key → type, e.g. {"age": "integer"}',
            field="metadata",
        )
    out: dict[str, str] = {}
    for key, kind in raw.items():
        if not key or len(key) > MAX_KEY:
            raise FieldProblem(
                E.SCHEMA_FILE_INVALID,
                f"metadata keys are 1 to {MAX_KEY} characters",
                field="metadata",
            )
        if kind not in METADATA_TYPES:
            raise FieldProblem(
                E.SCHEMA_FILE_INVALID,
                f"metadata key {key!r} has type {kind!r}; the types are {', '.join(METADATA_TYPES)}",
                field=f"metadata.{key}",
            )
        out[str(key)] = str(kind)
    return out


def metadata_from_text(kind: str, text: str, *, key: str) -> Any:
    """A CSV cell as a value of the declared type ("" never reaches here: it means absent)."""
    value = text.strip()
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(value)
            return number
    except ValueError:
        raise FieldProblem(
            E.FIELD_TYPE, f"metadata {key!r} must be {_article(kind)}, not {text!r}"
        ) from None
    if kind == "boolean":
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise FieldProblem(
            E.FIELD_TYPE,
            f"metadata {key!r} must be a boolean (true/false, 1/0, yes/no), not {text!r}",
        )
    return text


def check_metadata_types(metadata: dict[str, Any], types: dict[str, str]) -> None:
    """Declared keys hold values of their type (null: absent). Undeclared keys are free."""
    for key, kind in types.items():
        value = metadata.get(key)
        if value is None:
            continue
        ok = {
            "string": isinstance(value, str),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, int | float) and not isinstance(value, bool),
            "boolean": isinstance(value, bool),
        }[kind]
        if not ok:
            raise FieldProblem(
                E.FIELD_TYPE,
                f"metadata {key!r} must be {_article(kind)}, not {type(value).__name__}",
                field=f"metadata.{key}",
            )


def _article(kind: str) -> str:
    return f"an {kind}" if kind == "integer" else f"a {kind}"
