"""The pair viewer's page shell (no browser): for the campaign's managers only, at the list
path and at every pair's stable link, with the filter choices it offers."""

from __future__ import annotations

import json
import re
from typing import Any

from django.test import Client

from tests.frontend.test_pages import signed_in


def test_pairs_page_is_for_managers(
    campaign: Any, manager: Any, annotator: Any, outsider: Any, staff: Any
) -> None:
    for path in (
        f"/manage/campaigns/{campaign.pk}/pairs/",
        f"/manage/campaigns/{campaign.pk}/pairs/7/",
    ):
        resp = Client().get(path)
        assert resp.status_code == 302 and resp["Location"].startswith("/accounts/login/")
        assert signed_in(annotator).get(path).status_code == 403
        assert signed_in(outsider).get(path).status_code == 404
        assert signed_in(staff).get(path).status_code == 200
        page = signed_in(manager).get(path)
        assert page.status_code == 200
        html = page.content.decode()
        assert f'href="/manage/campaigns/{campaign.pk}/pairs/" aria-current="page"' in html
        assert "frontend/js/pairs.js" in html


def test_the_page_carries_the_edit_id_and_the_filter_choices(campaign: Any, manager: Any) -> None:
    html = signed_in(manager).get(f"/manage/campaigns/{campaign.pk}/pairs/7/").content.decode()
    assert 'data-edit="7"' in html
    raw = re.search(r'data-options="([^"]*)"', html)
    assert raw is not None
    options = json.loads(raw.group(1).replace("&quot;", '"'))
    assert options["editable"] == ["image", "text"]
    assert options["labels"] == list(campaign.dataset.label_space)
    assert options["models"] == [] and options["authors"] == []
    assert options["validations_required"] == campaign.validations_required
