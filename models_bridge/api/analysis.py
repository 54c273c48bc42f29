"""REST views of analysis jobs (docs/analysis.md): start one, list a campaign's, read one's
results. Managers only, through annotation.access."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import analysis_job_for_user, campaign_for_user
from annotation.models import Job, Membership
from models_bridge.models import AnalysisResult
from models_bridge.services.analysis import analysis_start

MANAGER = [Membership.Role.MANAGER]


class AnalysisStartSerializer(serializers.Serializer):
    model = serializers.IntegerField(help_text="model version id (one of the campaign's)")
    methods = serializers.ListField(
        child=serializers.CharField(max_length=50),
        help_text="method names, e.g. emap, ablation, perceptual",
    )
    params = serializers.DictField(
        required=False,
        help_text="limit, seed, split, path (auto / factorized / black-box), block_rows, "
        "block_tasks, permutations, modalities",
    )


class AnalysisResultSerializer(serializers.ModelSerializer):
    class Meta:
        model = AnalysisResult
        fields = ["id", "method", "result", "created_at"]


class AnalysisJobSerializer(serializers.Serializer):
    job = serializers.DictField()
    model = serializers.CharField()
    methods = serializers.ListField(child=serializers.CharField())
    results = AnalysisResultSerializer(many=True)


def _job_json(job: Job, results: list[AnalysisResult], *, bodies: bool = True) -> dict[str, Any]:
    return {
        "job": {**job.summary(), "error": job.error, "created_at": job.created_at.isoformat()},
        "model": job.params.get("model", ""),
        "methods": job.params.get("methods", []),
        "results": (
            AnalysisResultSerializer(results, many=True).data
            if bodies
            else [{"id": r.pk, "method": r.method} for r in results]
        ),
    }


class CampaignAnalysesView(APIView):
    @extend_schema(request=AnalysisStartSerializer, responses={202: dict})
    def post(self, request: Request, campaign_id: int) -> Response:
        from models_bridge.api.views import model_for_user

        campaign = campaign_for_user(user=request.user, campaign_id=campaign_id, roles=MANAGER)
        ser = AnalysisStartSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        mv = model_for_user(user=request.user, model_id=ser.validated_data["model"])
        params = dict(ser.validated_data.get("params") or {})
        params.setdefault("block_tasks", 2)
        job = analysis_start(
            campaign=campaign,
            model_version=mv,
            methods=ser.validated_data["methods"],
            params=params,
            created_by=request.user,
        )
        response = Response({"job": job.summary()}, status=status.HTTP_202_ACCEPTED)
        response["Location"] = f"/api/v1/campaigns/{campaign.pk}/analyses/{job.pk}/"
        return response

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "results",
                str,
                enum=["full", "methods"],
                description="`methods`: each result as its id and method only (the analyses "
                "page polls this); default `full`",
            )
        ],
        responses={200: AnalysisJobSerializer(many=True)},
    )
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = campaign_for_user(user=request.user, campaign_id=campaign_id, roles=MANAGER)
        bodies = request.query_params.get("results", "full") != "methods"
        jobs = list(
            Job.objects.filter(campaign=campaign, kind=Job.Kind.ANALYSIS)
            .defer("log")
            .order_by("-id")[:100]
        )
        results: dict[int, list[AnalysisResult]] = {j.pk: [] for j in jobs}
        rows = AnalysisResult.objects.filter(job_id__in=list(results)).order_by("id")
        if not bodies:
            rows = rows.only("id", "job_id", "method")
        for r in rows:
            results[r.job_id].append(r)
        return Response([_job_json(j, results[j.pk], bodies=bodies) for j in jobs])


class CampaignAnalysisView(APIView):
    @extend_schema(responses={200: AnalysisJobSerializer})
    def get(self, request: Request, campaign_id: int, job_id: int) -> Response:
        _campaign, job = analysis_job_for_user(
            user=request.user, campaign_id=campaign_id, job_id=job_id
        )
        results = list(AnalysisResult.objects.filter(job_id=job.pk).order_by("id"))
        return Response(_job_json(job, results))


def register(urlpatterns: list) -> None:
    from django.urls import path

    urlpatterns += [
        path(
            "campaigns/<int:campaign_id>/analyses/",
            CampaignAnalysesView.as_view(),
            name="campaign-analyses",
        ),
        path(
            "campaigns/<int:campaign_id>/analyses/<int:job_id>/",
            CampaignAnalysisView.as_view(),
            name="campaign-analysis",
        ),
    ]
