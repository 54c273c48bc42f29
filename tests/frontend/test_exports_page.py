"""The exports page is the campaign's managers' (and staff's): others get a page error."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def _get(user, campaign):  # type: ignore[no-untyped-def]
    client = Client()
    if user is not None:
        client.force_login(user)
    return client.get(f"/manage/campaigns/{campaign.pk}/exports/")


def test_exports_page_roles(campaign, manager, annotator, validator, outsider, staff):
    page = _get(manager, campaign)
    assert page.status_code == 200
    body = page.content.decode()
    assert 'aria-current="page">Exports<' in body
    for fmt in ("jsonl", "csv", "parquet", "hf"):
        assert f'value="{fmt}"' in body
    assert _get(staff, campaign).status_code == 200
    assert _get(annotator, campaign).status_code == 403
    assert _get(validator, campaign).status_code == 403
    assert _get(outsider, campaign).status_code == 404
    anonymous = _get(None, campaign)
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
