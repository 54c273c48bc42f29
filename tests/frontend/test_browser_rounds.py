"""The dashboard's Rounds section in real headless Chromium, under the page CSP: open a round
against a campaign model from the form, see an edit submitted meanwhile counted in it
without a reload, close it (docs/rounds.md)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from annotation.models import CampaignRound
from tests.annotation.dashboard_helpers import annotate, worked_campaign
from tests.frontend.conftest import shot
from tests.frontend.test_browser_dashboard import open_dashboard

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_open_a_round_watch_it_fill_and_close_it(page: Any, transactional_db: Any) -> None:
    campaign, manager = worked_campaign("rounds", examples=6, annotators=2, tasks_each=0)
    target = campaign.model_versions.order_by("id").first()
    violations = open_dashboard(page, campaign, manager)
    body = page.locator("#dash-rounds-body")
    expect(body).to_contain_text("No rounds")

    page.select_option("#dash-round-target", str(target.pk))
    page.click("#dash-round-open button[type=submit]")
    expect(page.locator("#dash-round-msg")).to_have_text("Round 1 is open.")
    row = page.locator('#dash-rounds-body tr[data-round="1"]')
    expect(row).to_contain_text("open")
    expect(row).to_contain_text(f"{target.name} {target.version}")
    assert CampaignRound.objects.get(campaign=campaign).target_id == target.pk

    # An edit submitted now belongs to round 1; the next poll counts it.
    people = sorted(
        (m.user for m in campaign.memberships.select_related("user") if m.role == "annotator"),
        key=lambda u: u.username,
    )
    assert annotate(campaign, people[0], "no", "yes")
    expect(row.locator("td").nth(3)).to_have_text("1", timeout=20_000)
    # Opening a second round while one is open names the rule.
    page.click("#dash-round-open button[type=submit]")
    expect(page.locator("#dash-round-msg")).to_contain_text("already has an open round")
    shot(page, "dashboard-rounds")

    row.locator("button", has_text="Close").click()
    expect(row.locator("td").nth(2)).to_have_text("closed")
    assert CampaignRound.objects.get(campaign=campaign).closed_at is not None
    assert page.evaluate("() => performance.getEntriesByType('navigation').length") == 1
    assert not violations, violations
