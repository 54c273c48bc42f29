"""Models on a campaign's perturbation studies, for its managers (docs/perturbation.md):
POST .../score/ starts one bulk scoring job per campaign model over the study's items; GET
.../curves/ returns the humans' and models' curves, points of chance and the gap by level.
The minimal perturbation to chance runs as an analysis job (method perturbation_minimal,
params {"study": id}). Thin: access helper → service → JSON."""

from __future__ import annotations

from typing import Any

from django.urls import path
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import perturbation_study_for_user
from models_bridge.services.perturbation import (
    perturbation_score_start,
    study_curves,
    study_minimal,
)


class StudyScoreView(APIView):
    @extend_schema(
        request=None,
        responses={
            202: inline_serializer(
                "PerturbationScoring",
                {"jobs": serializers.ListField(child=serializers.DictField())},
            )
        },
        summary="Score every perturbed item of the study with every campaign model (bulk jobs)",
    )
    def post(self, request: Request, campaign_id: int, study_id: int) -> Response:
        study = perturbation_study_for_user(
            user=request.user, campaign_id=campaign_id, study_id=study_id
        )
        jobs = perturbation_score_start(study=study, created_by=request.user)
        return Response(
            {"jobs": [{**j.summary(), "model_version": j.params["model_version"]} for j in jobs]},
            status=status.HTTP_202_ACCEPTED,
        )


class StudyCurvesView(APIView):
    @extend_schema(
        responses=inline_serializer(
            "PerturbationCurves",
            {
                "study": serializers.IntegerField(),
                "levels": serializers.ListField(child=serializers.FloatField()),
                "chance": serializers.FloatField(),
                "humans": serializers.DictField(),
                "models": serializers.ListField(child=serializers.DictField()),
                "gap": serializers.ListField(child=serializers.DictField()),
            },
        ),
        summary="Human and model accuracy by level, fitted curves, halfway levels and the gap",
    )
    def get(self, request: Request, campaign_id: int, study_id: int) -> Response:
        study = perturbation_study_for_user(
            user=request.user, campaign_id=campaign_id, study_id=study_id
        )
        return Response(study_curves(study=study))


class StudyMinimalView(APIView):
    @extend_schema(
        responses=inline_serializer(
            "PerturbationMinimal",
            {"results": serializers.ListField(child=serializers.DictField())},
        ),
        summary="The latest minimal perturbation to chance per model, beside the human edit sizes",
    )
    def get(self, request: Request, campaign_id: int, study_id: int) -> Response:
        study = perturbation_study_for_user(
            user=request.user, campaign_id=campaign_id, study_id=study_id
        )
        return Response({"results": study_minimal(study=study)})


def register(urlpatterns: list[Any]) -> None:
    base = "campaigns/<int:campaign_id>/perturbation-studies/<int:study_id>/"
    urlpatterns += [
        path(f"{base}score/", StudyScoreView.as_view(), name="perturbation-study-score"),
        path(f"{base}curves/", StudyCurvesView.as_view(), name="perturbation-study-curves"),
        path(f"{base}minimal/", StudyMinimalView.as_view(), name="perturbation-study-minimal"),
    ]
