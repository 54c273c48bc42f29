"""/api/v1/ routes of the campaign domain. Each module registers its own views here."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import DefaultRouter

router = DefaultRouter()
urlpatterns: list = []

from annotation.api import campaigns, datasets  # noqa: E402
from annotation.api import dashboard as dashboard_api  # noqa: E402
from annotation.api import exports as exports_api  # noqa: E402
from annotation.api import imports as imports_api  # noqa: E402
from annotation.api import people as people_api  # noqa: E402
from annotation.api import perturbations as perturbations_api  # noqa: E402
from annotation.api import results as results_api  # noqa: E402
from annotation.api import rounds as rounds_api  # noqa: E402
from annotation.api import setup as setup_api  # noqa: E402
from annotation.api import tasks as tasks_api  # noqa: E402

setup_api.register(router, urlpatterns)  # before the router's campaigns/{pk}/
datasets.register(router, urlpatterns)
campaigns.register(router, urlpatterns)
imports_api.register(router, urlpatterns)
tasks_api.register(router, urlpatterns)
results_api.register(router, urlpatterns)
exports_api.register(router, urlpatterns)
people_api.register(router, urlpatterns)
dashboard_api.register(router, urlpatterns)
rounds_api.register(router, urlpatterns)
perturbations_api.register(router, urlpatterns)

urlpatterns += router.urls
_ = path
