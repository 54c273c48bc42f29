"""Exports of a campaign, for its managers (docs/exports.md): POST starts an export Job,
GET lists and reads them with their progress, /download/ streams the stored archive (session
or API token). Annotators and validators get 403, outsiders 404 (access.export_for_user)."""

from __future__ import annotations

from typing import Any

from django.http import FileResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import campaign_for_user, export_for_user
from annotation.export_format import FORMATS
from annotation.models import Job, Membership
from annotation.services.exports import export_file_path, export_job_create

MANAGER = [Membership.Role.MANAGER]


class ExportRequestSerializer(serializers.Serializer):
    format = serializers.ChoiceField(
        choices=FORMATS,
        help_text="jsonl, csv, parquet (images as bytes, the datasets Image layout) or hf "
        "(that Parquet in a Hugging Face dataset folder with configs in README.md)",
    )


class ExportSerializer(serializers.ModelSerializer):
    status = serializers.CharField(
        read_only=True, help_text="pending, running, succeeded or failed"
    )
    format = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()
    created_by: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    file_name = serializers.SerializerMethodField()
    size_bytes = serializers.SerializerMethodField()
    sha256 = serializers.SerializerMethodField()
    rows = serializers.SerializerMethodField(help_text='{"annotations": n, "pairs": n}')
    download_url = serializers.SerializerMethodField(help_text="set once the export succeeded")

    class Meta:
        model = Job
        fields = [
            "id",
            "campaign",
            "status",
            "format",
            "progress_done",
            "progress_total",
            "progress",
            "error",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
            "file_name",
            "size_bytes",
            "sha256",
            "rows",
            "download_url",
        ]
        read_only_fields = fields

    def _result(self, obj: Job) -> dict[str, Any]:
        return obj.result if isinstance(obj.result, dict) else {}

    def get_format(self, obj: Job) -> str:
        return str((obj.params or {}).get("format", ""))

    def get_progress(self, obj: Job) -> float:
        return round(obj.progress_fraction(), 4)

    def get_file_name(self, obj: Job) -> str | None:
        return self._result(obj).get("file_name")

    def get_size_bytes(self, obj: Job) -> int | None:
        return self._result(obj).get("size_bytes")

    def get_sha256(self, obj: Job) -> str | None:
        return self._result(obj).get("sha256")

    def get_rows(self, obj: Job) -> dict[str, int] | None:
        return self._result(obj).get("rows")

    def get_download_url(self, obj: Job) -> str | None:
        if obj.status != Job.Status.SUCCEEDED or not obj.result_file:
            return None
        return f"/api/v1/campaigns/{obj.campaign_id}/exports/{obj.pk}/download/"


class ExportDetailSerializer(ExportSerializer):
    log = serializers.JSONField(read_only=True)

    class Meta(ExportSerializer.Meta):
        fields = [*ExportSerializer.Meta.fields, "log"]
        read_only_fields = fields


class CampaignExportsView(ListAPIView):
    serializer_class = ExportSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        campaign = campaign_for_user(
            user=self.request.user, campaign_id=self.kwargs["campaign_id"], roles=MANAGER
        )
        return (
            Job.objects.filter(campaign=campaign, kind=Job.Kind.EXPORT)
            .select_related("created_by")
            .defer("log")
            .order_by("-id")
        )

    @extend_schema(
        request=ExportRequestSerializer,
        responses={202: ExportSerializer},
        summary="Start an export (a Job of kind export, run by a worker on the io queue)",
    )
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign = campaign_for_user(user=request.user, campaign_id=campaign_id, roles=MANAGER)
        data = ExportRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = export_job_create(
            campaign=campaign, created_by=request.user, fmt=data.validated_data["format"]
        )
        response = Response(ExportSerializer(job).data, status=status.HTTP_202_ACCEPTED)
        response["Location"] = f"/api/v1/campaigns/{campaign.pk}/exports/{job.pk}/"
        return response


class CampaignExportDetailView(APIView):
    @extend_schema(responses=ExportDetailSerializer)
    def get(self, request: Request, campaign_id: int, export_id: int) -> Response:
        job = export_for_user(user=request.user, campaign_id=campaign_id, export_id=export_id)
        return Response(ExportDetailSerializer(job).data)


class _FileOrJson(BaseContentNegotiation):
    """The body is the archive whatever the Accept header says; errors render as JSON."""

    def select_parser(self, request: Any, parsers: Any) -> Any:
        return parsers[0]

    def select_renderer(self, request: Any, renderers: Any, format_suffix: Any = None) -> Any:
        return renderers[0], renderers[0].media_type


class CampaignExportDownloadView(APIView):
    content_negotiation_class = _FileOrJson

    @extend_schema(responses={(200, "application/zip"): OpenApiTypes.BINARY})
    def get(self, request: Request, campaign_id: int, export_id: int) -> FileResponse:
        job = export_for_user(user=request.user, campaign_id=campaign_id, export_id=export_id)
        file = export_file_path(job=job)
        response = FileResponse(
            file.open("rb"), as_attachment=True, filename=file.name, content_type="application/zip"
        )
        # Immutable (named by its content hash) but private: who may read it is per user.
        response["Cache-Control"] = "private, max-age=31536000, immutable"
        response["ETag"] = f'"{(job.result or {}).get("sha256", "")}"'
        return response


def register(router: Any, urlpatterns: list) -> None:
    base = "campaigns/<int:campaign_id>/exports/"
    urlpatterns += [
        path(base, CampaignExportsView.as_view(), name="campaign-exports"),
        path(
            f"{base}<int:export_id>/",
            CampaignExportDetailView.as_view(),
            name="campaign-export-detail",
        ),
        path(
            f"{base}<int:export_id>/download/",
            CampaignExportDownloadView.as_view(),
            name="campaign-export-download",
        ),
    ]
