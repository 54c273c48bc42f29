"""The campaign dashboard in real headless Chromium, under the page CSP (no eval): every
chart draws marks from the API's data, the figures refresh without a reload, CSV downloads
work; screenshots of an empty, a half-done and a finished campaign."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from annotation.models import Campaign, Membership
from tests.annotation.annotator_helpers import add_annotators, member, text_campaign
from tests.annotation.dashboard_helpers import annotate, worked_campaign
from tests.frontend.conftest import login, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHARTS = ["throughput", "labels", "minimality", "flips", "models"]


def open_dashboard(page: Any, campaign: Any, manager: Any) -> list[str]:
    violations: list[str] = []
    page.on(
        "console",
        lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    login(page, manager.username, next_url=f"/manage/campaigns/{campaign.pk}/dashboard/")
    page.wait_for_selector("#dashboard[data-loaded]")
    return violations


def marks(page: Any, chart: str) -> int:
    return page.locator(f"#chart-{chart} svg .mark-rect path").count()


def test_dashboard_draws_every_chart_and_refreshes(page: Any, transactional_db: Any) -> None:
    campaign, manager = worked_campaign("half", examples=12, annotators=6, tasks_each=3)
    resp = page.request.get("/accounts/login/")
    assert "script-src 'self'" in resp.headers["content-security-policy"]
    violations = open_dashboard(page, campaign, manager)
    for chart in CHARTS:
        page.wait_for_selector(f'[data-chart="{chart}"][data-rendered="1"]')
        assert marks(page, chart) > 0, f"{chart} has no marks"
    rows = page.locator("#dash-annotators tr")
    assert rows.count() == 6
    assert page.locator('[data-count="annotations"]').inner_text().startswith("18 / 36")
    page.locator(".dash-vis").first.scroll_into_view_if_needed()
    shot(page, "dashboard-half-done")
    page.set_viewport_size({"width": 1280, "height": 2200})
    shot(page, "dashboard-half-done-full")

    # More work arrives: the page shows it without a reload.
    people = sorted(
        {m.user for m in campaign.memberships.select_related("user") if m.role == "annotator"},
        key=lambda u: u.username,
    )
    assert annotate(campaign, people[0], "no", "yes")
    expect(page.locator('[data-count="annotations"]')).to_have_text(
        re.compile(r"^19 / 36"), timeout=20_000
    )
    # Same document: the page was not reloaded (the CSP rules out string evaluation here).
    assert page.evaluate("() => performance.getEntriesByType('navigation').length") == 1

    # Each chart can be saved as SVG and PNG (vega-embed's menu uses the same view calls).
    with page.expect_download() as dl:
        page.locator('[data-csv="labels"]').click()
    text = open(dl.value.path(), encoding="utf-8").read()
    assert {r["label"] for r in csv.DictReader(io.StringIO(text))} <= {"yes", "no"}
    menu = page.locator('[data-chart="labels"] .vega-actions a')
    assert {menu.nth(i).text_content() for i in range(menu.count())} >= {
        "Save as SVG",
        "Save as PNG",
    }
    assert not violations, violations


def test_empty_and_finished_campaigns(page: Any, transactional_db: Any) -> None:
    empty, manager = worked_campaign("empty", examples=6, annotators=4, tasks_each=0)
    violations = open_dashboard(page, empty, manager)
    for chart in CHARTS:
        section = page.locator(f'[data-chart="{chart}"]')
        assert section.locator(".dash-empty").is_visible(), chart
    page.set_viewport_size({"width": 1280, "height": 1700})
    shot(page, "dashboard-empty")

    done, manager2 = worked_campaign("done", examples=6, annotators=4, tasks_each=6, seed=3)
    page.context.clear_cookies()
    open_dashboard(page, done, manager2)
    for chart in CHARTS:
        page.wait_for_selector(f'[data-chart="{chart}"][data-rendered="1"]')
        assert marks(page, chart) > 0
    assert page.locator(".dash-bar").get_attribute("aria-valuenow") == "100"
    shot(page, "dashboard-finished")
    assert not violations, violations


def test_a_few_minutes_with_one_label(page: Any, transactional_db: Any) -> None:
    """Work of the last few minutes, everyone giving the same label: the throughput axis is
    in minutes (not a half-day), and the label chart keeps a band per label of the label
    space with bars of a sensible thickness (not one strip squeezed across the chart)."""
    campaign = text_campaign(4, redundancy=3, name="one", status=Campaign.Status.ACTIVE)
    manager = member(campaign, "one-manager", Membership.Role.MANAGER)
    for user in add_annotators(campaign, 3, prefix="one"):
        assert annotate(campaign, user, "no", "yes")
    violations = open_dashboard(page, campaign, manager)
    for chart in ("throughput", "labels"):
        page.wait_for_selector(f'[data-chart="{chart}"][data-rendered="1"]')
    data = page.request.get(f"/api/v1/campaigns/{campaign.pk}/dashboard/").json()
    assert data["throughput_unit"] == "minute"
    assert [r["label"] for r in data["labels"]] == ["no", "yes"]
    # The x axis spans the buckets sent (a dozen minutes), labelled as clock times.
    ticks = page.evaluate(
        "() => [...document.querySelectorAll('#chart-throughput svg .role-axis-label')]"
        ".flatMap((g) => [...g.querySelectorAll('text')].map((t) => t.textContent))"
    )
    ticks = [t for t in ticks if ":" in t or not t.isdigit()]  # the x axis; y ticks are counts
    assert ticks and all(re.fullmatch(r"\d\d:\d\d", t) for t in ticks), ticks
    bars = page.locator("#chart-labels svg .mark-rect path")
    assert bars.count() == 2
    heights = [bars.nth(i).bounding_box()["height"] for i in range(2)]  # type: ignore[index]
    assert all(12 <= h <= 28 for h in heights), heights
    page.set_viewport_size({"width": 1280, "height": 1700})
    shot(page, "dashboard-minutes-one-label")
    assert not violations, violations


def test_big_campaign_shows_computing_then_its_figures(
    page: Any, transactional_db: Any, settings: Any
) -> None:
    """A campaign past DASHBOARD_INLINE_MAX_ANNOTATIONS with no stored figures yet: the page
    says they are being computed, and shows them, "as of" their time, once a worker has
    computed them (the task run here, as a worker would), without a reload."""
    from annotation.services.dashboard import dashboard_refresh

    campaign, manager = worked_campaign("big", examples=6, annotators=3, tasks_each=2)
    settings.DASHBOARD_INLINE_MAX_ANNOTATIONS = 1
    login(page, manager.username, next_url=f"/manage/campaigns/{campaign.pk}/dashboard/")
    page.wait_for_selector('#dashboard[data-state="computing"]')
    expect(page.locator("#dash-updated")).to_contain_text("Computing")
    shot(page, "dashboard-computing")
    assert dashboard_refresh(campaign_id=campaign.pk)
    page.wait_for_selector("#dashboard[data-loaded]", timeout=20_000)
    expect(page.locator("#dash-updated")).to_contain_text(re.compile(r"as of \d"))
    assert page.locator('[data-count="annotations"]').inner_text().startswith("6 / 18")
    assert page.evaluate("() => performance.getEntriesByType('navigation').length") == 1
