"""The annotator workspace in real headless Chromium against a live server: log in, label with
the keyboard, answer reliance, mark evidence, make a text edit that flips the multiplicative
reference model while the live panel updates, make an image edit with the brush, submit, and
get a draft back after a reload."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.utils import timezone

from annotation.minimality import image_minimality, text_minimality
from annotation.models import Annotation, Attempt, CounterfactualEdit
from annotation.services.media import media_read
from tests.frontend.conftest import login, make_campaign, member, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def key_for(index: int) -> str:
    """The workspace's shortcut for label `index`: 1..9, 0, then a, b, c ..."""
    if index < 9:
        return str(index + 1)
    if index == 9:
        return "0"
    return chr(ord("a") + index - 10)


def fits_viewport(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollHeight <= window.innerHeight"))


def wait_for_bars_on(page: Any, text: str) -> None:
    """Until the live panel shows the models' answers on exactly this draft text."""
    page.wait_for_function(
        "t => document.querySelector('#live-panel').dataset.renderedFor === t", arg=text
    )


def open_workspace(page: Any, campaign: Any, username: str) -> None:
    login(page, username)
    page.locator(f".campaign-card[data-campaign-id='{campaign.pk}']").get_by_role(
        "link", name="Annotate"
    ).click()
    page.wait_for_selector(".ws[data-assignment]")


def choose_label_with_keyboard(page: Any, labels: list[str], label: str) -> None:
    page.keyboard.press(key_for(labels.index(label)))
    assert (
        page.get_attribute(f"#step-label .label-btn[data-label='{label}']", "aria-checked")
        == "true"
    )


def target_for(world: Any, label: str) -> str:
    flip = world.flip
    if flip.edited_prediction != label:
        return flip.edited_prediction
    return next(lab for lab in world.dataset.label_space if lab != label)


def test_label_evidence_reliance_and_text_edit_that_flips_the_model(page: Any, evqa: Any) -> None:
    flip = evqa.flip
    example = flip.example
    labels = evqa.dataset.label_space
    campaign = make_campaign(evqa, examples=[example])
    ana = member(campaign, "ana", "annotator")

    open_workspace(page, campaign, "ana")
    assert page.inner_text("#ws-progress") == "0 of 1 done"
    question = example.values["text"]
    assert page.inner_text(".modality-text .example-text") == question

    # Label, confidence: keyboard only.
    choose_label_with_keyboard(page, labels, example.label)
    page.keyboard.press("Shift+Digit4")
    assert page.is_checked("#conf-4")
    # Reliance (docs/architecture.md "Reliance questions", plain words) → stored as the category.
    page.get_by_label("I needed both together; neither alone says anything").check()
    # Evidence: a word of the question and a box on the image.
    page.locator(".markable .word", has_text=re.compile(rf"^{flip.word}$")).first.click()
    stage = page.locator(".img-stage.boxable")
    box = stage.bounding_box()
    page.mouse.move(box["x"] + 60, box["y"] + 60)
    page.mouse.down()
    page.mouse.move(box["x"] + 180, box["y"] + 150, steps=6)
    page.mouse.up()
    assert page.locator(".evidence-list .chip").count() == 2
    page.fill("#rationale", "The question asks about the colour; the picture shows it.")
    page.keyboard.press("Escape")
    shot(page, "annotate-label-step")
    assert fits_viewport(page), "the label step of an easy-VQA task must fit 1280x800"

    # Counterfactual step.
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#step-edit:not([hidden])")
    page.click("label[for=cfm-text]")
    target = target_for(evqa, example.label)
    page.keyboard.press("Escape")  # the text field has focus; shortcuts need the page
    page.locator("#step-edit .label-btn").first.focus()
    page.keyboard.press(key_for(labels.index(target)))
    assert (
        page.get_attribute(f"#step-edit .label-btn[data-label='{target}']", "aria-checked")
        == "true"
    )

    # Replace the word by typing over a selection, as a person would.
    start = re.search(rf"\b{flip.word}\b", question).start()  # type: ignore[union-attr]
    page.focus("#cf-text")
    page.evaluate(
        "([s, e]) => document.querySelector('#cf-text').setSelectionRange(s, e)",
        [start, start + len(flip.word)],
    )
    page.keyboard.type(flip.replacement, delay=20)
    assert page.input_value("#cf-text") == flip.edited

    # The live panel follows the edit; the multiplicative model now gives the target.
    mult = evqa.multiplicative
    wait_for_bars_on(page, flip.edited)
    page.wait_for_selector(f"#live-panel .live-model[data-model='{mult.pk}'][data-flipped='1']")
    row = page.locator(f"#live-panel .live-model[data-model='{mult.pk}']")
    assert row.get_attribute("data-predicted") == flip.edited_prediction
    reaches = target == flip.edited_prediction
    assert row.get_attribute("data-outcome") == (
        "reaches_target" if reaches else "changed_not_target"
    )
    assert ("reaches target" if reaches else "changed, not to target") in row.inner_text()
    assert page.locator("#live-panel .live-model").count() == len(evqa.models)
    # The live diff and meter agree with the server's definition (docs/architecture.md "Counterfactual protocol").
    assert page.inner_text("#cf-text-diff del") == flip.word
    assert page.inner_text("#cf-text-diff ins") == flip.replacement
    expected = text_minimality(question, flip.edited)["minimality"]
    assert float(page.get_attribute("#cf-text-meter", "data-fraction")) == pytest.approx(expected)
    shot(page, "annotate-text-edit-live-panel")
    assert fits_viewport(page), "the edit step must fit 1280x800"

    page.focus("#cf-text")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("[data-state=done]")
    shot(page, "annotate-all-done")

    annotation = Annotation.objects.get(annotator=ana)
    assert annotation.label == example.label
    assert annotation.confidence == 4
    assert annotation.reliance == "synergy"
    assert annotation.rationale.startswith("The question asks")
    spans = [e for e in annotation.evidence if e["type"] == "span"]
    boxes = [e for e in annotation.evidence if e["type"] == "box"]
    assert spans == [
        {
            "modality": "text",
            "type": "span",
            "start": start,
            "end": start + len(flip.word),
            "text": flip.word,
        }
    ]
    assert len(boxes) == 1 and boxes[0]["modality"] == "image"
    b = boxes[0]
    assert 0 <= b["x"] and b["x"] + b["w"] <= 64 and 0 <= b["y"] and b["y"] + b["h"] <= 64
    # Dragged 120x90 screen px over a 6x image: 20x15 source px (+-1 for the pixel grid).
    assert abs(b["w"] - 20) <= 1 and abs(b["h"] - 15) <= 1
    assert annotation.time_spent_ms > 0
    edit = CounterfactualEdit.objects.get(annotation=annotation)
    assert edit.modality == "text"
    assert edit.edited_values["text"] == flip.edited
    assert edit.edited_values["image"] == example.values["image"]
    assert edit.target_label == target
    assert edit.minimality["token_distance"] == 1
    assert Attempt.objects.filter(assignment=annotation.assignment).exists()


def test_image_edit_with_the_brush_uploads_png_and_mask(page: Any, evqa: Any) -> None:
    example = evqa.flip.example
    labels = evqa.dataset.label_space
    campaign = make_campaign(evqa, examples=[example], name="Image edits")
    ana = member(campaign, "ana", "annotator")
    open_workspace(page, campaign, "ana")
    choose_label_with_keyboard(page, labels, example.label)
    page.keyboard.press("Control+Enter")
    page.click("label[for=cfm-image]")
    page.wait_for_selector(".imged-canvas")
    target = next(lab for lab in labels if lab != example.label)
    page.locator("#step-edit .label-btn").first.focus()
    page.keyboard.press(key_for(labels.index(target)))

    # Brush in black, size 3, one stroke.
    page.click(".swatch[data-hex='#000000']")
    page.fill("#brush-size", "3")
    page.dispatch_event("#brush-size", "input")
    canvas = page.locator(".imged-canvas")
    cb = canvas.bounding_box()
    page.mouse.move(cb["x"] + 30, cb["y"] + 30)
    page.mouse.down()
    page.mouse.move(cb["x"] + 150, cb["y"] + 60, steps=10)
    page.mouse.up()
    changed = int(page.get_attribute(".imged", "data-changed"))
    assert changed > 0
    # Zoom in and back: the display scale changes, the pixels do not.
    page.click("button[aria-label='Zoom in']")
    assert canvas.evaluate("c => c.style.width") == "512px"  # 6x -> 8x of 64 px
    page.click("button[aria-label='Zoom out']")
    assert canvas.evaluate("c => c.style.width") == "384px"
    assert int(page.get_attribute(".imged", "data-changed")) == changed
    # Undo takes the stroke back; redo restores it.
    page.click("button[aria-label=Undo]")
    assert page.get_attribute(".imged", "data-changed") == "0"
    page.click("button[aria-label=Redo]")
    assert int(page.get_attribute(".imged", "data-changed")) == changed
    page.wait_for_selector("#live-panel[data-state=ok]")
    shot(page, "annotate-image-edit")
    assert fits_viewport(page)

    # A reload brings the painted image back, pixel for pixel.
    page.reload()
    page.wait_for_selector(".imged-canvas")
    page.wait_for_function(
        f"() => document.querySelector('.imged').dataset.changed === '{changed}'"
    )

    page.click("#step-edit button.primary")
    page.wait_for_selector("[data-state=done]")

    edit = CounterfactualEdit.objects.get(author=ana)
    assert edit.modality == "image"
    assert edit.edited_values["text"] == example.values["text"]
    assert edit.edited_media is not None and edit.edited_media.mime_type == "image/png"
    assert (edit.edited_media.width, edit.edited_media.height) == (64, 64)
    # The browser's live meter counted exactly what the server counts on the uploaded PNG.
    assert edit.minimality["changed_pixels"] == changed
    from annotation.models import Media

    original = media_read(Media.objects.get(sha256=example.values["image"]))
    figures = image_minimality(original, media_read(edit.edited_media))
    assert figures["changed_pixels"] == changed
    assert edit.mask_media is not None


def test_patch_tool_copies_a_region_elsewhere(page: Any, evqa: Any) -> None:
    example = evqa.flip.example
    labels = evqa.dataset.label_space
    campaign = make_campaign(evqa, examples=[example], name="Patches")
    member(campaign, "ana", "annotator")
    open_workspace(page, campaign, "ana")
    choose_label_with_keyboard(page, labels, example.label)
    page.keyboard.press("Control+Enter")
    page.click("label[for=cfm-image]")
    page.wait_for_selector(".imged-canvas")
    cb = page.locator(".imged-canvas").bounding_box()
    # A black mark in the top-left corner: 6x6 source pixels (36x36 screen px at 6x).
    page.click(".swatch[data-hex='#000000']")
    page.click("text=Box fill")
    page.mouse.move(cb["x"] + 3, cb["y"] + 3)
    page.mouse.down()
    page.mouse.move(cb["x"] + 33, cb["y"] + 33, steps=4)
    page.mouse.up()
    mark = int(page.get_attribute(".imged", "data-changed"))
    assert 0 < mark <= 36
    # Copy it with Patch and paste it at the bottom-right corner.
    page.click("button[data-tool=patch]")
    page.mouse.move(cb["x"] + 3, cb["y"] + 3)
    page.mouse.down()
    page.mouse.move(cb["x"] + 33, cb["y"] + 33, steps=4)
    page.mouse.up()
    assert page.get_attribute(".imged", "data-patch") == "6x6"
    assert int(page.get_attribute(".imged", "data-changed")) == mark  # copying changes nothing
    page.mouse.click(cb["x"] + 6 * 58, cb["y"] + 6 * 58)
    after = int(page.get_attribute(".imged", "data-changed"))
    assert mark < after <= 2 * 36
    shot(page, "annotate-image-patch")


def test_reload_mid_edit_restores_the_draft(page: Any, evqa: Any) -> None:
    flip = evqa.flip
    example = flip.example
    labels = evqa.dataset.label_space
    campaign = make_campaign(evqa, examples=[example], name="Drafts")
    member(campaign, "ana", "annotator")
    open_workspace(page, campaign, "ana")
    choose_label_with_keyboard(page, labels, example.label)
    page.keyboard.press("Shift+Digit2")
    page.keyboard.press("Control+Enter")
    page.click("label[for=cfm-text]")
    page.fill("#cf-text", flip.edited)
    key = page.evaluate("window.__counterpoint.state.key")

    # Reload: the browser copy comes back at once.
    page.reload()
    page.wait_for_selector("#cf-text")
    assert page.input_value("#cf-text") == flip.edited
    assert page.evaluate("window.__counterpoint.state.key") == key
    assert page.is_visible("text=Restored your unfinished work")
    shot(page, "annotate-draft-restored")

    # A crash that lost the browser copy: the server copy brings it back.
    page.wait_for_selector("#ws-save[data-state=saved]")
    page.evaluate("localStorage.clear()")
    page.reload()
    page.wait_for_selector("#cf-text")
    assert page.input_value("#cf-text") == flip.edited
    assert page.evaluate("window.__counterpoint.state.key") == key
    page.click("#tab-label")
    assert (
        page.get_attribute(f"#step-label .label-btn[data-label='{example.label}']", "aria-checked")
        == "true"
    )
    assert page.is_checked("#conf-2")


SWITCH_TAB = """state => {
    Object.defineProperty(document, "visibilityState", { configurable: true, get: () => state });
    document.dispatchEvent(new Event("visibilitychange"));
}"""


def test_time_on_task_adds_up_over_a_reload(page: Any, evqa: Any) -> None:
    """A task read for a while, left for another tab and back, reloaded and then submitted
    stores the time before the reload too. Checked against what the server recorded (the lease's age), not a clock in the test."""
    from annotation.models import Assignment

    example = evqa.flip.example
    labels = evqa.dataset.label_space
    campaign = make_campaign(
        evqa, examples=[example], name="Timing", task_counterfactual=False, task_rationale=False
    )
    ana = member(campaign, "ana", "annotator")
    open_workspace(page, campaign, "ana")
    choose_label_with_keyboard(page, labels, example.label)
    page.wait_for_selector("#ws-save[data-state=saved]")
    page.wait_for_timeout(2000)  # reading: no change, so nothing autosaves the clock meanwhile
    # A look at another tab and back (what the browser tells the page when that happens),
    # then a reload.
    page.evaluate(SWITCH_TAB, "hidden")
    page.evaluate(SWITCH_TAB, "visible")
    reloaded_at = timezone.now()
    page.reload()
    page.wait_for_selector(".ws[data-assignment]")
    page.wait_for_selector("#ws-save[data-state=saved]")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("[data-state=done]")

    annotation = Annotation.objects.get(annotator=ana)
    assignment = Assignment.objects.get(pk=annotation.assignment_id)
    assert assignment.submitted_at is not None

    def ms(delta: Any) -> float:
        return float(delta.total_seconds() * 1000)

    open_before_reload = ms(reloaded_at - assignment.leased_at)
    # The page starts its clock a moment after the server leased the task (the response's way
    # to the page): 500 ms of slack for that on a busy machine; the stretch itself is ≥ 2 s.
    assert annotation.time_spent_ms >= open_before_reload - 500
    # The server's bound: never more than the lease has existed.
    assert annotation.time_spent_ms <= ms(assignment.submitted_at - assignment.leased_at)
