"""Manager API of campaign setup (/manage/ pages read and write through these): the managed
campaign list with progress, lifecycle actions, the pool's make-up and gold items, the
instructions preview and the annotator-page preview. Thin: access helper → service or
selector → JSON."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import campaign_for_user, can_manage_anything
from annotation.markdown import instructions_html
from annotation.models import Membership
from annotation.selectors_setup import (
    lifecycle_state,
    managed_campaign_row,
    managed_campaigns,
    pool_summary,
    preview_payload,
)
from annotation.services.lifecycle import TRANSITIONS, campaign_transition
from annotation.services.pool import campaign_gold_set
from counterpoint.errors import Forbidden, ValidationFailed

MANAGER = [Membership.Role.MANAGER]

_ROW = inline_serializer(
    "ManagedCampaign",
    {
        "id": serializers.IntegerField(),
        "name": serializers.CharField(),
        "dataset": serializers.IntegerField(),
        "dataset_name": serializers.CharField(),
        "status": serializers.CharField(),
        "task_order": serializers.CharField(),
        "redundancy": serializers.IntegerField(),
        "pool_size": serializers.IntegerField(),
        "annotations": serializers.IntegerField(),
        "target_annotations": serializers.IntegerField(),
        "progress": serializers.FloatField(),
        "edits": serializers.IntegerField(),
        "edits_verified": serializers.IntegerField(),
        "validations": serializers.IntegerField(),
        "open_leases": serializers.IntegerField(),
        "created_at": serializers.DateTimeField(),
        "console_url": serializers.CharField(),
    },
)
_LIFECYCLE = inline_serializer(
    "CampaignLifecycle",
    {
        "status": serializers.CharField(),
        "open_leases": serializers.IntegerField(),
        "open_leases_by_kind": serializers.DictField(
            child=serializers.IntegerField(), help_text="annotate, validate, perturbation"
        ),
        "actions": serializers.ListField(child=serializers.DictField()),
    },
)


class ManagedCampaignsView(APIView):
    @extend_schema(
        responses=inline_serializer(
            "ManagedCampaigns",
            {"can_create": serializers.BooleanField(), "results": _ROW},
        )
    )
    def get(self, request: Request) -> Response:
        rows = [managed_campaign_row(c) for c in managed_campaigns(user=request.user)]
        return Response({"can_create": can_manage_anything(request.user), "results": rows})


class LifecycleView(APIView):
    @extend_schema(responses=_LIFECYCLE)
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = campaign_for_user(user=request.user, campaign_id=campaign_id, roles=MANAGER)
        return Response(lifecycle_state(campaign=campaign))

    @extend_schema(
        request=inline_serializer(
            "LifecycleAction",
            {"action": serializers.ChoiceField(choices=sorted(TRANSITIONS))},
        ),
        responses=_LIFECYCLE,
    )
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign = campaign_for_user(user=request.user, campaign_id=campaign_id, roles=MANAGER)
        action = request.data.get("action") if isinstance(request.data, dict) else None
        campaign_transition(campaign=campaign, action=str(action or ""))
        return Response(lifecycle_state(campaign=campaign))


class PoolView(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = campaign_for_user(user=request.user, campaign_id=campaign_id, roles=MANAGER)
        return Response(pool_summary(campaign=campaign))


class GoldView(APIView):
    @extend_schema(
        request=inline_serializer(
            "GoldItems",
            {
                "example_ids": serializers.ListField(child=serializers.IntegerField()),
                "is_gold": serializers.BooleanField(default=True),
                "answer": serializers.CharField(required=False),
            },
        ),
        responses={200: dict},
    )
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign = campaign_for_user(user=request.user, campaign_id=campaign_id, roles=MANAGER)
        data = request.data if isinstance(request.data, dict) else {}
        ids = data.get("example_ids")
        if not isinstance(ids, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in ids
        ):
            raise ValidationFailed("example_ids must be a list of example ids", code="gold_items")
        is_gold = data.get("is_gold", True)
        if not isinstance(is_gold, bool):
            raise ValidationFailed("is_gold must be true or false", code="gold_items")
        answer = data.get("answer")
        if answer is not None and (not isinstance(answer, str) or not is_gold):
            raise ValidationFailed(
                "answer is a label of the label space, given when making items gold",
                code="gold_items",
            )
        changed = campaign_gold_set(
            campaign=campaign, example_ids=ids, is_gold=is_gold, answer=answer
        )
        return Response({"changed": changed, **pool_summary(campaign=campaign)})


class InstructionsPreviewView(APIView):
    @extend_schema(
        request=inline_serializer("InstructionsText", {"text": serializers.CharField()}),
        responses=inline_serializer("InstructionsHtml", {"html": serializers.CharField()}),
    )
    def post(self, request: Request) -> Response:
        # The form's live preview, before saving: the renderer annotators get. Writes nothing.
        if not can_manage_anything(request.user):
            raise Forbidden(
                "only staff and campaign managers may create campaigns", code="manager_required"
            )
        text = request.data.get("text", "") if isinstance(request.data, dict) else ""
        if not isinstance(text, str):
            raise ValidationFailed("text must be a string", code="instructions_text")
        return Response({"html": instructions_html(text)})


class PreviewView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("example", int, required=False)],
        responses={200: dict},
    )
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = campaign_for_user(user=request.user, campaign_id=campaign_id, roles=MANAGER)
        return Response(
            preview_payload(campaign=campaign, example_id=request.query_params.get("example")),
            status=status.HTTP_200_OK,
        )


def register(router: Any, urlpatterns: list) -> None:
    from django.urls import path

    urlpatterns += [
        path("campaigns/managed/", ManagedCampaignsView.as_view(), name="campaigns-managed"),
        path(
            "campaigns/instructions-preview/",
            InstructionsPreviewView.as_view(),
            name="instructions-preview",
        ),
        path(
            "campaigns/<int:campaign_id>/lifecycle/",
            LifecycleView.as_view(),
            name="campaign-lifecycle",
        ),
        path("campaigns/<int:campaign_id>/pool/", PoolView.as_view(), name="campaign-pool"),
        path("campaigns/<int:campaign_id>/gold/", GoldView.as_view(), name="campaign-gold"),
        path(
            "campaigns/<int:campaign_id>/preview/", PreviewView.as_view(), name="campaign-preview"
        ),
    ]
