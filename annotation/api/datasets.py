from __future__ import annotations

from typing import Any

from django.db.models import Count
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from annotation.access import can_manage_anything, dataset_for_user, datasets_visible_to
from annotation.api.serializers import DatasetCreateSerializer, DatasetSerializer, ExampleSerializer
from annotation.models import Example
from annotation.services.datasets import dataset_create
from counterpoint.errors import Forbidden
from counterpoint.parsers import query_filter


class DatasetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = DatasetSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return (
            datasets_visible_to(user=self.request.user)
            .annotate(example_count=Count("examples"))
            .order_by("id")
        )

    def get_object(self):  # type: ignore[no-untyped-def]
        dataset_for_user(user=self.request.user, dataset_id=self.kwargs["pk"])
        return self.get_queryset().get(pk=self.kwargs["pk"])

    @extend_schema(request=DatasetCreateSerializer, responses={201: DatasetSerializer})
    def create(self, request: Request) -> Response:
        if not can_manage_anything(request.user):
            raise Forbidden(
                "only staff and campaign managers may create datasets", code="manager_required"
            )
        data = DatasetCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        dataset = dataset_create(created_by=request.user, **data.validated_data)
        return Response(DatasetSerializer(dataset).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[
            OpenApiParameter("split", str, description="only examples of this split"),
            OpenApiParameter("label", str, description="only examples with this gold label"),
        ],
        responses=ExampleSerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def examples(self, request: Request, pk: Any = None) -> Response:
        dataset = dataset_for_user(user=request.user, dataset_id=pk)
        qs = Example.objects.filter(dataset=dataset).order_by("id")
        if split := query_filter(request.query_params, "split"):
            qs = qs.filter(split=split)
        if label := query_filter(request.query_params, "label"):
            qs = qs.filter(label=label)
        page = self.paginate_queryset(qs)
        ser = ExampleSerializer(page, many=True, context={"dataset": dataset})
        return self.get_paginated_response(ser.data)


def register(router: Any, urlpatterns: list) -> None:
    router.register("datasets", DatasetViewSet, basename="dataset")
