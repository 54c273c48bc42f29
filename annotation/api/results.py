"""Campaign results for managers: annotations, counterfactual edits (with every scored
attempt and the validations), and progress. Read-only; annotators get 403, outsiders 404."""

from __future__ import annotations

from typing import Any

from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import campaign_for_user
from annotation.models import Annotation, Attempt, CounterfactualEdit, Membership, Validation
from annotation.selectors_results import (
    campaign_annotations,
    campaign_edit_pair,
    campaign_edits,
    campaign_progress,
    campaign_scoring_models,
    edit_models_fooled,
)
from annotation.services.counterfactuals import edit_scores_pending

MANAGER = [Membership.Role.MANAGER]


class AnnotationResultSerializer(serializers.ModelSerializer):
    annotator = serializers.CharField(source="annotator.username")
    example_external_id = serializers.CharField(source="example.external_id")

    class Meta:
        model = Annotation
        fields = [
            "id",
            "assignment",
            "example",
            "example_external_id",
            "annotator",
            "label",
            "confidence",
            "rationale",
            "reliance",
            "reliance_modality",
            "evidence",
            "time_spent_ms",
            "is_gold",
            "late",
            "created_at",
        ]


class AttemptResultSerializer(serializers.ModelSerializer):
    class Meta:
        model = Attempt
        fields = ["seq", "modality", "value", "content_hash", "scores", "created_at"]


class ValidationResultSerializer(serializers.ModelSerializer):
    validator = serializers.CharField(source="validator.username")

    class Meta:
        model = Validation
        fields = ["id", "validator", "label", "broken", "comment", "created_at"]


class EditAnswerSerializer(serializers.ModelSerializer):
    """What the author answered about the original before editing it."""

    class Meta:
        model = Annotation
        fields = [
            "label",
            "confidence",
            "reliance",
            "reliance_modality",
            "evidence",
            "rationale",
            "time_spent_ms",
        ]


class MediaRefSerializer(serializers.Serializer):
    sha256 = serializers.CharField()
    url = serializers.CharField()


class EditResultSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username")
    answer = EditAnswerSerializer(source="annotation")
    mask = serializers.SerializerMethodField(
        help_text="the change mask the editor stored with an image edit (white = changed), or null"
    )
    attempts_count = serializers.IntegerField(
        source="annotation.assignment.attempts_count",
        help_text="how many drafts the author had scored while editing",
    )
    models_fooled = serializers.SerializerMethodField(
        help_text="ids of the models whose prediction on this verified edit is not its "
        "verified (target) label; empty unless the edit is verified"
    )
    example_external_id = serializers.CharField(source="example.external_id")
    original_values = serializers.JSONField(source="example.values")
    gold_label = serializers.CharField(source="example.label", allow_null=True)
    attempts = serializers.SerializerMethodField()
    validations = ValidationResultSerializer(many=True)
    scores_pending = serializers.SerializerMethodField(
        help_text="ids of the campaign's models whose scores of this edit are not in `scores` "
        "yet (a scoring worker fills them after the submit; a bulk job fills what it missed)"
    )

    class Meta:
        model = CounterfactualEdit
        fields = [
            "id",
            "annotation",
            "example",
            "example_external_id",
            "author",
            "modality",
            "original_values",
            "edited_values",
            "gold_label",
            "original_label",
            "target_label",
            "minimality",
            "scores",
            "scores_pending",
            "models_fooled",
            "status",
            "validations_count",
            "validations_agree",
            "validations",
            "answer",
            "mask",
            "attempts_count",
            "attempts",
            "created_at",
        ]

    @extend_schema(responses=AttemptResultSerializer(many=True))  # type: ignore[misc]
    def get_attempts(self, obj: CounterfactualEdit) -> list[dict[str, Any]]:
        attempts = obj.annotation.assignment.attempts.all()
        return AttemptResultSerializer(attempts, many=True).data  # type: ignore[return-value]

    def get_scores_pending(self, obj: CounterfactualEdit) -> list[int]:
        return edit_scores_pending(edit=obj, model_ids=self.context.get("scoring_models", []))

    def get_models_fooled(self, obj: CounterfactualEdit) -> list[int]:
        return edit_models_fooled(obj)

    @extend_schema_field(MediaRefSerializer(allow_null=True))
    def get_mask(self, obj: CounterfactualEdit) -> dict[str, str] | None:
        if obj.mask_media is None:
            return None
        return {"sha256": obj.mask_media.sha256, "url": f"/media/{obj.mask_media.sha256}"}


