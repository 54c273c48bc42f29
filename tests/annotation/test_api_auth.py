"""API tokens (issue 7, A9: expiry, revocation, logout, password change) and the token
endpoint's sign-in throttle (A4), through the real endpoints."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotation.services import accounts
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
PASSWORD = "pw-for-tests"  # tests.factories.UserFactory


def _obtain(username: str, password: str = PASSWORD, addr: str = "10.0.0.1") -> Any:
    return APIClient().post(
        "/api/v1/auth/token/",
        {"username": username, "password": password},
        format="json",
        REMOTE_ADDR=addr,
    )


def _whoami(key: str) -> Any:
    return APIClient().get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Token {key}")


@pytest.fixture
def user():  # type: ignore[no-untyped-def]
    return UserFactory(username="tina-token")


def test_a_token_works_until_it_expires_then_a_new_one_is_issued(user, settings) -> None:  # type: ignore[no-untyped-def]
    response = _obtain(user.username)
    assert response.status_code == 200
    key = response.json()["token"]
    assert response.json()["expires_at"]
    assert _whoami(key).status_code == 200
    # Time passing is the only way a token gets old: move its issue time back past the TTL.
    Token.objects.filter(key=key).update(
        created=timezone.now() - timedelta(hours=settings.API_TOKEN_TTL_HOURS, seconds=1)
    )
    expired = _whoami(key)
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "token_expired"
    assert expired["WWW-Authenticate"] == "Token"
    fresh = _obtain(user.username).json()["token"]
    assert fresh != key and _whoami(fresh).status_code == 200


def test_revoke_endpoint_revokes_the_callers_token(user) -> None:  # type: ignore[no-untyped-def]
    key = _obtain(user.username).json()["token"]
    other = _obtain(UserFactory(username="olga-other").username).json()["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.post("/api/v1/auth/token/revoke/").status_code == 204
    refused = _whoami(key)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "token_invalid"
    assert _whoami(other).status_code == 200
    assert APIClient().post("/api/v1/auth/token/revoke/").status_code == 403


def test_signing_out_revokes_the_token(user) -> None:  # type: ignore[no-untyped-def]
    key = _obtain(user.username).json()["token"]
    page = Client()
    assert (
        page.post("/accounts/login/", {"username": user.username, "password": PASSWORD}).status_code
        == 302
    )
    assert page.post("/accounts/logout/").status_code == 302
    assert _whoami(key).status_code == 401
    # The admin's sign-out button is the same sign-out.
    key = _obtain(user.username).json()["token"]
    admin = Client()
    admin.force_login(user)
    assert admin.post("/admin/logout/").status_code == 302
    assert _whoami(key).status_code == 401


def test_own_password_change_revokes_the_token(user) -> None:  # type: ignore[no-untyped-def]
    key = _obtain(user.username).json()["token"]
    page = Client()
    page.force_login(user)
    response = page.post(
        "/accounts/password_change/",
        {
            "old_password": PASSWORD,
            "new_password1": "a-new-passphrase-41",
            "new_password2": "a-new-passphrase-41",
        },
    )
    assert response.status_code == 302, response.content[:500]
    assert _whoami(key).status_code == 401


def test_admin_set_password_revokes_the_token(user) -> None:  # type: ignore[no-untyped-def]
    key = _obtain(user.username).json()["token"]
    admin = Client()
    admin.force_login(UserFactory(username="ada-admin", is_staff=True, is_superuser=True))
    response = admin.post(
        f"/admin/auth/user/{user.pk}/password/",
        {"password1": "a-new-passphrase-42", "password2": "a-new-passphrase-42"},
    )
    assert response.status_code == 302, response.content[:500]
    assert _whoami(key).status_code == 401
    key = _obtain(user.username, "a-new-passphrase-42").json()["token"]
    user.set_password("a-new-passphrase-43")
    user.save()
    assert _whoami(key).status_code == 401


@pytest.mark.parametrize("weak", ["password123", "83920174629", "qwertyuiop"])
def test_common_and_numeric_passwords_are_refused(weak: str) -> None:
    with pytest.raises(ValidationError):
        validate_password(weak)


def test_token_endpoint_throttles_per_account(user, settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for i in range(settings.LOGIN_FAILURES_PER_USERNAME):
        # Several addresses: the per-account count holds whatever the address.
        assert _obtain(user.username, "wrong", addr=f"10.1.0.{i}").status_code == 400
    for password in ["wrong", PASSWORD]:
        refused = _obtain(user.username, password, addr="10.2.0.1")
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "login_throttled"
        assert 0 < int(refused["Retry-After"]) <= settings.LOGIN_FAILURE_WINDOW_S
    assert not Token.objects.filter(user=user).exists()
    # Another account from the same addresses is not locked out.
    assert (
        _obtain(UserFactory(username="una-unrelated").username, addr="10.1.0.1").status_code == 200
    )
    later = time.time() + settings.LOGIN_FAILURE_WINDOW_S + 1
    monkeypatch.setattr(accounts, "_now", lambda: later)
    assert _obtain(user.username, addr="10.2.0.1").status_code == 200


def test_token_endpoint_throttles_per_address(settings) -> None:  # type: ignore[no-untyped-def]
    victims = [
        UserFactory(username=f"vic-{i}") for i in range(settings.LOGIN_FAILURES_PER_ADDRESS + 1)
    ]
    for v in victims[:-1]:
        assert _obtain(v.username, "wrong", addr="10.3.0.9").status_code == 400
    refused = _obtain(victims[-1].username, addr="10.3.0.9")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "login_throttled"
    assert _obtain(victims[-1].username, addr="10.3.0.10").status_code == 200
