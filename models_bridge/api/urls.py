"""/api/v1/ routes of the model bridge."""

from __future__ import annotations

from rest_framework.routers import SimpleRouter

from models_bridge.api import analysis, attention, perturbation, views

router = SimpleRouter()
urlpatterns: list = []
views.register(router, urlpatterns)
analysis.register(urlpatterns)
perturbation.register(urlpatterns)
attention.register(urlpatterns)
urlpatterns += router.urls
