"""Reading a dataset schema from a JSON file or from command-line style flags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from annotation.importers import errors as E
from annotation.importers.errors import FieldProblem
from annotation.importers.manifest import Schema
from annotation.importers.metadata import parse_metadata_types
from annotation.schema import normalise_label_space, normalise_modalities
from counterpoint.errors import ValidationFailed

MAX_SCHEMA_BYTES = 1024 * 1024
SCHEMA_FILE_KEYS = ("modalities", "label_space", "metadata", "description")


def parse_modalities_flag(raw: str) -> list[str]:
    """`image:image,text:text` → ["image:image", "text:text"] (normalised later)."""
    return [part.strip() for part in raw.split(",") if part.strip()]


def parse_labels_flag(raw: str) -> list[str]:
    """`a,b,c` or a JSON list (for labels that contain commas)."""
    text = raw.strip()
    if text.startswith("["):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationFailed(
                f"labels look like JSON but are not valid: {exc.msg}", code="schema_labels"
            ) from None
        if not isinstance(loaded, list):
            raise ValidationFailed("labels must be a list", code="schema_labels")
        return [str(x) for x in loaded]
    return [part.strip() for part in text.split(",") if part.strip()]


def load_schema_file(path: Path) -> dict[str, Any]:
    """{"modalities": [...], "label_space": [...], "metadata": {key: type}, "description": "…"}
    (docs/importing.md). Any key may be absent (then flags or the existing dataset supply it);
    any other key is refused with schema_file_unknown_key, which names the accepted ones."""
    try:
        raw = path.read_bytes()[: MAX_SCHEMA_BYTES + 1]
    except FileNotFoundError:
        raise ValidationFailed(
            f"schema file {path} does not exist", code=E.SCHEMA_FILE_INVALID
        ) from None
    except OSError as exc:
        raise ValidationFailed(
            f"schema file {path} cannot be read: {exc}", code=E.SCHEMA_FILE_INVALID
        ) from None
    if len(raw) > MAX_SCHEMA_BYTES:
        raise ValidationFailed(
            f"schema file {path} is over {MAX_SCHEMA_BYTES:,} bytes", code=E.SCHEMA_FILE_INVALID
        )
    try:
        loaded = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ValidationFailed(
            f"schema file {path} is not UTF-8 text", code=E.SCHEMA_FILE_INVALID
        ) from None
    except json.JSONDecodeError as exc:
        raise ValidationFailed(
            f"schema file {path} is not valid JSON: {exc.msg} (line {exc.lineno})",
            code=E.SCHEMA_FILE_INVALID,
        ) from None
    if not isinstance(loaded, dict):
        raise ValidationFailed(
            f"schema file {path} must hold an object with modalities and label_space",
            code=E.SCHEMA_FILE_INVALID,
        )
    unknown = sorted(set(loaded) - set(SCHEMA_FILE_KEYS))
    if unknown:
        # One spelling per key: a silently accepted alias is a second rule to keep in step.
        hint = " (the label space is spelled label_space)" if "labels" in unknown else ""
        raise ValidationFailed(
            f"schema file {path} has unknown key(s) {', '.join(map(repr, unknown))}; "
            f"the accepted keys are {', '.join(SCHEMA_FILE_KEYS)}{hint}",
            code=E.SCHEMA_FILE_UNKNOWN_KEY,
            details={"unknown": unknown, "accepted": list(SCHEMA_FILE_KEYS)},
        )
    out: dict[str, Any] = {}
    if "modalities" in loaded:
        out["modalities"] = loaded["modalities"]
    if "label_space" in loaded:
        out["label_space"] = loaded["label_space"]
    if "metadata" in loaded:
        try:
            out["metadata"] = parse_metadata_types(loaded["metadata"])
        except FieldProblem as p:
            raise ValidationFailed(f"schema file {path}: {p.message}", code=p.code) from None
    if "description" in loaded:
        out["description"] = str(loaded["description"])
    return out


def build_schema(
    *, modalities: Any, label_space: Any, metadata_types: dict[str, str] | None = None
) -> Schema:
    return Schema(
        modalities=normalise_modalities(modalities),
        label_space=normalise_label_space(label_space),
        metadata_types=dict(metadata_types or {}),
    )
