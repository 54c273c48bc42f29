"""Workspace behaviour around the rules, in real headless Chromium: the hidden-feedback arm
never sees (or asks for) model outputs; a server rule's message lands next to its control and
the draft stays; a lost response retried with the same idempotency key, and a double click,
store one submission; skip; a model that is down shows as unavailable, calmly."""

from __future__ import annotations

from typing import Any

import pytest

from annotation.models import Annotation, Assignment, Campaign
from models_bridge.models import ModelVersion
from tests.frontend.conftest import make_campaign, member, shot
from tests.frontend.test_browser_annotate import (
    choose_label_with_keyboard,
    open_workspace,
    wait_for_bars_on,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def to_text_edit(page: Any, world: Any) -> None:
    example = world.flip.example
    choose_label_with_keyboard(page, world.dataset.label_space, example.label)
    page.keyboard.press("Control+Enter")
    page.click("label[for=cfm-text]")
    target = next(lab for lab in world.dataset.label_space if lab != example.label)
    page.click(f"#step-edit .label-btn[data-label='{target}']")


def test_hidden_arm_shows_no_model_output_and_never_scores(page: Any, evqa: Any) -> None:
    campaign = make_campaign(
        evqa, examples=[evqa.flip.example], feedback_arm=Campaign.FeedbackArm.HIDDEN
    )
    ana = member(campaign, "ana", "annotator")
    scored: list[str] = []
    page.on("request", lambda r: scored.append(r.url) if "/api/v1/score/" in r.url else None)
    open_workspace(page, campaign, "ana")
    to_text_edit(page, evqa)
    page.fill("#cf-text", evqa.flip.edited)
    page.wait_for_timeout(700)  # longer than the debounce: a request would have gone out
    assert page.locator("#live-panel").count() == 0
    assert page.is_visible("text=Model feedback is not shown in this campaign")
    shot(page, "annotate-hidden-arm")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("[data-state=done]")
    assert scored == []
    assert Annotation.objects.filter(annotator=ana).count() == 1


def test_a_late_answer_for_an_older_draft_is_dropped(page: Any, evqa: Any) -> None:
    # The first scoring answer is held back 800 ms and cannot be aborted, so it arrives
    # after the answer for the newer draft: the panel must keep showing the newer one.
    page.add_init_script(
        """(() => {
          const orig = window.fetch;
          let n = 0;
          window.fetch = async (url, init) => {
            if (String(url).includes('/api/v1/score/')) window.__scoreCalls = n + 1;
            if (String(url).includes('/api/v1/score/') && ++n === 1) {
              const { signal, ...rest } = init;
              const resp = await orig(url, rest);
              await new Promise((r) => setTimeout(r, 800));
              return resp;
            }
            return orig(url, init);
          };
        })();"""
    )
    campaign = make_campaign(evqa, examples=[evqa.flip.example], name="Stale")
    member(campaign, "ana", "annotator")
    open_workspace(page, campaign, "ana")
    to_text_edit(page, evqa)
    older = evqa.flip.edited + " x"
    page.fill("#cf-text", older)  # scored at once (first edit after a pause): the slow one
    page.fill("#cf-text", evqa.flip.edited)  # within the debounce: scored 300 ms later
    wait_for_bars_on(page, evqa.flip.edited)
    page.wait_for_timeout(1200)  # the older answer has arrived by now
    panel = page.locator("#live-panel")
    assert panel.get_attribute("data-rendered-for") == evqa.flip.edited
    assert panel.get_attribute("data-render-count") == "1"
    assert page.evaluate("window.__scoreCalls") == 2  # both drafts were sent


def test_server_rule_shown_next_to_the_editor_and_draft_kept(page: Any, evqa: Any) -> None:
    campaign = make_campaign(evqa, examples=[evqa.flip.example], edit_budgets={"text": 0.2})
    ana = member(campaign, "ana", "annotator")
    open_workspace(page, campaign, "ana")
    to_text_edit(page, evqa)
    rewrite = "is this entirely different now?"
    page.fill("#cf-text", rewrite)
    assert page.get_attribute("#cf-text-meter", "data-over") == "1"
    page.keyboard.press("Control+Enter")
    error = page.locator("#err-editor")
    error.wait_for(state="visible")
    # The server's own sentence for counterfactual_over_budget, naming figure and budget.
    assert "budget" in error.inner_text().lower()
    assert "20%" in error.inner_text() or "0.2" in error.inner_text()
    assert page.input_value("#cf-text") == rewrite  # the work is still there
    shot(page, "annotate-over-budget-error")
    assert not Annotation.objects.filter(annotator=ana).exists()

    page.fill("#cf-text", evqa.flip.edited)
    assert error.is_hidden()
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("[data-state=done]")
    assert Annotation.objects.filter(annotator=ana).count() == 1


def test_lost_response_is_retried_with_the_same_key_and_stored_once(page: Any, evqa: Any) -> None:
    campaign = make_campaign(evqa, examples=[evqa.flip.example], task_counterfactual=False)
    ana = member(campaign, "ana", "annotator")
    open_workspace(page, campaign, "ana")
    keys: list[str] = []

    def lose_first_response(route: Any) -> None:
        keys.append(route.request.post_data_json["idempotency_key"])
        if len(keys) == 1:
            route.fetch()  # the server stores the submission...
            route.abort("connectionreset")  # ...but the answer never arrives
        else:
            route.continue_()

    page.route("**/api/v1/assignments/*/submit/", lose_first_response)
    choose_label_with_keyboard(page, evqa.dataset.label_space, evqa.flip.example.label)
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("[data-state=done]")
    assert len(keys) == 2 and keys[0] == keys[1]
    assert Annotation.objects.filter(annotator=ana).count() == 1


def test_double_click_on_submit_stores_one_submission(page: Any, evqa: Any) -> None:
    campaign = make_campaign(evqa, examples=[evqa.flip.example], task_counterfactual=False)
    ana = member(campaign, "ana", "annotator")
    open_workspace(page, campaign, "ana")
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.url.endswith("/submit/") else None)
    choose_label_with_keyboard(page, evqa.dataset.label_space, evqa.flip.example.label)
    page.dblclick("#step-label button.primary")
    page.wait_for_selector("[data-state=done]")
    assert len(posts) == 1
    assert Annotation.objects.filter(annotator=ana).count() == 1


