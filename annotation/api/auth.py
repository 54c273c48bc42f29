"""Token authentication with expiry, the token endpoint (throttled per account and address)
and revocation. How to get and revoke a token: README "API tokens"."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.services.accounts import (
    client_address,
    login_failure_record,
    login_success_record,
    login_throttle_wait,
    token_expires_at,
    token_issue,
    token_revoke,
)


class LoginThrottled(exceptions.Throttled):
    default_code = "login_throttled"

    def __init__(self, wait: int) -> None:
        super().__init__(
            wait=wait,
            detail=(
                "too many failed sign-ins for this account or from this address; "
                f"try again in {wait} seconds"
            ),
            code="login_throttled",
        )


class TokenObtainView(APIView):
    """Exchange a username and password for the user's API token (a new key once the old one
    has expired)."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=AuthTokenSerializer,
        responses={
            200: inline_serializer(
                "TokenIssued",
                {"token": serializers.CharField(), "expires_at": serializers.DateTimeField()},
            )
        },
    )
    def post(self, request: Request) -> Response:
        data = request.data if isinstance(request.data, dict) else {}
        username = str(data.get("username") or "")
        address = client_address(request)
        wait = login_throttle_wait(username=username, address=address)
        if wait:
            raise LoginThrottled(wait)
        ser = AuthTokenSerializer(data=request.data, context={"request": request})
        try:
            ser.is_valid(raise_exception=True)
        except exceptions.ValidationError:
            login_failure_record(username=username, address=address)
            raise
        user = ser.validated_data["user"]
        login_success_record(username=username)
        token = token_issue(user=user)
        return Response({"token": token.key, "expires_at": token_expires_at(token=token)})


class TokenRevokeView(APIView):
    """Revoke the caller's API token (signing out of the pages revokes it too)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request) -> Response:
        token_revoke(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
