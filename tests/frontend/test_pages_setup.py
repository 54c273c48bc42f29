"""The setup pages are shells for managers: who gets them, and which module each loads."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def signed_in(user: Any) -> Client:
    c = Client()
    c.force_login(user)
    return c


def test_setup_pages_for_managers_only(
    campaign: Any, manager: Any, annotator: Any, outsider: Any
) -> None:
    base = f"/manage/campaigns/{campaign.pk}"
    pages = {
        f"{base}/": "campaign_form.js",
        f"{base}/pool/": "pool.js",
        f"{base}/preview/": "workspace.js",
    }
    for path, module in pages.items():
        resp = signed_in(manager).get(path)
        assert resp.status_code == 200, path
        assert f'src="/static/frontend/js/{module}"' in resp.content.decode()
        assert signed_in(annotator).get(path).status_code == 403, path
        assert signed_in(outsider).get(path).status_code == 404, path
    assert 'data-preview="1"' in signed_in(manager).get(f"{base}/preview/").content.decode()
    page = signed_in(manager).get("/manage/").content.decode()
    assert 'href="/manage/campaigns/new/"' in page
    assert signed_in(manager).get("/manage/campaigns/new/").status_code == 200
    # Annotators manage nothing: the list has no New campaign button, the form is refused.
    assert (
        'href="/manage/campaigns/new/"' not in signed_in(annotator).get("/manage/").content.decode()
    )
    assert signed_in(annotator).get("/manage/campaigns/new/").status_code == 403
    assert Client().get("/manage/").status_code == 302  # sign in first