def test_skip_with_a_reason(page: Any, evqa: Any) -> None:
    campaign = make_campaign(evqa, examples=[evqa.flip.example])
    ana = member(campaign, "ana", "annotator")
    open_workspace(page, campaign, "ana")
    page.click("#step-label .skip-btn")
    page.get_by_label("The image is unreadable").check()
    page.fill("#skip-other", "all grey")
    shot(page, "annotate-skip-dialog")
    page.click(".skip-dialog button[type=submit]")
    page.wait_for_selector("[data-state=done]")
    a = Assignment.objects.get(annotator=ana)
    assert a.status == Assignment.Status.SKIPPED
    assert a.skip_reason == "The image is unreadable: all grey"


def test_a_model_that_is_down_shows_as_unavailable(page: Any, evqa: Any) -> None:
    campaign = make_campaign(evqa, examples=[evqa.flip.example])
    good = evqa.multiplicative
    # A registered model whose package has gone missing: it cannot load, the others answer.
    down = ModelVersion.objects.create(
        name="gone-model",
        version="1",
        kind=good.kind,
        location="no-such-package",
        dataset=evqa.dataset,
        labels=good.labels,
        label_map=good.label_map,
        modalities=good.modalities,
        manifest=good.manifest,
    )
    campaign.model_versions.add(down)
    member(campaign, "ana", "annotator")
    open_workspace(page, campaign, "ana")
    to_text_edit(page, evqa)
    page.fill("#cf-text", evqa.flip.edited)
    wait_for_bars_on(page, evqa.flip.edited)
    row = page.locator(f".live-model[data-model='{down.pk}']")
    assert row.get_attribute("data-status") == "unavailable"
    assert "unavailable" in row.inner_text()
    assert page.locator(f".live-model[data-model='{good.pk}'][data-status='ok']").count() == 1
    shot(page, "annotate-model-unavailable")


