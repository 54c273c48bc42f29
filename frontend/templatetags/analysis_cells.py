"""Template filters of the analysis report (frontend/templates/frontend/manage/analysis_report.html)."""

from __future__ import annotations

import math
from typing import Any

from django import template

register = template.Library()


@register.filter
def cell(value: Any) -> str:
    """A table cell as a researcher reads it: floats to 3 decimals, None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.3f}"
    return str(value)


@register.filter
def numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@register.filter
def get(mapping: Any, key: str) -> Any:
    return mapping.get(key) if isinstance(mapping, dict) else None
