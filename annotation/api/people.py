"""People of a campaign (docs/managing.md "People"), manager-only: members with their work and
standing, deactivation, invites and sign-up links, crowd study links, the people rules (task
cap, screening). Thin views: access helper → one service → serialize."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import campaign_for_user, membership_grant_check
from annotation.models import Campaign, CrowdLink, Invite, Membership
from annotation.selectors_people import people_rows
from annotation.services.campaigns import membership_set_active
from annotation.services.people import (
    PRESETS,
    campaign_people_rules_set,
    crowd_link_create,
    crowd_link_update,
    invite_create,
    invite_revoke,
    membership_task_cap_set,
)
from counterpoint.errors import NotFound, ValidationFailed

MANAGER = [Membership.Role.MANAGER]


def _campaign(request: Request, campaign_id: int) -> Campaign:
    return campaign_for_user(user=request.user, campaign_id=campaign_id, roles=MANAGER)


def _body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ValidationFailed("the request body must be a JSON object", code="body_invalid")
    return request.data


def site_origin(request: Any) -> str:
    return f"{request.scheme}://{request.get_host()}"


def invite_json(invite: Invite) -> dict[str, Any]:
    return {
        "id": invite.pk,
        "role": invite.role,
        "email": invite.email,
        "expires_at": invite.expires_at,
        "used_at": invite.used_at,
        "accepted_by": invite.accepted_by_id,
        "created_at": invite.created_at,
    }


def crowd_link_json(link: CrowdLink, origin: str) -> dict[str, Any]:
    params = [p for p in (link.worker_param, link.study_param, link.session_param) if p]
    query = "&".join(f"{p}={{{{%{p}%}}}}" for p in params)
    return {
        "id": link.pk,
        "name": link.name,
        "url": f"{origin}/crowd/{link.pk}/{link.token}/",
        # What a platform's study URL looks like (Prolific's placeholder syntax).
        "example_url": f"{origin}/crowd/{link.pk}/{link.token}/?{query}",
        "worker_param": link.worker_param,
        "study_param": link.study_param,
        "session_param": link.session_param,
        "completion_code": link.completion_code,
        "screening_fail_code": link.screening_fail_code,
        "completion_url": link.completion_url,
        "active": link.active,
        "created_at": link.created_at,
    }


def rules_json(campaign: Campaign) -> dict[str, Any]:
    return {
        "task_cap": campaign.task_cap,
        "screening_items": campaign.screening_items,
        "screening_pass_mark": campaign.screening_pass_mark,
    }


_PERSON = inline_serializer(
    "Person",
    {
        "id": serializers.IntegerField(),
        "user_id": serializers.IntegerField(),
        "username": serializers.CharField(),
        "email": serializers.CharField(),
        "role": serializers.CharField(),
        "arm": serializers.CharField(),
        "active": serializers.BooleanField(),
        "annotations_done": serializers.IntegerField(),
        "validations_done": serializers.IntegerField(),
        "task_cap": serializers.IntegerField(allow_null=True),
        "own_task_cap": serializers.IntegerField(allow_null=True),
        "screening": serializers.CharField(),
        "crowd": serializers.DictField(allow_null=True),
    },
)
_RULES = inline_serializer(
    "PeopleRules",
    {
        "task_cap": serializers.IntegerField(allow_null=True, required=False),
        "screening_items": serializers.IntegerField(required=False),
        "screening_pass_mark": serializers.FloatField(required=False),
    },
)
_INVITE_IN = inline_serializer(
    "InviteCreate",
    {
        "role": serializers.ChoiceField(choices=Membership.Role.choices),
        "email": serializers.EmailField(required=False, allow_blank=True),
        "ttl_hours": serializers.IntegerField(required=False),
    },
)
_INVITE = inline_serializer(
    "Invite",
    {
        "id": serializers.IntegerField(),
        "role": serializers.CharField(),
        "email": serializers.CharField(),
        "expires_at": serializers.DateTimeField(),
        "used_at": serializers.DateTimeField(allow_null=True),
        "accepted_by": serializers.IntegerField(allow_null=True),
        "created_at": serializers.DateTimeField(),
        "url": serializers.CharField(required=False),
    },
)
_LINK_FIELDS: dict[str, serializers.Field] = {
    "name": serializers.CharField(required=False, max_length=100),
    "worker_param": serializers.CharField(required=False),
    "study_param": serializers.CharField(required=False, allow_blank=True),
    "session_param": serializers.CharField(required=False, allow_blank=True),
    "completion_code": serializers.CharField(required=False, allow_blank=True),
    "screening_fail_code": serializers.CharField(required=False, allow_blank=True),
    "completion_url": serializers.CharField(required=False, allow_blank=True),
    "active": serializers.BooleanField(required=False),
}
_LINK_IN = inline_serializer(
    "CrowdLinkWrite",
    {"preset": serializers.ChoiceField(choices=sorted(PRESETS), required=False), **_LINK_FIELDS},
)
_LINK = inline_serializer(
    "CrowdLink",
    {
        "id": serializers.IntegerField(),
        "url": serializers.CharField(),
        "example_url": serializers.CharField(),
        "created_at": serializers.DateTimeField(),
        **_LINK_FIELDS,
    },
)


def _link_fields(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _LINK_FIELDS:
        if key in body:
            value = body[key]
            if key == "active":
                if not isinstance(value, bool):
                    raise ValidationFailed("active is true or false", code="body_invalid")
            elif not isinstance(value, str):
                raise ValidationFailed(f"{key} must be a string", code="body_invalid")
            out[key] = value
    return out


class PeopleView(APIView):
    @extend_schema(responses={200: serializers.ListSerializer(child=_PERSON)})
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id)
        return Response(people_rows(campaign=campaign))


class PersonView(APIView):
    @extend_schema(
        request=inline_serializer(
            "PersonUpdate",
            {
                "active": serializers.BooleanField(required=False),
                "task_cap": serializers.IntegerField(allow_null=True, required=False),
            },
        ),
        responses=_PERSON,
    )
    def patch(self, request: Request, campaign_id: int, membership_id: int) -> Response:
        campaign = _campaign(request, campaign_id)
        membership = campaign.memberships.select_related("user").filter(pk=membership_id).first()
        if membership is None:
            raise NotFound(f"membership {membership_id} is not in campaign {campaign_id}")
        body = _body(request)
        if "active" not in body and "task_cap" not in body:
            raise ValidationFailed("give active or task_cap", code="body_invalid")
        active = body.get("active", membership.active)
        if not isinstance(active, bool):
            raise ValidationFailed("active is true or false", code="body_invalid")
        cap = body.get("task_cap")
        if (
            "task_cap" in body
            and cap is not None
            and (not isinstance(cap, int) or isinstance(cap, bool))
        ):
            raise ValidationFailed("task_cap is a whole number or null", code="task_cap_invalid")
        membership_grant_check(
            user=request.user,
            campaign=campaign,
            role=membership.role,
            grantee_username=membership.user.username,
            removing=not active,
        )
        if "task_cap" in body:
            membership_task_cap_set(membership=membership, task_cap=cap)
        if "active" in body:
            membership_set_active(membership=membership, active=active)
        row = next(r for r in people_rows(campaign=campaign) if r["id"] == membership.pk)
        return Response(row)


class PeopleRulesView(APIView):
    @extend_schema(responses=_RULES)
    def get(self, request: Request, campaign_id: int) -> Response:
        return Response(rules_json(_campaign(request, campaign_id)))

    @extend_schema(request=_RULES, responses=_RULES)
    def patch(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id)
        body = _body(request)
        fields: dict[str, Any] = {}
        for key, kind in (
            ("task_cap", int),
            ("screening_items", int),
            ("screening_pass_mark", (int, float)),
        ):
            if key in body:
                value = body[key]
                ok = isinstance(value, kind) and not isinstance(value, bool)  # type: ignore[arg-type]
                if not ok and not (key == "task_cap" and value is None):
                    raise ValidationFailed(f"{key} must be a number", code="body_invalid")
                fields[key] = value
        campaign_people_rules_set(campaign=campaign, **fields)
        return Response(rules_json(campaign))


class InvitesView(APIView):
    @extend_schema(responses={200: serializers.ListSerializer(child=_INVITE)})
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id)
        return Response([invite_json(i) for i in campaign.invites.order_by("-id")])

    @extend_schema(request=_INVITE_IN, responses={201: _INVITE})
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id)
        body = _body(request)
        role = body.get("role")
        if not isinstance(role, str):
            raise ValidationFailed("role is required", code="membership_role")
        ttl = body.get("ttl_hours")
        if ttl is not None and (not isinstance(ttl, int) or isinstance(ttl, bool)):
            raise ValidationFailed("ttl_hours must be a whole number", code="invite_ttl_invalid")
        email = body.get("email") or ""
        if not isinstance(email, str):
            raise ValidationFailed("email must be a string", code="invite_email_invalid")
        # The grantee is unknown until sign-up, so never the caller: self-grants cannot pass.
        membership_grant_check(user=request.user, campaign=campaign, role=role, grantee_username="")
        invite, url = invite_create(
            campaign=campaign,
            role=role,
            email=email,
            ttl_hours=ttl,
            created_by=request.user,
            link_base=site_origin(request),
        )
        return Response({**invite_json(invite), "url": url}, status=status.HTTP_201_CREATED)


class InviteView(APIView):
    @extend_schema(responses={204: OpenApiResponse(description="revoked")})
    def delete(self, request: Request, campaign_id: int, invite_id: int) -> Response:
        campaign = _campaign(request, campaign_id)
        invite = campaign.invites.filter(pk=invite_id).first()
        if invite is None:
            raise NotFound(f"invite {invite_id} is not in campaign {campaign_id}")
        invite_revoke(invite=invite)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CrowdLinksView(APIView):
    @extend_schema(responses={200: serializers.ListSerializer(child=_LINK)})
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id)
        origin = site_origin(request)
        return Response([crowd_link_json(link, origin) for link in campaign.crowd_links.all()])

    @extend_schema(request=_LINK_IN, responses={201: _LINK})
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id)
        body = _body(request)
        preset = body.get("preset", "prolific")
        if not isinstance(preset, str):
            raise ValidationFailed("preset must be a string", code="crowd_preset_unknown")
        link = crowd_link_create(
            campaign=campaign, created_by=request.user, preset=preset, **_link_fields(body)
        )
        return Response(crowd_link_json(link, site_origin(request)), status=status.HTTP_201_CREATED)


class CrowdLinkView(APIView):
    @extend_schema(request=_LINK_IN, responses=_LINK)
    def patch(self, request: Request, campaign_id: int, link_id: int) -> Response:
        campaign = _campaign(request, campaign_id)
        link = campaign.crowd_links.filter(pk=link_id).first()
        if link is None:
            raise NotFound(f"crowd link {link_id} is not in campaign {campaign_id}")
        crowd_link_update(link=link, **_link_fields(_body(request)))
        return Response(crowd_link_json(link, site_origin(request)))


def register(router: Any, urlpatterns: list) -> None:
    from django.urls import path

    base = "campaigns/<int:campaign_id>/"
    urlpatterns += [
        path(f"{base}people/", PeopleView.as_view(), name="campaign-people"),
        path(f"{base}people/rules/", PeopleRulesView.as_view(), name="campaign-people-rules"),
        path(f"{base}people/<int:membership_id>/", PersonView.as_view(), name="campaign-person"),
        path(f"{base}invites/", InvitesView.as_view(), name="campaign-invites"),
        path(f"{base}invites/<int:invite_id>/", InviteView.as_view(), name="campaign-invite"),
        path(f"{base}crowd-links/", CrowdLinksView.as_view(), name="campaign-crowd-links"),
        path(
            f"{base}crowd-links/<int:link_id>/", CrowdLinkView.as_view(), name="campaign-crowd-link"
        ),
    ]
