"""POST /api/v1/imports/ starts an import Job; GET /api/v1/jobs/ and /api/v1/jobs/{id}/ follow
jobs the caller started or can see. Views are thin: validate, call one service, serialize."""

from __future__ import annotations

from typing import Any

from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import can_manage_anything
from annotation.importers.easyvqa import SPLITS
from annotation.models import Job
from annotation.services.imports import FORMATS, import_job_create
from annotation.services.jobs import job_for_user, jobs_visible_to
from counterpoint.errors import Forbidden
from counterpoint.parsers import SafeJSONParser, query_filter

HIDDEN_PARAMS = ("staging",)


@extend_schema_field(
    {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
)
class ListOrStringField(serializers.Field):
    """Accepts a JSON list (JSON bodies) or a comma-separated string (forms)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str | list):
            return data
        raise serializers.ValidationError("give a list or a comma-separated string")

    def to_representation(self, value: Any) -> Any:
        return value


class ImportRequestSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=FORMATS)
    dataset = serializers.CharField(
        required=False, max_length=200, help_text='dataset name (easyvqa: "easy-VQA")'
    )
    manifest = serializers.FileField(required=False, help_text="jsonl/csv: the manifest file")
    media = serializers.FileField(
        required=False, help_text="jsonl/csv: a zip of the media the manifest names"
    )
    schema = serializers.FileField(
        required=False,
        help_text='{"modalities": [...], "label_space": [...], "metadata": {key: type}} '
        "(docs/importing.md)",
    )
    modalities = ListOrStringField(required=False, help_text="image:image,text:text or a JSON list")
    labels = ListOrStringField(required=False, help_text="a,b,c or a JSON list")
    skip_invalid = serializers.BooleanField(required=False, default=False)
    split = serializers.ChoiceField(
        choices=SPLITS, required=False, help_text="easyvqa: train or test"
    )
    limit = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, help_text="easyvqa: sample size"
    )
    seed = serializers.IntegerField(required=False, default=0, help_text="easyvqa: sampling seed")


class JobSerializer(serializers.ModelSerializer):
    # Plain strings, not enums: other components have their own "kind"/"status" choice sets,
    # and one shared enum name per field keeps the OpenAPI schema free of name collisions.
    kind = serializers.CharField(read_only=True, help_text="import, export, score or analysis")
    status = serializers.CharField(
        read_only=True, help_text="pending, running, succeeded or failed"
    )
    created_by: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    params = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "status",
            "campaign",
            "dataset",
            "params",
            "progress_done",
            "progress_total",
            "progress",
            "error",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_params(self, obj: Job) -> dict[str, Any]:
        return {k: v for k, v in (obj.params or {}).items() if k not in HIDDEN_PARAMS}

    def get_progress(self, obj: Job) -> float:
        return round(obj.progress_fraction(), 4)


class JobDetailSerializer(JobSerializer):
    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "log", "result"]
        read_only_fields = fields


class ImportCreateView(APIView):
    parser_classes = [MultiPartParser, FormParser, SafeJSONParser]

    @extend_schema(
        request={
            "multipart/form-data": ImportRequestSerializer,
            "application/json": ImportRequestSerializer,
        },
        responses={202: JobSerializer},
        summary="Start an import (a Job of kind import, run by a worker)",
    )
    def post(self, request: Request) -> Response:
        if not can_manage_anything(request.user):
            raise Forbidden(
                "only staff and campaign managers may import datasets", code="manager_required"
            )
        data = ImportRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        job = import_job_create(
            created_by=request.user,
            fmt=v["format"],
            dataset_name=v.get("dataset"),
            manifest=v.get("manifest"),
            media_archive=v.get("media"),
            schema_file=v.get("schema"),
            modalities=v.get("modalities"),
            label_space=v.get("labels"),
            skip_invalid=v.get("skip_invalid", False),
            split=v.get("split"),
            limit=v.get("limit"),
            seed=v.get("seed", 0),
        )
        response = Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
        response["Location"] = f"/api/v1/jobs/{job.pk}/"
        return response


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = JobSerializer

    def get_serializer_class(self):  # type: ignore[no-untyped-def]
        return JobDetailSerializer if self.action == "retrieve" else JobSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        qs = jobs_visible_to(user=self.request.user).select_related("created_by").order_by("-id")
        if kind := query_filter(self.request.query_params, "kind"):
            qs = qs.filter(kind=kind)
        if st := query_filter(self.request.query_params, "status"):
            qs = qs.filter(status=st)
        return qs

    def get_object(self):  # type: ignore[no-untyped-def]
        return job_for_user(user=self.request.user, job_id=self.kwargs["pk"])

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "kind", str, description="only jobs of this kind (import, export, score, analysis)"
            ),
            OpenApiParameter("status", str, description="only jobs in this status"),
        ]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)


def register(router: Any, urlpatterns: list) -> None:
    router.register("jobs", JobViewSet, basename="job")
    urlpatterns.append(path("imports/", ImportCreateView.as_view(), name="import-create"))
