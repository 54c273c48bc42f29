"""The Content-Security-Policy of the product's pages (counterpoint/csp.py): scripts from this
origin only, no eval; the admin and /api/ keep their own pages' inline scripts working."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from annotation.models import Membership
from tests.annotation.annotator_helpers import member, text_campaign

pytestmark = pytest.mark.django_db


def test_pages_send_a_self_only_script_policy() -> None:
    campaign = text_campaign(2)
    manager = member(campaign, "csp-manager", Membership.Role.MANAGER)
    c = Client()
    login = c.get("/accounts/login/")
    policy = login["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-eval" not in policy
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    c.force_login(manager)
    for path in ("/", f"/manage/campaigns/{campaign.pk}/dashboard/"):
        resp = c.get(path)
        assert resp.status_code == 200, path
        assert resp["Content-Security-Policy"] == policy


@pytest.mark.parametrize("path", ["/api/docs/", "/admin/"])
def test_admin_and_api_pages_are_left_alone(admin_user: Any, path: str) -> None:
    c = Client()
    c.force_login(admin_user)
    resp = c.get(path)
    assert resp.status_code == 200
    assert "Content-Security-Policy" not in resp


def test_dashboard_page_is_for_managers_only() -> None:
    campaign = text_campaign(2)
    annotator = member(campaign, "csp-annotator")
    c = Client()
    c.force_login(annotator)
    assert c.get(f"/manage/campaigns/{campaign.pk}/dashboard/").status_code == 403
    c.force_login(member(text_campaign(1), "csp-outsider"))
    assert c.get(f"/manage/campaigns/{campaign.pk}/dashboard/").status_code == 404
    assert Client().get(f"/manage/campaigns/{campaign.pk}/dashboard/").status_code == 302
