"""The validator page in real headless Chromium: someone else's edit, shown blind (no
original, no intended label), labelled from the keyboard; the next one flagged as broken."""

from __future__ import annotations

from typing import Any

import pytest

from annotation.models import CounterfactualEdit, Validation
from tests.conftest import client_for
from tests.frontend.conftest import login, make_campaign, member, shot
from tests.frontend.test_browser_annotate import key_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def submit_text_edit(campaign: Any, user: Any, *, edited: str, target: str) -> CounterfactualEdit:
    """Another annotator's edit, made through the same REST API the workspace uses."""
    api = client_for(user)
    task = api.post(f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "annotate"}, format="json")
    assert task.status_code == 200, task.content
    body = task.json()
    original_label = body["campaign"]["label_space"][0]
    if original_label == target:
        original_label = body["campaign"]["label_space"][1]
    resp = api.post(
        f"/api/v1/assignments/{body['assignment']['id']}/submit/",
        {
            "idempotency_key": f"key-{user.username}",
            "label": original_label,
            "counterfactual": {"modality": "text", "target_label": target, "value": edited},
        },
        format="json",
    )
    assert resp.status_code == 201, resp.content
    return CounterfactualEdit.objects.get(pk=resp.json()["edit"]["id"])


def test_validate_someone_elses_edit_blind(page: Any, evqa: Any) -> None:
    flip = evqa.flip
    labels = evqa.dataset.label_space
    campaign = make_campaign(evqa, examples=[flip.example], name="Validation")
    ben = member(campaign, "ben", "annotator")
    cat = member(campaign, "cat", "annotator")
    member(campaign, "vera", "validator")
    target = flip.edited_prediction
    first = submit_text_edit(campaign, ben, edited=flip.edited, target=target)
    second = submit_text_edit(campaign, cat, edited=flip.edited + "!", target=target)

    login(page, "vera")
    card = page.locator(f".campaign-card[data-campaign-id='{campaign.pk}']")
    assert card.get_by_role("link", name="Annotate").count() == 0  # a validator only validates
    card.get_by_role("link", name="Validate").click()
    page.wait_for_selector(".ws.validate")

    # Blind: the edited question, never the original; no target, no author.
    shown = page.inner_text(".modality-text .example-text")
    assert shown in (flip.edited, flip.edited + "!")
    text = page.inner_text("#app")
    assert flip.example.values["text"] not in text
    assert "ben" not in text and "cat" not in text and "target" not in text.lower()
    assert (
        page.get_attribute(".modality-image img", "src") == f"/media/{flip.example.values['image']}"
    )
    shot(page, "validate-blind")

    page.keyboard.press(key_for(labels.index(target)))
    assert page.get_attribute(f".label-btn[data-label='{target}']", "aria-checked") == "true"
    first_task = page.get_attribute(".ws.validate", "data-assignment")
    page.keyboard.press("Control+Enter")

    # The next edit: flagged broken from the keyboard, with a comment.
    page.wait_for_function(
        "id => { const ws = document.querySelector('.ws.validate'); return ws && ws.dataset.assignment !== id; }",
        arg=first_task,
    )
    page.keyboard.press("Shift+X")
    assert page.is_checked("#broken")
    page.fill("#comment", "The question has a stray mark.")
    page.click("button.primary")
    page.wait_for_selector("[data-state=done]")
    shot(page, "validate-done")

    done = {v.edit_id: v for v in Validation.objects.filter(validator__username="vera")}
    assert set(done) == {first.pk, second.pk}
    labelled = [v for v in done.values() if not v.broken]
    broken = [v for v in done.values() if v.broken]
    assert len(labelled) == 1 and labelled[0].label == target
    assert len(broken) == 1 and broken[0].comment == "The question has a stray mark."
    # One validation of one required, agreeing with the target: verified (docs/architecture.md "Domain").
    assert CounterfactualEdit.objects.get(pk=labelled[0].edit_id).status == "verified"
