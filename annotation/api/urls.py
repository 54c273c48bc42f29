"""/api/v1/ routes of the campaign domain. Each module registers its own views here."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import DefaultRouter

router = DefaultRouter()
urlpatterns: list = []

from annotation.api import campaigns, datasets  # noqa: E402

datasets.register(router, urlpatterns)
campaigns.register(router, urlpatterns)

urlpatterns += router.urls
_ = path
