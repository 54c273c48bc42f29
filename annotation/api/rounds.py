"""A campaign's rounds (docs/rounds.md), manager-only: the list with each round's vMER, opening
the next round against a target model, closing the open one. Thin views: access helper → one
service → serialize (the list is selectors_rounds, the same the dashboard shows)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import campaign_for_user
from annotation.models import Campaign, Membership
from annotation.selectors_rounds import campaign_rounds
from annotation.services.rounds import round_close, round_get, round_open
from counterpoint.errors import ValidationFailed
from counterpoint.parsers import parse_pk

MANAGER = [Membership.Role.MANAGER]

_OPEN_IN = inline_serializer(
    "RoundOpen", fields={"target": serializers.IntegerField(help_text="model version id")}
)


def _campaign(request: Request, campaign_id: int) -> Campaign:
    return campaign_for_user(user=request.user, campaign_id=campaign_id, roles=MANAGER)


def _round_json(campaign: Campaign, number: int) -> dict[str, Any]:
    return next(r for r in campaign_rounds(campaign=campaign) if r["number"] == number)


class RoundsView(APIView):
    @extend_schema(responses={200: OpenApiTypes.OBJECT}, summary="The campaign's rounds with vMER")
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id)
        return Response({"rounds": campaign_rounds(campaign=campaign)})

    @extend_schema(
        request=_OPEN_IN,
        responses={201: OpenApiTypes.OBJECT},
        summary="Open the next round against a target model (409 round_already_open)",
    )
    def post(self, request: Request, campaign_id: int) -> Response:
        from models_bridge.models import ModelVersion

        campaign = _campaign(request, campaign_id)
        body = request.data if isinstance(request.data, dict) else {}
        pk = parse_pk(body.get("target"))
        target = ModelVersion.objects.filter(pk=pk).first() if pk else None
        if target is None:
            raise ValidationFailed(
                "target must be the id of a registered model version", code="round_target"
            )
        opened = round_open(campaign=campaign, target=target, created_by=request.user)
        return Response(_round_json(campaign, opened.number), status=status.HTTP_201_CREATED)


class RoundCloseView(APIView):
    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT}, summary="Close a round")
    def post(self, request: Request, campaign_id: int, number: int) -> Response:
        campaign = _campaign(request, campaign_id)
        closed = round_close(round=round_get(campaign=campaign, number=number))
        return Response(_round_json(campaign, closed.number))


def register(router: Any, urlpatterns: list) -> None:
    from django.urls import path

    base = "campaigns/<int:campaign_id>/rounds/"
    urlpatterns += [
        path(base, RoundsView.as_view(), name="campaign-rounds"),
        path(f"{base}<int:number>/close/", RoundCloseView.as_view(), name="campaign-round-close"),
    ]
