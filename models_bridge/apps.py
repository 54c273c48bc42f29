from __future__ import annotations

from django.apps import AppConfig


class ModelsBridgeConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "models_bridge"
    verbose_name = "Model bridge"
