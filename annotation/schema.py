"""Dataset schema rules, DB-free: modalities and label space. Used by the import, the REST
API and the model registry, so every path names the same rule the same way."""

from __future__ import annotations

import hashlib
import json
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
