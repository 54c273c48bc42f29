"""The campaign dashboard's data for its managers: all figures in one JSON answer (the stored
snapshot, annotation/services/dashboard.py), and each chart's records as CSV. Annotators get
403, outsiders 404 (annotation.access)."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import campaign_for_user
from annotation.models import Membership
from annotation.selectors_dashboard import CHARTS, dashboard_csv
from annotation.services.dashboard import dashboard_read
from counterpoint.errors import NotFound, Unavailable

MANAGER = [Membership.Role.MANAGER]


class CampaignDashboardView(APIView):
    @extend_schema(
        responses={200: OpenApiTypes.OBJECT},
        summary=(
            "Dashboard figures: progress, throughput, annotators, labels, minimality, flips, "
            "models, as of snapshot.computed_at (docs/dashboard.md Freshness)"
        ),
    )
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = campaign_for_user(user=request.user, campaign_id=campaign_id, roles=MANAGER)
        return Response(dashboard_read(campaign=campaign))


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
        data = dashboard_read(campaign=campaign)
        if data["snapshot"]["state"] == "computing":
            raise Unavailable(
                "this campaign's dashboard figures are being computed; try again shortly",
                code="dashboard_computing",
            )
        body = dashboard_csv(data, chart)
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
