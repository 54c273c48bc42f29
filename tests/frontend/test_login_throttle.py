"""The sign-in page is throttled per account and per address (issue 7, A4), with a page that
says so, and works again once the window has passed."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.test import Client

from annotation.services import accounts
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
PASSWORD = "pw-for-tests"


def _login(username: str, password: str, addr: str = "10.9.0.1") -> Any:
    return Client().post(
        "/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=addr
    )


def test_fifty_wrong_passwords_are_not_all_tried(settings: Any, monkeypatch: Any) -> None:
    user = UserFactory(username="lou-locked")
    statuses = [_login(user.username, f"wrong-{i}").status_code for i in range(50)]
    allowed = settings.LOGIN_FAILURES_PER_USERNAME
    assert statuses == [200] * allowed + [429] * (50 - allowed)
    page = _login(user.username, PASSWORD)
    assert page.status_code == 429
    assert b"Too many failed sign-ins" in page.content
    assert b"Try again in 15 minutes" in page.content
    later = time.time() + settings.LOGIN_FAILURE_WINDOW_S + 1
    monkeypatch.setattr(accounts, "_now", lambda: later)
    signed_in = _login(user.username, PASSWORD)
    assert signed_in.status_code == 302 and signed_in["Location"] == "/"


def test_one_address_guessing_many_accounts_is_stopped(settings: Any) -> None:
    n = settings.LOGIN_FAILURES_PER_ADDRESS
    for i in range(n):
        assert _login(f"nobody-{i}", "guess", addr="10.9.9.9").status_code == 200
    user = UserFactory(username="rita-real")
    assert _login(user.username, PASSWORD, addr="10.9.9.9").status_code == 429
    assert _login(user.username, PASSWORD, addr="10.9.9.8").status_code == 302


def test_the_admin_signs_in_through_the_throttled_page() -> None:
    response = Client().get("/admin/login/?next=/admin/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/admin/"
