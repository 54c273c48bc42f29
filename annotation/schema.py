"""Dataset schema rules, DB-free: modalities and label space. Used by the import, the REST
API and the model registry, so every path names the same rule the same way."""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

from counterpoint.errors import ValidationFailed

MODALITY_KINDS = ("text", "image", "tabular")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def normalise_modalities(raw: Any) -> list[dict[str, str]]:
    """Accepts [{"name", "kind", "label"?}] or ["name:kind", ...]; returns the dict form."""
    if not isinstance(raw, list) or not raw:
        raise ValidationFailed(
            "a dataset needs a non-empty list of modalities", code="schema_modalities"
        )
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for item in raw:
        if isinstance(item, str):
            name, _, kind = item.partition(":")
            item = {"name": name.strip(), "kind": kind.strip()}
        if not isinstance(item, dict):
            raise ValidationFailed(
                f"modality {item!r} must be an object with name and kind", code="schema_modalities"
            )
        name, kind = str(item.get("name", "")), str(item.get("kind", ""))
        if not _NAME.match(name):
            raise ValidationFailed(
                f"modality name {name!r} must be lower-case letters, digits and _ (starting with a letter)",
                code="schema_modality_name",
            )
        if kind not in MODALITY_KINDS:
            raise ValidationFailed(
                f"modality {name!r} has kind {kind!r}; use one of {', '.join(MODALITY_KINDS)}",
                code="schema_modality_kind",
            )
        if name in seen:
            raise ValidationFailed(
                f"modality {name!r} is declared twice", code="schema_modality_duplicate"
            )
        seen.add(name)
        entry = {"name": name, "kind": kind}
        if item.get("label"):
            entry["label"] = str(item["label"])
        out.append(entry)
    return out


def normalise_label_space(raw: Any) -> list[str]:
    if not isinstance(raw, list) or not raw:
        raise ValidationFailed("a dataset needs a non-empty label space", code="schema_labels")
    labels = [str(x) for x in raw]
    if any(not label.strip() for label in labels):
        raise ValidationFailed("labels must be non-empty strings", code="schema_labels")
    dupes = sorted({label for label in labels if labels.count(label) > 1})
    if dupes:
        raise ValidationFailed(
            f"labels appear twice in the label space: {', '.join(dupes)}", code="schema_labels"
        )
    return labels


def content_hash(values: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of an example's values (image values are media hashes,
    so this is a hash of the bytes of every modality)."""
    blob = json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# --- edited values (one rule each for live drafts and submitted edits) -----------------------


def max_text_chars() -> int:
    """The one cap on a text value's length: imports, submitted edits and live drafts."""
    from django.conf import settings

    return int(settings.IMPORT_MAX_TEXT_CHARS)


def text_value_check(value: Any, *, what: str = "the edited text") -> str:
    """A text value an annotator typed. Raises text_not_a_string, text_too_long or
    nul_in_text (PostgreSQL cannot store NUL)."""
    if not isinstance(value, str):
        raise ValidationFailed(f"{what} must be a string", code="text_not_a_string")
    cap = max_text_chars()
    if len(value) > cap:
        raise ValidationFailed(
            f"{what} has {len(value):,} characters, over the cap of {cap:,}", code="text_too_long"
        )
    if "\x00" in value:
        raise ValidationFailed(f"{what} contains a NUL character", code="nul_in_text")
    return value


def tabular_value_ok(value: Any) -> bool:
    """A feature value is a finite number or a string (booleans are not numbers here, and
    null, NaN or infinity cannot be compared or scaled)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int | str)


def tabular_value_check(original: Any, value: Any) -> dict[str, Any]:
    """An edited table: exactly the original's features, each value `tabular_value_ok`.
    Raises tabular_not_an_object, tabular_features or tabular_not_a_number."""
    if not isinstance(value, dict) or not isinstance(original, dict):
        raise ValidationFailed(
            "a tabular edit needs {feature: value} in its value", code="tabular_not_an_object"
        )
    if set(value) != set(original):
        extra, missing = sorted(set(value) - set(original)), sorted(set(original) - set(value))
        raise ValidationFailed(
            f"a tabular edit gives exactly the original's features; extra: {extra or '-'}, "
            f"missing: {missing or '-'}",
            code="tabular_features",
        )
    bad = sorted(k for k, v in value.items() if not tabular_value_ok(v))
    if bad:
        raise ValidationFailed(
            f"features {bad} must be finite numbers or strings", code="tabular_not_a_number"
        )
    for v in value.values():
        if isinstance(v, str):
            text_value_check(v, what="a feature value")
    return value
