"""Perturbation studies of a campaign, for its managers (docs/perturbation.md): the catalogue
of perturbations, POST defines a study (and starts the job that builds its items), GET lists
and reads them. Annotators and validators get 403, outsiders 404. Thin: access helper →
service or selector → JSON."""

from __future__ import annotations

from typing import Any

from django.urls import path
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import campaign_for_user, perturbation_study_for_user
from annotation.models import Membership
from annotation.selectors_perturbations import perturbation_catalogue, studies_of, study_detail
from annotation.services.perturbations import perturbation_study_create

MANAGER = [Membership.Role.MANAGER]

_STUDY = inline_serializer(
    "PerturbationStudy",
    {
        "id": serializers.IntegerField(),
        "campaign": serializers.IntegerField(),
        "name": serializers.CharField(),
        "modality": serializers.CharField(),
        "perturbation": serializers.CharField(),
        "levels": serializers.ListField(child=serializers.FloatField()),
        "seed": serializers.IntegerField(),
        "chance": serializers.FloatField(allow_null=True),
        "status": serializers.CharField(help_text="building, ready or failed"),
        "job": serializers.DictField(allow_null=True),
        "items_by_level": serializers.ListField(child=serializers.IntegerField()),
        "created_at": serializers.DateTimeField(),
        "humans": serializers.DictField(
            required=False,
            help_text="one study only: labels_by_level, labels, annotators",
        ),
        "jobs": serializers.DictField(
            required=False,
            help_text="one study only: the latest score and minimal-perturbation job per model",
        ),
    },
)


class StudyRequestSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, allow_blank=True)
    modality = serializers.CharField(max_length=100)
    perturbation = serializers.CharField(max_length=40)
    levels = serializers.ListField(
        child=serializers.FloatField(),
        required=False,
        help_text="strictly increasing, the first the identity; default: the perturbation's ladder",
    )
    seed = serializers.IntegerField(required=False, default=0, min_value=0, max_value=2**31 - 1)
    chance = serializers.FloatField(
        required=False, allow_null=True, default=None, help_text="default 1 / |labels|"
    )


class PerturbationCatalogueView(APIView):
    @extend_schema(
        responses=inline_serializer(
            "PerturbationCatalogue",
            {"results": serializers.ListField(child=serializers.DictField())},
        )
    )
    def get(self, request: Request) -> Response:
        return Response({"results": perturbation_catalogue()})


class CampaignStudiesView(APIView):
    @extend_schema(
        responses=inline_serializer("PerturbationStudies", {"results": _STUDY}),
        operation_id="campaign_perturbation_studies_list",
        summary="A campaign's perturbation studies with their item counts per level",
    )
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = campaign_for_user(user=request.user, campaign_id=campaign_id, roles=MANAGER)
        return Response({"results": studies_of(campaign=campaign)})

    @extend_schema(
        request=StudyRequestSerializer,
        responses={201: _STUDY},
        summary="Define a perturbation study (a Job of kind perturb builds its items)",
    )
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign = campaign_for_user(user=request.user, campaign_id=campaign_id, roles=MANAGER)
        data = StudyRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        study = perturbation_study_create(
            campaign=campaign, created_by=request.user, **data.validated_data
        )
        response = Response(study_detail(study=study), status=status.HTTP_201_CREATED)
        response["Location"] = f"/api/v1/campaigns/{campaign.pk}/perturbation-studies/{study.pk}/"
        return response


class CampaignStudyDetailView(APIView):
    @extend_schema(responses=_STUDY, operation_id="campaign_perturbation_study_retrieve")
    def get(self, request: Request, campaign_id: int, study_id: int) -> Response:
        study = perturbation_study_for_user(
            user=request.user, campaign_id=campaign_id, study_id=study_id
        )
        return Response(study_detail(study=study))


def register(router: Any, urlpatterns: list) -> None:
    base = "campaigns/<int:campaign_id>/perturbation-studies/"
    urlpatterns += [
        path("perturbations/", PerturbationCatalogueView.as_view(), name="perturbation-catalogue"),
        path(base, CampaignStudiesView.as_view(), name="campaign-perturbation-studies"),
        path(
            f"{base}<int:study_id>/",
            CampaignStudyDetailView.as_view(),
            name="campaign-perturbation-study",
        ),
    ]