def test_expired_session_keeps_the_work_and_restores_it_after_signing_in(
    page: Any, evqa: Any
) -> None:
    flip = evqa.flip
    campaign = make_campaign(evqa, examples=[flip.example], name="Expiry")
    ana = member(campaign, "ana", "annotator")
    open_workspace(page, campaign, "ana")
    to_text_edit(page, evqa)
    page.fill("#cf-text", flip.edited)
    page.context.clear_cookies()  # the session ends (expired, signed out elsewhere, ...)

    page.keyboard.press("Control+Enter")
    link = page.get_by_role("link", name="Sign in again")
    link.wait_for()
    assert "signed out" in page.inner_text("#ws-banner").lower()
    assert page.input_value("#cf-text") == flip.edited
    shot(page, "annotate-signed-out")
    assert not Annotation.objects.filter(annotator=ana).exists()

    link.click()
    page.fill("#id_username", "ana")
    page.fill("#id_password", "pw-for-tests")
    page.click("button[type=submit]")
    page.wait_for_selector("#cf-text")  # back in the workspace, on the edit step
    assert page.input_value("#cf-text") == flip.edited
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("[data-state=done]")
    edit = Annotation.objects.get(annotator=ana).edit
    assert edit.edited_values["text"] == flip.edited


def test_keyboard_only_answer_and_image_edit(page: Any, evqa: Any) -> None:
    """Reliance by arrow keys, evidence by keys, the image painted from the keyboard."""
    example = evqa.flip.example
    labels = evqa.dataset.label_space
    campaign = make_campaign(evqa, examples=[example], name="Keyboard")
    ana = member(campaign, "ana", "annotator")
    open_workspace(page, campaign, "ana")
    choose_label_with_keyboard(page, labels, example.label)
    # Reliance: focus the group's first radio, arrow to the second ("Only the question").
    page.focus("#rel-0")
    page.keyboard.press("ArrowDown")
    assert page.is_checked("#rel-1")
    # Evidence: the first word of the question with Space; a box on the image with Enter.
    page.focus(".markable")
    page.keyboard.press("Space")
    page.focus(".img-stage.boxable")
    page.keyboard.press("Enter")
    page.keyboard.press("Shift+ArrowRight")
    assert page.locator(".evidence-list .chip").count() == 2
    page.keyboard.press("Control+Enter")
    # Edit the image: the modality radios and the canvas by keyboard.
    page.focus("#cfm-image")
    page.keyboard.press("Space")
    page.wait_for_selector(".imged-canvas")
    target = next(lab for lab in labels if lab != example.label)
    page.focus(f"#step-edit .label-btn[data-label='{target}']")
    page.keyboard.press("Enter")
    page.focus(".imged-canvas")
    page.keyboard.press("Space")  # paint at the centre with the default brush
    painted = int(page.get_attribute(".imged", "data-changed"))
    assert painted > 0
    page.click("text=Box fill")
    page.focus(".imged-canvas")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Space")  # first corner
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Space")  # second corner: a 3x2 box
    assert int(page.get_attribute(".imged", "data-changed")) >= painted
    page.keyboard.press("Control+z")
    assert int(page.get_attribute(".imged", "data-changed")) == painted
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("[data-state=done]")
    a = Annotation.objects.get(annotator=ana)
    assert a.reliance == "specialization" and a.reliance_modality == "text"
    kinds = sorted(e["type"] for e in a.evidence)
    assert kinds == ["box", "span"]
    assert a.edit.minimality["changed_pixels"] == painted


def test_lease_running_out_is_announced_and_a_late_submit_still_counts(
    page: Any, evqa: Any
) -> None:
    campaign = make_campaign(
        evqa, examples=[evqa.flip.example], task_counterfactual=False, lease_seconds=3
    )
    ana = member(campaign, "ana", "annotator")
    open_workspace(page, campaign, "ana")
    choose_label_with_keyboard(page, evqa.dataset.label_space, evqa.flip.example.label)
    page.wait_for_selector("#ws-banner:has-text('hold on this task has expired')", timeout=10_000)
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("[data-state=done]")
    assert Annotation.objects.filter(annotator=ana).count() == 1
