"""/api/v1/ routes of the model bridge."""

from __future__ import annotations

urlpatterns: list = []
