"""The API's JSON parser (the default parser of every view).

A body is refused, before any view sees it, when it nests deeper than `MAX_JSON_DEPTH`
(`json_too_deep`: the C decoder recurses and would otherwise end in a RecursionError, a 500),
holds a lone UTF-16 surrogate such as "\\ud800" (`json_invalid_unicode`: valid JSON escapes,
but no UTF-8 text can hold them, so storing or encoding them fails later), or a NUL
character (`nul_in_text`: PostgreSQL's text and jsonb refuse it, SQLite would store it).
The check walks the decoded value iteratively, so its own depth is bounded by the list it
keeps, not by the interpreter's stack."""

from __future__ import annotations

import json
import re
from typing import Any

from django.conf import settings
from rest_framework.parsers import JSONParser

from counterpoint.errors import ValidationFailed

MAX_JSON_DEPTH = 64
_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_text(text: str, where: str) -> None:
    if "\x00" in text:
        raise ValidationFailed(
            f"{where} contains a NUL character (\\u0000), which text may not hold",
            code="nul_in_text",
        )
    if _SURROGATE.search(text):
        raise ValidationFailed(
            f"{where} contains a lone UTF-16 surrogate (such as \\ud800), which is not text",
            code="json_invalid_unicode",
        )


def check_json_value(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise ValidationFailed when a decoded JSON value nests deeper than `max_depth` or
    holds a string (or key) with a NUL or a lone surrogate."""
    stack: list[tuple[Any, int, str]] = [(value, 1, "the body")]
    while stack:
        item, depth, where = stack.pop()
        if isinstance(item, str):
            _check_text(item, where)
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > max_depth:
            raise ValidationFailed(
                f"the JSON body nests deeper than {max_depth} levels", code="json_too_deep"
            )
        if isinstance(item, dict):
            for key, inner in item.items():
                _check_text(key, f"a key in {where}")
                stack.append((inner, depth + 1, f"field {key[:50]!r}"))
        else:
            stack.extend((inner, depth + 1, where) for inner in item)


# Primary keys are 64-bit signed on PostgreSQL and SQLite; a larger number in a URL would
# overflow the driver (a 500), so it is simply an object that does not exist.
MAX_PK = 2**63 - 1


def parse_pk(value: object) -> int | None:
    """`value` as a primary key (1 … MAX_PK), or None when it cannot be one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value.isascii() or not value.isdigit() or len(value) > 19:
            return None
        value = int(value)
    if not isinstance(value, int):
        return None
    return value if 1 <= value <= MAX_PK else None


def query_filter(params: Any, name: str, *, kind: str = "text") -> Any:
    """A list endpoint's filter `name` from the query string: None when absent; an id
    (`kind="id"`) or a text without NUL, else ValidationFailed `filter_invalid`."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if kind == "id":
        pk = parse_pk(raw)
        if pk is None:
            raise ValidationFailed(
                f"filter {name!r} must be a whole number id, got {str(raw)[:30]!r}",
                code="filter_invalid",
            )
        return pk
    text = str(raw)
    if "\x00" in text or _SURROGATE.search(text) or len(text) > 200:
        raise ValidationFailed(
            f"filter {name!r} must be text of at most 200 characters without NUL",
            code="filter_invalid",
        )
    return text


class SafeJSONParser(JSONParser):
    """DRF's JSON parser with the bounds above. Errors use the API's error shape."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        raw = stream.read() if stream is not None else b""
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            raise ValidationFailed(
                f"the body is not valid {encoding} text", code="json_invalid_unicode"
            ) from None
        try:
            data = json.loads(text, parse_constant=_refuse_constant) if text else {}
        except RecursionError:
            raise ValidationFailed(
                f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels", code="json_too_deep"
            ) from None
        except ValueError as exc:
            raise ValidationFailed(
                f"the body is not valid JSON: {exc}", code="json_invalid"
            ) from None
        check_json_value(data)
        return data


def _refuse_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; Python's decoder accepts them by default.
    raise ValueError(f"{name} is not a JSON value")
