"""A researcher running a 20-annotator campaign walks the setup, pool, people and preview
pages in real Chromium (issue 8 §1-2): every message reads as they expect (plural forms, the
form's field names, no impossible "0 of 0"), gold items get their own answers on the pool
page and one person gets their own task cap on the people page. Screenshots of each page
go to artifacts/screenshots/walk-*.png."""

from __future__ import annotations

import re
from typing import Any

import pytest

from annotation.models import CampaignExample, Membership
from annotation.services.campaigns import campaign_create
from tests.annotation.annotator_helpers import add_annotators
from tests.factories import DatasetFactory, ExampleFactory
from tests.frontend.conftest import login, member, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# What never reads right to a researcher: raw field names (a command to run is fine),
# "(s)" plurals, "1 tasks", "0 of the 0".
WRONG = re.compile(r"(?<!manage\.py )\b[a-z]+_[a-z_]+\b|\w\(s\)|\b0 of the 0\b|\b1 [a-z]+s\b")


def _reads_right(page: Any) -> str:
    text = page.inner_text("main")
    found = WRONG.findall(text)
    assert not found, f"{page.url}: {found}"
    return text


def _settings(page: Any, campaign: Any) -> str:
    page.goto(f"/manage/campaigns/{campaign.pk}/")
    page.wait_for_selector("#lifecycle-leases:not(:empty)")
    page.wait_for_function("() => document.getElementById('f-name').value !== ''")
    return _reads_right(page)


def test_a_researcher_sets_up_a_20_annotator_campaign(page: Any, transactional_db: Any) -> None:
    labels = ["positive", "negative", "mixed"]
    dataset = DatasetFactory(
        name="reviews", modalities=[{"name": "text", "kind": "text"}], label_space=labels
    )
    examples = [
        ExampleFactory(
            dataset=dataset,
            values={"text": f"review {i}: the product was fine"},
            label=None if i >= 50 else labels[i % 3],
            split="train" if i < 40 else "test",
        )
        for i in range(60)
    ]
    campaign = campaign_create(dataset=dataset, name="Reviews 20", seed=3)
    member(campaign, "rhea", Membership.Role.MANAGER)
    login(page, "rhea", next_url=f"/manage/campaigns/{campaign.pk}/")

    # Nobody has joined yet: the validation warning says so, in the form's words.
    text = _settings(page, campaign)
    warning = page.inner_text("#campaign-warnings [data-code='team_too_small_for_validation']")
    assert "nobody has joined this campaign yet" in warning
    assert "“Validators per edit”" in warning and "6 people" in warning
    assert page.locator("#campaign-warnings code").count() == 0  # no rule code shown raw
    assert "No open leases." in text
    shot(page, "walk-settings-no-team")

    # The pool: every example, then gold items, two unlabelled ones with the answer given.
    page.goto(f"/manage/campaigns/{campaign.pk}/pool/")
    page.wait_for_selector("#gold-answer option[value='mixed']", state="attached")
    page.click("#pool-add")
    page.wait_for_function("() => document.getElementById('pool-count').textContent === '60'")
    unlabelled = [examples[50].pk, examples[51].pk]
    page.fill("#gold-ids", str(unlabelled[0]))
    page.click("#gold-add")  # no answer and no label: refused, with the reason
    err = page.wait_for_selector("#err-gold:not([hidden])")
    assert err.get_attribute("data-code") == "gold_needs_answer"
    assert "give the gold answer" in err.inner_text()
    page.fill("#gold-ids", ", ".join(map(str, unlabelled)))
    page.select_option("#gold-answer", "mixed")
    page.click("#gold-add")
    page.wait_for_selector(f"#gold-table tr[data-example='{unlabelled[1]}']")
    page.fill("#gold-ids", str(examples[0].pk))
    page.select_option("#gold-answer", "")
    page.click("#gold-add")
    page.wait_for_selector(f"#gold-table tr[data-example='{examples[0].pk}']")
    rows = page.locator("#gold-table tbody tr")
    assert rows.count() == 3
    assert "mixed (given)" in page.inner_text(f"#gold-table tr[data-example='{unlabelled[0]}']")
    assert "positive (its label)" in page.inner_text(
        f"#gold-table tr[data-example='{examples[0].pk}']"
    )
    assert dict(
        CampaignExample.objects.filter(campaign=campaign, is_gold=True).values_list(
            "example_id", "gold_answer"
        )
    ) == {unlabelled[0]: "mixed", unlabelled[1]: "mixed", examples[0].pk: ""}
    _reads_right(page)
    shot(page, "walk-pool")

    # Twenty annotators join: the warning is gone; the people page counts them by role.
    team = add_annotators(campaign, 20)
    _settings(page, campaign)
    assert page.locator("#campaign-warnings .banner").count() == 0
    shot(page, "walk-settings-team")
    page.goto(f"/manage/campaigns/{campaign.pk}/people/")
    assert page.inner_text("#members-count") == "20 annotators · 1 manager"
    assert [o.strip() for o in page.locator("#crowd-preset option").all_inner_texts()] == [
        "MTurk",
        "Prolific",
    ]
    # One person's own cap, from their row.
    slow = team[3]
    row = page.locator(f"tr[data-username='{slow.username}']")
    row.locator("input[name=member_task_cap]").fill("2")
    row.locator("button[value=member_cap]").click()
    page.wait_for_selector(".people-msg[data-kind=notice]")
    assert f"{slow.username} may do at most 2 tasks." in page.inner_text(".people-msg")
    cap = Membership.objects.get(campaign=campaign, user=slow, role="annotator").task_cap
    assert cap == 2
    row = page.locator(f"tr[data-username='{slow.username}']")
    assert "0 / 2" in row.inner_text() and "own" in row.inner_text()
    row.locator("input[name=member_task_cap]").fill("")  # back to the campaign's (none)
    row.locator("button[value=member_cap]").click()
    page.wait_for_selector(".people-msg:has-text('follows the campaign')")
    assert Membership.objects.get(campaign=campaign, user=slow, role="annotator").task_cap is None
    row = page.locator(f"tr[data-username='{slow.username}']")
    row.locator("input[name=member_task_cap]").fill("1")
    row.locator("button[value=member_cap]").click()
    page.wait_for_selector(".people-msg:has-text('at most 1 task.')")
    _reads_right(page)
    page.screenshot(path=str(shot(page, "walk-people")), full_page=True)

    # The preview asks for evidence the way a text-only campaign can give it.
    page.goto(f"/manage/campaigns/{campaign.pk}/preview/")
    page.wait_for_selector(".evidence h3")
    assert page.inner_text(".evidence h3") == "What mattered? Click words."
    shot(page, "walk-preview")
