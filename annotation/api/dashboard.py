"""The campaign dashboard's data for its managers: all figures in one JSON answer, and each
chart's records as CSV. Annotators get 403, outsiders 404 (annotation.access)."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.http import HttpResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import campaign_for_user
from annotation.models import Campaign, Membership
from annotation.selectors_dashboard import CHARTS, campaign_dashboard, dashboard_csv
from annotation.selectors_rounds import campaign_rounds
from counterpoint.errors import NotFound

MANAGER = [Membership.Role.MANAGER]
# Per process: figures are the same for every manager, and staleness is bounded by the TTL.
_cache: dict[int, tuple[float, dict[str, Any]]] = {}


def dashboard_data(*, campaign: Campaign) -> dict[str, Any]:
    ttl = float(getattr(settings, "DASHBOARD_CACHE_SECONDS", 0.0))
    now = time.monotonic()
    hit = _cache.get(campaign.pk)
    if ttl > 0 and hit is not None and now - hit[0] < ttl:
        return hit[1]
    # Rounds are read by their own selector (selectors_rounds), beside the dashboard's figures.
    data = {**campaign_dashboard(campaign=campaign), "rounds": campaign_rounds(campaign=campaign)}
    if ttl > 0:
        # Aged from when the read finished: a read slower than the TTL must still be reused.
        _cache[campaign.pk] = (time.monotonic(), data)
    return data


class CampaignDashboardView(APIView):
    @extend_schema(
        responses={200: OpenApiTypes.OBJECT},
        summary="Dashboard figures: progress, throughput, annotators, labels, minimality, flips, models",
    )
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = campaign_for_user(user=request.user, campaign_id=campaign_id, roles=MANAGER)
        return Response(dashboard_data(campaign=campaign))


class CampaignDashboardCsvView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "chart", str, OpenApiParameter.PATH, enum=list(CHARTS), description="which chart"
            )
        ],
        responses={(200, "text/csv"): OpenApiTypes.STR},
        summary="One dashboard chart's data as CSV",
    )
    def get(self, request: Request, campaign_id: int, chart: str) -> HttpResponse:
        campaign = campaign_for_user(user=request.user, campaign_id=campaign_id, roles=MANAGER)
        if chart not in CHARTS:
            raise NotFound(
                f"no dashboard chart {chart!r}; one of {', '.join(CHARTS)}", code="chart_unknown"
            )
        body = dashboard_csv(dashboard_data(campaign=campaign), chart)
        response = HttpResponse(body, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="campaign-{campaign.pk}-{chart}.csv"'
        )
        return response


def register(router: Any, urlpatterns: list) -> None:
    urlpatterns += [
        path(
            "campaigns/<int:campaign_id>/dashboard/",
            CampaignDashboardView.as_view(),
            name="campaign-dashboard",
        ),
        path(
            "campaigns/<int:campaign_id>/dashboard/<str:chart>.csv",
            CampaignDashboardCsvView.as_view(),
            name="campaign-dashboard-csv",
        ),
    ]