class NeighboursSerializer(serializers.Serializer):
    previous = serializers.IntegerField(allow_null=True, help_text="the edit before, or null")
    next = serializers.IntegerField(allow_null=True, help_text="the edit after, or null")
    position = serializers.IntegerField(
        allow_null=True, help_text="1-based place in the filtered list; null if not in it"
    )
    count = serializers.IntegerField(help_text="edits passing the filters")


class EditPairSerializer(EditResultSerializer):
    neighbours = serializers.SerializerMethodField(
        help_text="where this edit stands among the edits the same filters give"
    )

    class Meta(EditResultSerializer.Meta):
        fields = [*EditResultSerializer.Meta.fields, "neighbours"]

    @extend_schema_field(NeighboursSerializer)
    def get_neighbours(self, obj: CounterfactualEdit) -> dict[str, Any]:
        return dict(self.context.get("neighbours", {}))


class _CampaignResults(ListAPIView):
    def campaign(self) -> Any:
        if not hasattr(self, "_campaign"):
            self._campaign = campaign_for_user(
                user=self.request.user, campaign_id=self.kwargs["campaign_id"], roles=MANAGER
            )
        return self._campaign


@extend_schema(
    parameters=[
        OpenApiParameter("annotator", str, description="only this annotator's (username)"),
        OpenApiParameter("example", int, description="only this example"),
        OpenApiParameter("reliance", str, description="only this reliance category"),
    ]
)
class CampaignAnnotationsView(_CampaignResults):
    serializer_class = AnnotationResultSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return campaign_annotations(campaign=self.campaign(), params=self.request.query_params)


EDIT_FILTERS = [
    OpenApiParameter("status", str, description="pending, verified or disputed"),
    OpenApiParameter("modality", str, description="only edits of this modality"),
    OpenApiParameter("author", str, description="only this author's (username)"),
    OpenApiParameter("target_label", str, description="only edits towards this label"),
    OpenApiParameter(
        "fooled",
        int,
        description="a campaign model's id: only verified edits it labels other than their "
        "verified (target) label",
    ),
]


@extend_schema(parameters=EDIT_FILTERS)
class CampaignEditsView(_CampaignResults):
    serializer_class = EditResultSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return campaign_edits(campaign=self.campaign(), params=self.request.query_params)

    def get_serializer_context(self) -> dict[str, Any]:
        context = dict(super().get_serializer_context())
        if getattr(self, "swagger_fake_view", False):
            return context
        context["scoring_models"] = campaign_scoring_models(campaign=self.campaign())
        return context


class CampaignEditPairView(APIView):
    """One counterfactual pair, with its neighbours in the list the same filters give (the
    pair viewer pages through them)."""

    @extend_schema(parameters=EDIT_FILTERS, responses=EditPairSerializer)
    def get(self, request: Request, campaign_id: int, edit_id: int) -> Response:
        campaign = campaign_for_user(user=request.user, campaign_id=campaign_id, roles=MANAGER)
        edit, neighbours = campaign_edit_pair(
            campaign=campaign, edit_id=edit_id, params=request.query_params
        )
        context = {
            "scoring_models": campaign_scoring_models(campaign=campaign),
            "neighbours": neighbours,
        }
        return Response(EditPairSerializer(edit, context=context).data)


class CampaignProgressView(APIView):
    @extend_schema(responses=dict)
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = campaign_for_user(user=request.user, campaign_id=campaign_id, roles=MANAGER)
        return Response(campaign_progress(campaign=campaign))


def register(router: Any, urlpatterns: list) -> None:
    urlpatterns += [
        path(
            "campaigns/<int:campaign_id>/annotations/",
            CampaignAnnotationsView.as_view(),
            name="campaign-annotations",
        ),
        path(
            "campaigns/<int:campaign_id>/edits/",
            CampaignEditsView.as_view(),
            name="campaign-edits",
        ),
        path(
            "campaigns/<int:campaign_id>/edits/<int:edit_id>/",
            CampaignEditPairView.as_view(),
            name="campaign-edit-pair",
        ),
        path(
            "campaigns/<int:campaign_id>/progress/",
            CampaignProgressView.as_view(),
            name="campaign-progress",
        ),
    ]
