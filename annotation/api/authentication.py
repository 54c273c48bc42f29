"""Token authentication with expiry. Its own module: DRF imports authentication classes while
its views module loads, so this must not import rest_framework.views."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, status
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from annotation.services.accounts import token_is_expired


class TokenRefused(exceptions.APIException):
    """401 with a WWW-Authenticate challenge. Not an AuthenticationFailed: DRF turns those
    into 403 because session authentication comes first, and a token client must learn that
    its token (not its permissions) is the problem."""

    status_code = status.HTTP_401_UNAUTHORIZED
    auth_header = "Token"


class ExpiringTokenAuthentication(TokenAuthentication):
    """DRF's token authentication, refusing tokens older than API_TOKEN_TTL_HOURS."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Token]:
        token = Token.objects.select_related("user").filter(key=key).first()
        if token is None:
            raise TokenRefused("the token is not valid (revoked or never issued)", "token_invalid")
        if not token.user.is_active:
            raise TokenRefused("the token's user is inactive", "token_invalid")
        if token_is_expired(token=token):
            raise TokenRefused(
                "the token has expired: POST /api/v1/auth/token/ for a new one", "token_expired"
            )
        return token.user, token
