"""REST views of the model bridge. Thin: validate, call one service, serialize."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import ListAPIView
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from annotation.access import (
    assignment_for_user,
    campaign_for_user,
    campaigns_visible_to,
    can_manage_anything,
    dataset_for_user,
    datasets_visible_to,
    is_staff,
    parse_pk,
)
from annotation.models import Membership
from annotation.services.media import decode_data_url
from counterpoint.errors import Forbidden, NotFound, ValidationFailed
from counterpoint.parsers import SafeJSONParser
from models_bridge.api.serializers import (
    BulkScoreSerializer,
    CampaignModelsSerializer,
    ExampleScoreSerializer,
    ModelRegisterSerializer,
    ModelVersionSerializer,
    ScoreRequestSerializer,
)
from models_bridge.models import ModelVersion
from models_bridge.selectors import campaign_example_scores
from models_bridge.services.bulk import bulk_score_start
from models_bridge.services.live import live_score
from models_bridge.services.loading import resolve_location
from models_bridge.services.registry import (
    campaign_models_set,
    model_health,
    model_register,
)

MANAGER = [Membership.Role.MANAGER]
MAX_PACKAGE_UPLOAD = 200 * 1024 * 1024


def models_visible_to(*, user: Any) -> QuerySet[ModelVersion]:
    qs = ModelVersion.objects.all()
    if is_staff(user):
        return qs
    campaigns = campaigns_visible_to(user=user, roles=MANAGER).values("id")
    return qs.filter(
        Q(created_by_id=user.pk)
        | Q(dataset_id__in=datasets_visible_to(user=user).values("id"))
        | Q(campaigns__id__in=campaigns)
    ).distinct()


def model_for_user(*, user: Any, model_id: Any) -> ModelVersion:
    try:
        return models_visible_to(user=user).get(pk=parse_pk(model_id) or 0)
    except (ModelVersion.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"model {model_id} does not exist") from None


class ModelVersionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = ModelVersionSerializer
    parser_classes = [SafeJSONParser, MultiPartParser, FormParser]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return models_visible_to(user=self.request.user).order_by("id")

    def get_object(self):  # type: ignore[no-untyped-def]
        return model_for_user(user=self.request.user, model_id=self.kwargs["pk"])

    @extend_schema(request=ModelRegisterSerializer, responses={201: ModelVersionSerializer})
    def create(self, request: Request) -> Response:
        user = request.user
        if not can_manage_anything(user):
            raise Forbidden(
                "only staff and campaign managers may register models", code="manager_required"
            )
        ser = ModelRegisterSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        data = dict(ser.validated_data)
        dataset = dataset_for_user(user=user, dataset_id=data.pop("dataset"))
        upload = data.pop("package", None)
        if upload is not None:
            if upload.size > MAX_PACKAGE_UPLOAD:
                raise ValidationFailed(
                    f"the package is over {MAX_PACKAGE_UPLOAD:,} bytes", code="package_too_large"
                )
            data["package_data"] = upload.read()
            data["location"] = ""
        elif data["kind"] == ModelVersion.Kind.TORCHSCRIPT and not is_staff(user):
            # A server path is the server's file system: managers may only name packages
            # inside COUNTERPOINT_MODELS_DIR; anything else is uploaded.
            from django.conf import settings

            root = resolve_location(".").resolve()
            target = resolve_location(data["location"]).resolve()
            if root != target and root not in target.parents:
                raise Forbidden(
                    f"a package path must lie inside {settings.MODELS_DIR}; upload the zip instead",
                    code="package_path_forbidden",
                )
        elif not is_staff(user):
            _check_manager_location(kind=data["kind"], location=data["location"])
        mv = model_register(dataset=dataset, created_by=user, **data)
        return Response(ModelVersionSerializer(mv).data, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["get"])
    def health(self, request: Request, pk: Any = None) -> Response:
        return Response(model_health(model_version=self.get_object()))


class LiveScoreThrottle(UserRateThrottle):
    """Per user, rate from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["live_score"]
    (LIVE_SCORE_RATE), read when the throttle is built rather than at import."""

    scope = "live_score"

    def get_rate(self) -> str | None:
        from rest_framework.settings import api_settings

        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        return str(rate) if rate is not None else None


class ScoreView(APIView):
    throttle_classes = [LiveScoreThrottle]

    @extend_schema(request=ScoreRequestSerializer, responses={200: dict})
    def post(self, request: Request) -> Response:
        ser = ScoreRequestSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        data = ser.validated_data
        assignment = assignment_for_user(user=request.user, assignment_id=data["assignment"])
        image = decode_data_url(data["image"], what="image") if data.get("image") else None
        result = live_score(
            assignment=assignment,
            modality=data["modality"],
            value=data.get("value"),
            image=image,
            target_label=data.get("target_label") or None,
        )
        return Response(result)


class CampaignModelsView(APIView):
    @extend_schema(
        request=CampaignModelsSerializer, responses={200: ModelVersionSerializer(many=True)}
    )
    def put(self, request: Request, campaign_id: int) -> Response:
        campaign = campaign_for_user(user=request.user, campaign_id=campaign_id, roles=MANAGER)
        ser = CampaignModelsSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        mvs = [model_for_user(user=request.user, model_id=i) for i in ser.validated_data["models"]]
        campaign_models_set(campaign=campaign, model_versions=mvs)
        return Response(ModelVersionSerializer(mvs, many=True).data)

    @extend_schema(responses={200: ModelVersionSerializer(many=True)})
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = campaign_for_user(user=request.user, campaign_id=campaign_id, roles=MANAGER)
        return Response(
            ModelVersionSerializer(campaign.model_versions.order_by("id"), many=True).data
        )


class BulkScoreView(APIView):
    @extend_schema(request=BulkScoreSerializer, responses={202: dict})
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign = campaign_for_user(user=request.user, campaign_id=campaign_id, roles=MANAGER)
        ser = BulkScoreSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        mv = model_for_user(user=request.user, model_id=ser.validated_data["model"])
        job = bulk_score_start(
            model_version=mv,
            campaign=campaign,
            target=ser.validated_data["target"],
            created_by=request.user,
        )
        response = Response({"job": job.summary()}, status=status.HTTP_202_ACCEPTED)
        response["Location"] = f"/api/v1/jobs/{job.pk}/"
        return response


class ScoresPage(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


@extend_schema(
    parameters=[
        OpenApiParameter("model", int, description="only this model"),
        OpenApiParameter("split", str, description="only examples of this split"),
        OpenApiParameter("label", str, description="only examples with this gold label"),
        OpenApiParameter("predicted", str, description="only rows predicting this label"),
        OpenApiParameter("correct", bool, description="only right (true) or wrong (false) rows"),
        OpenApiParameter("scored", bool, description="only rows with (true) or without scores"),
    ]
)
class CampaignScoresView(ListAPIView):
    """Per example of the campaign's pool and per campaign model: the stored prediction, its
    probabilities and whether it is correct. Managers only."""

    serializer_class = ExampleScoreSerializer
    pagination_class = ScoresPage

    def get_queryset(self):  # type: ignore[no-untyped-def]
        campaign = campaign_for_user(
            user=self.request.user, campaign_id=self.kwargs["campaign_id"], roles=MANAGER
        )
        return campaign_example_scores(campaign=campaign, params=self.request.query_params)


def register(router: Any, urlpatterns: list) -> None:
    from django.urls import path

    router.register("models", ModelVersionViewSet, basename="model")
    urlpatterns += [
        path("score/", ScoreView.as_view(), name="live-score"),
        path(
            "campaigns/<int:campaign_id>/models/",
            CampaignModelsView.as_view(),
            name="campaign-models",
        ),
        path(
            "campaigns/<int:campaign_id>/bulk-score/",
            BulkScoreView.as_view(),
            name="campaign-bulk-score",
        ),
        path(
            "campaigns/<int:campaign_id>/scores/",
            CampaignScoresView.as_view(),
            name="campaign-scores",
        ),
    ]


def _check_manager_location(*, kind: str, location: str) -> None:
    """Managers who are not staff name code and hosts only from the operator's allowlists:
    an entry point is any importable callable (it is called at registration), and a remote URL
    makes this server send requests wherever it points."""
    from urllib.parse import urlsplit

    from django.conf import settings

    if kind == ModelVersion.Kind.ENTRYPOINT:
        allowed = list(settings.MODEL_ENTRYPOINT_ALLOWED_MODULES)
        module = location.partition(":")[0]
        # Prefixes match whole module paths: "lab.models" allows lab.models and lab.models.x,
        # never lab.models_evil.
        prefixes = [p.rstrip(".") for p in allowed if p.strip(".")]
        if not any(module == p or module.startswith(p + ".") for p in prefixes):
            raise Forbidden(
                f"entry point module {module!r} is not in MODEL_ENTRYPOINT_ALLOWED_MODULES "
                f"({', '.join(allowed) or 'empty'}); ask staff to register it",
                code="entrypoint_forbidden",
            )
    elif kind == ModelVersion.Kind.REMOTE:
        allowed = [h.lower() for h in settings.REMOTE_MODEL_ALLOWED_HOSTS]
        host = (urlsplit(location).hostname or "").lower()
        if host not in allowed:
            raise Forbidden(
                f"remote host {host!r} is not in REMOTE_MODEL_ALLOWED_HOSTS "
                f"({', '.join(allowed) or 'empty'}); ask staff to register it",
                code="remote_host_forbidden",
            )
