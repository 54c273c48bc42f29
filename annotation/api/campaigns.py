from __future__ import annotations

from typing import Any

from django.db.models import Count, Exists, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from annotation.access import (
    campaign_for_user,
    campaigns_visible_to,
    can_manage_anything,
    dataset_for_user,
    is_staff,
    membership_grant_check,
)
from annotation.api.serializers import (
    CampaignExamplesAddSerializer,
    CampaignSerializer,
    CampaignWriteSerializer,
    MembershipCreateSerializer,
    MembershipSerializer,
)
from annotation.models import Membership
from annotation.services.campaigns import (
    campaign_add_examples,
    campaign_create,
    campaign_update,
    membership_add_by_username,
    membership_remove,
)
from counterpoint.errors import Forbidden, NotFound

MANAGER = [Membership.Role.MANAGER]


def _team_size(roles: list[str]) -> Any:
    """Distinct members holding one of `roles`, as a subquery (no join that would multiply
    the pool rows counted beside it)."""
    return Coalesce(
        Subquery(
            Membership.objects.filter(campaign_id=OuterRef("pk"), role__in=roles)
            .order_by()
            .values("campaign_id")
            .annotate(n=Count("user_id", distinct=True))
            .values("n")[:1]
        ),
        0,
    )


class CampaignViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = CampaignSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        user = self.request.user
        manages = (
            Value(True)
            if is_staff(user)
            else Exists(
                Membership.objects.filter(
                    campaign_id=OuterRef("pk"), user_id=user.pk, role=Membership.Role.MANAGER
                )
            )
        )
        return (
            campaigns_visible_to(user=user)
            .select_related("dataset")
            .prefetch_related("model_versions")
            .annotate(
                pool_size=Count("items", distinct=True),
                viewer_manages=manages,
                team_annotators=_team_size([Membership.Role.ANNOTATOR]),
                team_validator_eligible=_team_size(
                    [Membership.Role.ANNOTATOR, Membership.Role.VALIDATOR]
                ),
            )
            .order_by("id")
        )

    def get_object(self):  # type: ignore[no-untyped-def]
        campaign_for_user(user=self.request.user, campaign_id=self.kwargs["pk"])
        return self.get_queryset().get(pk=self.kwargs["pk"])

    @extend_schema(request=CampaignWriteSerializer, responses={201: CampaignSerializer})
    def create(self, request: Request) -> Response:
        if not can_manage_anything(request.user):
            raise Forbidden(
                "only staff and campaign managers may create campaigns", code="manager_required"
            )
        ser = CampaignWriteSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        fields = dict(ser.validated_data)
        dataset = dataset_for_user(user=request.user, dataset_id=fields.pop("dataset").pk)
        name = fields.pop("name")
        campaign = campaign_create(dataset=dataset, name=name, created_by=request.user, **fields)
        return Response(
            CampaignSerializer(self.get_queryset().get(pk=campaign.pk)).data,
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(request=CampaignWriteSerializer, responses=CampaignSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        campaign = campaign_for_user(user=request.user, campaign_id=kwargs["pk"], roles=MANAGER)
        ser = CampaignWriteSerializer(campaign, data=request.data, partial=True)
        ser.is_valid(raise_exception=True)
        fields = dict(ser.validated_data)
        if "dataset" in fields and fields["dataset"].pk != campaign.dataset_id:
            raise Forbidden("a campaign's dataset cannot change", code="campaign_dataset_fixed")
        fields.pop("dataset", None)
        name = fields.pop("name", None)
        if name is not None and name != campaign.name:
            campaign.name = name
            campaign.save(update_fields=["name"])
        campaign_update(campaign=campaign, **fields)
        return Response(CampaignSerializer(self.get_queryset().get(pk=campaign.pk)).data)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.partial_update(request, *args, **kwargs)

    @extend_schema(request=CampaignExamplesAddSerializer, responses={201: dict})
    @action(detail=True, methods=["post"], url_path="examples")
    def add_examples(self, request: Request, pk: Any = None) -> Response:
        campaign = campaign_for_user(user=request.user, campaign_id=pk, roles=MANAGER)
        ser = CampaignExamplesAddSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        added = campaign_add_examples(campaign=campaign, **ser.validated_data)
        return Response(
            {"added": added, "pool_size": campaign.items.count()}, status=status.HTTP_201_CREATED
        )

    @extend_schema(responses=MembershipSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="memberships")
    def memberships(self, request: Request, pk: Any = None) -> Response:
        campaign = campaign_for_user(user=request.user, campaign_id=pk, roles=MANAGER)
        qs = campaign.memberships.select_related("user").order_by("id")
        return Response(MembershipSerializer(qs, many=True).data)

    @extend_schema(request=MembershipCreateSerializer, responses={201: MembershipSerializer})
    @memberships.mapping.post
    def add_membership(self, request: Request, pk: Any = None) -> Response:
        campaign = campaign_for_user(user=request.user, campaign_id=pk, roles=MANAGER)
        ser = MembershipCreateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        membership_grant_check(
            user=request.user,
            campaign=campaign,
            role=ser.validated_data["role"],
            grantee_username=ser.validated_data["username"],
        )
        membership = membership_add_by_username(campaign=campaign, **ser.validated_data)
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None})
    @action(detail=True, methods=["delete"], url_path=r"memberships/(?P<membership_id>\d+)")
    def remove_membership(
        self, request: Request, pk: Any = None, membership_id: Any = None
    ) -> Response:
        campaign = campaign_for_user(user=request.user, campaign_id=pk, roles=MANAGER)
        membership = campaign.memberships.select_related("user").filter(pk=membership_id).first()
        if membership is None:
            raise NotFound(f"membership {membership_id} is not in campaign {pk}")
        membership_grant_check(
            user=request.user,
            campaign=campaign,
            role=membership.role,
            grantee_username=membership.user.username,
            removing=True,
        )
        membership_remove(membership=membership)
        return Response(status=status.HTTP_204_NO_CONTENT)


def register(router: Any, urlpatterns: list) -> None:
    router.register("campaigns", CampaignViewSet, basename="campaign")
