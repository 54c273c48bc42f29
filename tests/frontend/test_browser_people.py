"""People pages in real headless Chromium (issue 8 §2): a manager invites by e-mail, the mail
file is read, the invitee signs up and annotates; a Prolific-style study link brings a worker
in, they work until the task cap and get the completion code and the redirect; the cap for a
signed-up annotator; screening passed and failed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from annotation.models import Annotation, Assignment, CrowdWorker, Membership
from annotation.services.people import campaign_people_rules_set, crowd_link_create
from tests.annotation.annotator_helpers import text_campaign
from tests.frontend.conftest import VIEWPORT, login, member, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def label_campaign(n: int = 6, **fields: Any) -> Any:
    fields.setdefault("task_counterfactual", False)
    fields.setdefault("task_rationale", False)
    fields.setdefault("name", "People campaign")
    return text_campaign(n, **fields)


def answer_current(page: Any, user: Any, *, right: bool = True) -> Assignment:
    """Label the task on screen (rightly or not) and submit it."""
    page.wait_for_selector(".ws[data-assignment]")
    ident = int(page.get_attribute(".ws[data-assignment]", "data-assignment"))
    assignment = Assignment.objects.select_related("example").get(pk=ident, annotator=user)
    truth = assignment.example.label
    label = truth if right else ("no" if truth == "yes" else "yes")
    page.click(f"#step-label .label-btn[data-label='{label}']")
    page.click("#step-label button.primary")
    page.wait_for_function(
        "id => !document.querySelector(`.ws[data-assignment='${id}']`)", arg=str(ident)
    )
    return assignment


def test_invite_by_mail_then_sign_up_and_annotate(
    page: Any, browser: Any, live_server: Any, transactional_db: Any, settings: Any, tmp_path: Path
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path / "mail")
    campaign = label_campaign(4)
    member(campaign, "maria", "manager")
    login(page, "maria")
    page.goto(f"/manage/campaigns/{campaign.pk}/people/")
    page.fill("#invite-email", "newcomer@example.org")
    page.select_option("#invite-role", "annotator")
    page.click("#invite-form button[type=submit]")
    page.wait_for_selector(".people-msg[data-kind=notice]")
    assert "newcomer@example.org" in page.inner_text(".people-msg")
    assert page.locator("tr[data-invite-id]").count() == 1
    shot(page, "people-after-invite")

    files = list((tmp_path / "mail").iterdir())
    assert len(files) == 1
    text = files[0].read_text()
    assert "To: newcomer@example.org" in text
    url = re.search(r"(http://\S+/signup/\S+/)", text).group(1)  # type: ignore[union-attr]

    ctx = browser.new_context(viewport=VIEWPORT, base_url=live_server.url)
    guest = ctx.new_page()
    guest.goto(url)
    assert "Join People campaign" in guest.inner_text("h1")
    guest.fill("#su-username", "newcomer")
    guest.fill("#su-password", "short")
    guest.fill("#su-password2", "short")
    guest.click("form button[type=submit]")
    assert "too short" in guest.inner_text(".banner-error")
    guest.fill("#su-password", "violet kettle 42 harbour")
    guest.fill("#su-password2", "violet kettle 42 harbour")
    shot(guest, "signup-form")
    guest.click("form button[type=submit]")
    guest.wait_for_url(f"**/campaigns/{campaign.pk}/annotate/")
    from django.contrib.auth import get_user_model

    newcomer = get_user_model().objects.get(username="newcomer")
    answer_current(guest, newcomer)
    assert Annotation.objects.filter(annotator=newcomer).count() == 1
    assert Membership.objects.get(campaign=campaign, user=newcomer).role == "annotator"
    # The link worked once.
    guest.goto(url)
    assert "does not work" in guest.inner_text("h1")
    ctx.close()

    page.goto(f"/manage/campaigns/{campaign.pk}/people/")
    row = page.locator("tr[data-username=newcomer]")
    assert row.locator("td.num").first.inner_text() == "1"
    shot(page, "people-members")


def test_crowd_link_with_prolific_params_to_completion_code_and_redirect(
    page: Any, browser: Any, live_server: Any, transactional_db: Any
) -> None:
    campaign = label_campaign(6)
    campaign_people_rules_set(campaign=campaign, task_cap=2)
    member(campaign, "maria", "manager")
    login(page, "maria")
    page.goto(f"/manage/campaigns/{campaign.pk}/people/")
    page.fill("#crowd-cc", "C1A2B3")
    page.fill("#crowd-cu", f"{live_server.url}/done-at-prolific/?cc={{code}}")
    page.click("#crowd-form button[type=submit]")
    page.wait_for_selector(".crowd-link")
    study_url = page.input_value(".crowd-link .copy-source")
    assert "PROLIFIC_PID={{%PROLIFIC_PID%}}" in study_url
    assert "Expects PROLIFIC_PID" in page.inner_text(".crowd-link")
    page.screenshot(path=str(shot(page, "people-crowd-link")), full_page=True)
    link_id = int(page.get_attribute(".crowd-link", "data-link-id"))

    base = study_url.split("?")[0]
    ctx = browser.new_context(viewport=VIEWPORT, base_url=live_server.url)
    worker_page = ctx.new_page()
    worker_page.goto(f"{base}?PROLIFIC_PID=60a1b2c3d4e5f60718293a4b&STUDY_ID=st1&SESSION_ID=se1")
    worker_page.wait_for_url(f"**/campaigns/{campaign.pk}/annotate/")
    worker = CrowdWorker.objects.select_related("user").get(link_id=link_id)
    assert (worker.worker_id, worker.study_id, worker.session_id) == (
        "60a1b2c3d4e5f60718293a4b",
        "st1",
        "se1",
    )
    assert not worker.user.has_usable_password()
    assert worker_page.is_visible("#crowd-finish")
    answer_current(worker_page, worker.user)
    answer_current(worker_page, worker.user)
    # The cap (2) is reached: the next lease is refused and the page goes to the finish page.
    worker_page.wait_for_url(f"**/crowd/finish/{campaign.pk}/")
    assert worker_page.inner_text("#completion-code") == "C1A2B3"
    shot(worker_page, "crowd-completion")
    worker_page.wait_for_url("**/done-at-prolific/?cc=C1A2B3", timeout=15_000)
    ctx.close()
    worker.refresh_from_db()
    assert worker.outcome == "completed" and worker.finished_at is not None

    page.goto(f"/manage/campaigns/{campaign.pk}/people/")
    row = page.locator(f"tr[data-username='{worker.user.username}']")
    assert "60a1b2c3d4e5f60718293a4b" in row.inner_text()
    assert "2 / 2" in row.inner_text()
    shot(page, "people-with-crowd-worker")


def test_cap_reached_for_a_signed_up_annotator(page: Any, transactional_db: Any) -> None:
    campaign = label_campaign(4)
    campaign_people_rules_set(campaign=campaign, task_cap=1)
    ana = member(campaign, "ana", "annotator")
    login(page, "ana")
    page.goto(f"/campaigns/{campaign.pk}/annotate/")
    answer_current(page, ana)
    page.wait_for_selector("[data-state=task_cap_reached]")
    assert "done your share" in page.inner_text("h1")
    shot(page, "annotate-cap-reached")
    assert Annotation.objects.filter(annotator=ana).count() == 1


def test_screening_pass_then_real_tasks_and_fail_with_its_own_code(
    page: Any, browser: Any, live_server: Any, transactional_db: Any
) -> None:
    campaign = label_campaign(8, gold=lambda i: i < 2)
    campaign_people_rules_set(campaign=campaign, screening_items=2, screening_pass_mark=1.0)
    link = crowd_link_create(
        campaign=campaign, created_by=None, completion_code="PASS1", screening_fail_code="FAIL1"
    )
    study = f"/crowd/{link.pk}/{link.token}/"

    # Passes: two gold items right, then a real (non-gold) task follows.
    page.goto(f"{study}?PROLIFIC_PID=goodworker01")
    good = CrowdWorker.objects.get(worker_id="goodworker01").user
    first = answer_current(page, good)
    second = answer_current(page, good)
    assert first.is_gold and second.is_gold
    page.wait_for_selector(".ws[data-assignment]")
    third = Assignment.objects.filter(annotator=good, status="active").get()
    assert not third.is_gold

    # Fails: a wrong answer on the first screening item ends it with the other code.
    ctx = browser.new_context(viewport=VIEWPORT, base_url=live_server.url)
    bad_page = ctx.new_page()
    bad_page.goto(f"{study}?PROLIFIC_PID=badworker01")
    bad = CrowdWorker.objects.get(worker_id="badworker01").user
    answer_current(bad_page, bad, right=False)
    bad_page.wait_for_url(f"**/crowd/finish/{campaign.pk}/")
    assert bad_page.inner_text("#completion-code") == "FAIL1"
    assert "did not reach the mark" in bad_page.inner_text(".crowd-end")
    shot(bad_page, "crowd-screened-out")
    ctx.close()

    # The manager sees both standings.
    member(campaign, "maria", "manager")
    ctx = browser.new_context(viewport=VIEWPORT, base_url=live_server.url)
    manager_page = ctx.new_page()
    login(manager_page, "maria")
    manager_page.goto(f"/manage/campaigns/{campaign.pk}/people/")
    cell = "tr[data-username='{}'] td.screening"
    assert manager_page.inner_text(cell.format(good.username)) == "passed"
    assert manager_page.inner_text(cell.format(bad.username)) == "failed"
    shot(manager_page, "people-screening")
    ctx.close()


def test_remove_asks_for_confirmation(page: Any, transactional_db: Any) -> None:
    campaign = label_campaign(3)
    member(campaign, "maria", "manager")
    ana = member(campaign, "ana", "annotator")
    login(page, "maria")
    page.goto(f"/manage/campaigns/{campaign.pk}/people/")
    page.locator("tr[data-username=ana]").get_by_role("link", name="Remove").click()
    page.wait_for_selector(".people-confirm")
    assert "Their work stays" in page.inner_text(".people-confirm")
    shot(page, "people-confirm-remove")
    page.click(".people-confirm button.danger")
    page.wait_for_selector(".people-msg[data-kind=notice]")
    assert not Membership.objects.filter(campaign=campaign, user=ana).exists()


def test_screening_failed_page_for_a_signed_up_annotator(page: Any, transactional_db: Any) -> None:
    campaign = label_campaign(6, gold=lambda i: i < 2)
    campaign_people_rules_set(campaign=campaign, screening_items=2, screening_pass_mark=1.0)
    ana = member(campaign, "ana", "annotator")
    login(page, "ana")
    page.goto(f"/campaigns/{campaign.pk}/annotate/")
    assert answer_current(page, ana, right=False).is_gold
    page.wait_for_selector("[data-state=screening_failed]")
    assert "screening was not passed" in page.inner_text("h1")
    assert "did not reach the mark" in page.inner_text("[data-state=screening_failed]")
    shot(page, "annotate-screening-failed")


def test_finish_mid_task_gives_the_task_back_and_shows_the_code(
    page: Any, transactional_db: Any
) -> None:
    from annotation.models import CampaignExample

    campaign = label_campaign(1, redundancy=1)
    link = crowd_link_create(campaign=campaign, created_by=None, completion_code="MID42")
    page.goto(f"/crowd/{link.pk}/{link.token}/?PROLIFIC_PID=midtaskworker01")
    page.wait_for_selector(".ws[data-assignment]")
    ident = int(page.get_attribute(".ws[data-assignment]", "data-assignment"))
    held = Assignment.objects.get(pk=ident)
    assert held.status == Assignment.Status.ACTIVE
    page.click("#crowd-finish")  # mid-task, nothing answered
    page.wait_for_url(f"**/crowd/finish/{campaign.pk}/")
    assert page.inner_text("#completion-code") == "MID42"
    held.refresh_from_db()
    assert held.status == Assignment.Status.EXPIRED
    item = CampaignExample.objects.get(campaign=campaign, example_id=held.example_id)
    assert (item.in_flight, item.completed) == (0, 0)  # back in the pool at once
    # The only example goes to the next person now, not at the lease's expiry.
    other = member(campaign, "next-one", "annotator")
    from annotation.services.assignments import assignment_lease

    again = assignment_lease(campaign=campaign, annotator=other, kind="annotate").assignment
    assert again is not None and again.example_id == held.example_id
    # A reload of the finish page shows the same code and changes nothing.
    page.reload()
    assert page.inner_text("#completion-code") == "MID42"
