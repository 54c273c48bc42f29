"""The seeded demo `manager` uses the admin, and the home page's Manage and Admin links go
somewhere that works for whoever sees them (issue 7, A10)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.management import call_command
from django.test import Client

from annotation.models import Campaign

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded(tmp_path: Path, settings: Any) -> dict[str, str]:
    settings.VAR_DIR = tmp_path
    call_command("seed_demo", examples=10, stdout=open(tmp_path / "seed.log", "w"))
    return json.loads((tmp_path / "demo-credentials.json").read_text())


def _login(username: str, password: str) -> Client:
    c = Client()
    resp = c.post("/accounts/login/", {"username": username, "password": password})
    assert resp.status_code == 302, resp.content[:300]
    return c


def test_seeded_manager_uses_the_admin(seeded: dict[str, str]) -> None:
    c = _login("manager", seeded["manager"])
    campaign = Campaign.objects.get(name="easy-VQA demo")
    home = c.get("/").content.decode()
    manage = re.search(r'href="([^"]+)">Manage<', home)
    assert manage is not None
    # Manage leads to the campaign's settings page of the manager console.
    assert manage.group(1) == f"/manage/campaigns/{campaign.pk}/"
    assert 'href="/admin/">Admin<' in home
    for path in [
        "/admin/",
        manage.group(1),
        f"/admin/annotation/campaign/{campaign.pk}/change/",
        "/admin/annotation/membership/",
        "/admin/annotation/counterfactualedit/",
        "/admin/auth/user/",
    ]:
        page = c.get(path)
        assert page.status_code == 200, path
        assert b"have permission" not in page.content, path


def test_demo_passwords_pass_the_validators(seeded: dict[str, str]) -> None:
    users = get_user_model().objects.in_bulk(list(seeded), field_name="username")
    for username, password in seeded.items():
        validate_password(password, users[username])


def test_staff_without_permissions_get_links_that_work(campaign: Any, manager: Any) -> None:
    manager.is_staff = True
    manager.save()
    c = Client()
    c.force_login(manager)
    home = c.get("/").content.decode()
    assert 'href="/admin/">Admin<' not in home
    manage = re.search(r'href="([^"]+)">Manage<', home)
    assert manage is not None and manage.group(1) == f"/manage/campaigns/{campaign.pk}/"
    assert c.get(manage.group(1)).status_code == 200
