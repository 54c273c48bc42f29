"""Attention maps over the REST API (docs/analysis.md, "Attention maps"): managers of the
campaign only, through annotation.access (outsiders 404, annotators 403), like the pair
viewer's own endpoints."""

from __future__ import annotations

from typing import Any

from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import campaign_for_user
from annotation.models import Membership
from models_bridge.services.attention import edit_attention, example_attention

MANAGER = [Membership.Role.MANAGER]
MODEL_PARAM = OpenApiParameter(
    "model", int, required=True, description="one of the campaign's models that exports attention"
)


class EditAttentionView(APIView):
    """Both sides of a counterfactual pair: {edit, modality, original, edited}, each side
    as models_bridge.services.attention.attention_map describes."""

    @extend_schema(parameters=[MODEL_PARAM], responses=dict)
    def get(self, request: Request, campaign_id: int, edit_id: int) -> Response:
        campaign = campaign_for_user(user=request.user, campaign_id=campaign_id, roles=MANAGER)
        return Response(
            edit_attention(
                campaign=campaign, edit_id=edit_id, model_id=request.query_params.get("model")
            )
        )


class ExampleAttentionView(APIView):
    @extend_schema(parameters=[MODEL_PARAM], responses=dict)
    def get(self, request: Request, campaign_id: int, example_id: int) -> Response:
        campaign = campaign_for_user(user=request.user, campaign_id=campaign_id, roles=MANAGER)
        return Response(
            example_attention(
                campaign=campaign,
                example_id=example_id,
                model_id=request.query_params.get("model"),
            )
        )


def register(urlpatterns: list[Any]) -> None:
    urlpatterns += [
        path(
            "campaigns/<int:campaign_id>/edits/<int:edit_id>/attention/",
            EditAttentionView.as_view(),
            name="campaign-edit-attention",
        ),
        path(
            "campaigns/<int:campaign_id>/examples/<int:example_id>/attention/",
            ExampleAttentionView.as_view(),
            name="campaign-example-attention",
        ),
    ]
