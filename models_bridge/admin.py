from __future__ import annotations

from django.contrib import admin

from models_bridge.models import ModelVersion, Score


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "version", "kind", "factorized", "is_active", "created_at")
    list_filter = ("kind", "is_active")
    search_fields = ("name",)


@admin.register(Score)
class ScoreAdmin(admin.ModelAdmin):
    list_display = ("id", "model_version", "input_hash", "predicted_label", "latency_ms")
    list_filter = ("model_version",)
