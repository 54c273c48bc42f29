from __future__ import annotations

from typing import Any

from django.contrib import admin

from models_bridge.models import ModelVersion, Score


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "version", "kind", "factorized", "is_active", "created_at")
    list_filter = ("kind", "is_active")
    search_fields = ("name",)
    # Versions are created only by registration (models_bridge.services.registry), which
    # checks and scans the package and pins its bytes; what it recorded is not editable here,
    # or a form could point a checked version at other code.
    readonly_fields = (
        "name",
        "version",
        "kind",
        "location",
        "remote_model_name",
        "package_sha256",
        "dataset",
        "labels",
        "label_map",
        "modalities",
        "factorized",
        "manifest",
        "created_by",
        "created_at",
    )

    def has_add_permission(self, request: Any) -> bool:
        return False


@admin.register(Score)
class ScoreAdmin(admin.ModelAdmin):
    list_display = ("id", "model_version", "input_hash", "predicted_label", "latency_ms")
    list_filter = ("model_version",)
