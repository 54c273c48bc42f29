"""The pair viewer in real Chromium: a text pair's word diff, an image pair's changed pixels
outlined on the canvas (checked pixel by pixel), filters that narrow the list and survive a
reload, keyboard paging with announcements, and a stable link per pair."""

from __future__ import annotations

import io
import re
from typing import Any

import numpy as np
import pytest
from PIL import Image

from annotation.models import Assignment, CounterfactualEdit, Media, Membership
from models_bridge.services.bulk import edit_score
from tests.annotation.annotator_helpers import png_data_url
from tests.conftest import client_for
from tests.frontend.conftest import SCREENSHOTS, login, make_campaign, member, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

BLOCK = (10, 12, 22, 20)  # x0, y0, x1, y1 (exclusive) of the pixels the image edit paints
PAINT = (13, 200, 77)
OUTLINE_RGB = (224, 0, 150)  # pair_view.js OUTLINE_RGB
SCALE = 4  # 64 px shown at 256 px (pair_view.js PAIR_IMAGE_MAX)


def _painted(sha: str) -> Image.Image:
    media = Media.objects.get(sha256=sha)
    with media.file.open("rb") as fh:
        img = Image.open(io.BytesIO(fh.read())).convert("RGB")
    x0, y0, x1, y1 = BLOCK
    for y in range(y0, y1):
        for x in range(x0, x1):
            img.putpixel((x, y), PAINT)
    return img


def _lease(campaign: Any, user: Any) -> dict[str, Any]:
    r = client_for(user).post(
        f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "annotate"}, format="json"
    )
    assert r.status_code == 200, r.content
    return r.json()


def _submit(
    user: Any,
    task: dict[str, Any],
    counterfactual: dict[str, Any],
    *,
    scored: bool = True,
    **extra: Any,
) -> Any:
    labels = task["campaign"]["label_space"]
    label = next(lbl for lbl in labels if lbl != counterfactual["target_label"])
    body = {"idempotency_key": f"k-{task['assignment']['id']}", "label": label, **extra}
    body["counterfactual"] = counterfactual
    r = client_for(user).post(
        f"/api/v1/assignments/{task['assignment']['id']}/submit/", body, format="json"
    )
    assert r.status_code == 201, r.content
    edit = CounterfactualEdit.objects.get(pk=r.json()["edit"]["id"])
    if scored:
        edit_score(edit_id=edit.pk)  # what the scoring worker does after the submit
    return edit


def _world(evqa: Any) -> dict[str, Any]:
    flip = evqa.flip
    other = next(
        e
        for e in evqa.dataset.examples.order_by("id")
        if e.pk != flip.example.pk and "shape" in e.values["text"]
    )
    campaign = make_campaign(evqa, examples=[flip.example, other], name="Pairs campaign")
    member(campaign, "mia", Membership.Role.MANAGER)
    ben = member(campaign, "ben", "annotator")
    cat = member(campaign, "cat", "annotator")
    edits: dict[str, Any] = {}
    for _ in range(2):
        task = _lease(campaign, ben)
        example_id = task["example"]["id"]
        if example_id == flip.example.pk:
            edits["text"] = _submit(
                ben,
                task,
                {"modality": "text", "target_label": flip.edited_prediction, "value": flip.edited},
                reliance="synergy",
                rationale="The question asks for the colour; the picture answers it.",
                evidence=[
                    {"modality": "text", "type": "span", "start": 0, "end": 4},
                    {"modality": "image", "type": "box", "x": 8, "y": 8, "w": 30, "h": 30},
                ],
            )
        else:
            img = _painted(task["example"]["values"]["image"]["sha256"])
            edits["image"] = _submit(
                ben,
                task,
                {"modality": "image", "target_label": "circle", "image": png_data_url(img)},
                reliance="specialization",
                reliance_modality="image",
            )
    task = _lease(campaign, cat)
    text = task["example"]["values"]["text"]
    edits["cat"] = _submit(
        cat,
        task,
        {
            "modality": "text",
            "target_label": "yes",
            "value": text.replace("shape", "circle", 1) if "shape" in text else text + " really",
        },
        scored=False,  # the scoring worker has not come to it yet
    )
    # A validator who never saw the originals confirms ben's text edit.
    vera = member(campaign, "vera", "validator")
    vclient = client_for(vera)
    for _ in range(3):
        r = vclient.post(
            f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "validate"}, format="json"
        )
        if r.status_code != 200 or not r.content or r.json() is None:
            break
        task = r.json()
        edit = CounterfactualEdit.objects.get(
            pk=Assignment.objects.get(pk=task["assignment"]["id"]).edit_id
        )
        body: dict[str, Any] = {"idempotency_key": f"v-{edit.pk}"}
        if edit.pk == edits["text"].pk:
            body.update(label=edit.target_label, broken=False)
        else:
            body.update(label="", broken=True, comment="The change is hard to see.")
        assert (
            vclient.post(
                f"/api/v1/assignments/{task['assignment']['id']}/submit/", body, format="json"
            ).status_code
            == 201
        )
    for e in edits.values():
        e.refresh_from_db()
    return {"campaign": campaign, "edits": edits}


def _pixel(page: Any, selector: str, x: int, y: int) -> list[int]:
    return page.evaluate(
        "([sel, x, y]) => Array.from(document.querySelector(sel).getContext('2d')"
        ".getImageData(x, y, 1, 1).data)",
        [selector, x, y],
    )


def test_pairs_diff_outline_filters_keys_and_links(page: Any, evqa: Any) -> None:
    world = _world(evqa)
    campaign, edits = world["campaign"], world["edits"]
    ordered = sorted(edits.values(), key=lambda e: e.pk)
    text_edit, image_edit = edits["text"], edits["image"]
    assert text_edit.status == "verified", text_edit.status
    base = f"/manage/campaigns/{campaign.pk}/pairs/"

    login(page, "mia", next_url=base)
    page.wait_for_selector(".pair[data-edit]")
    # The list URL becomes the first pair's stable link.
    assert page.url.endswith(f"{base}{ordered[0].pk}/")
    page.wait_for_function("() => document.querySelectorAll('.pairs-list li').length === 3")
    assert page.get_attribute(".manage-tabs a[aria-current=page]", "href").endswith("/pairs/")

    # Text pair: the word diff, the evidence words, every model's predictions.
    page.goto(f"{base}{text_edit.pk}/")
    page.wait_for_selector(f".pair[data-edit='{text_edit.pk}']")
    flip = evqa.flip
    assert page.inner_text(".pair-diff del") == flip.word
    assert page.inner_text(".pair-diff ins") == flip.replacement
    assert page.inner_text(".side-original .ev-mark") == flip.example.values["text"][:4]
    rows = page.locator(".pair-models tbody tr")
    assert rows.count() == len(evqa.models)
    mult = page.locator(f".pair-models tr[data-model='{evqa.multiplicative.pk}']")
    assert flip.original_prediction.replace("_", " ") in mult.inner_text()
    assert flip.edited_prediction.replace("_", " ") in mult.inner_text()
    answer = page.inner_text(".pair-columns")
    assert "I needed both together" in answer and "synergy" in answer
    assert "The question asks for the colour" in answer
    assert "verified" in page.inner_text(
        ".pair-validations"
    ) or "agrees" in answer + page.inner_text(".pair-validations")
    page.mouse.move(0, 0)
    shot(page, "pairs-text")
    page.screenshot(path=str(SCREENSHOTS / "pairs-text-full.png"), full_page=True)

    # Image pair: the changed pixels outlined on the canvas.
    page.goto(f"{base}{image_edit.pk}/")
    page.wait_for_selector(".pair-sides[data-outline=drawn]")
    layer = ".side-edit .outline-layer"
    x0, y0, x1, y1 = BLOCK
    mid_y = ((y0 + y1) // 2) * SCALE + 2
    left = _pixel(page, layer, x0 * SCALE - 1, mid_y)  # on the left border of the block
    assert left[:3] == list(OUTLINE_RGB) and left[3] == 255, left
    bottom = _pixel(page, layer, ((x0 + x1) // 2) * SCALE, y1 * SCALE)
    assert bottom[:3] == list(OUTLINE_RGB) and bottom[3] == 255, bottom
    inside = _pixel(page, layer, (x0 + 3) * SCALE, (y0 + 3) * SCALE)
    assert 0 < inside[3] < 255  # tinted, the image shows through
    assert _pixel(page, layer, 2, 2)[3] == 0  # nothing drawn where nothing changed
    assert "Pixels changed" in page.inner_text(".pair-columns")
    shot(page, "pairs-image")
    page.screenshot(path=str(SCREENSHOTS / "pairs-image-full.png"), full_page=True)
    page.keyboard.press("o")
    assert not page.locator(layer).is_visible()
    page.keyboard.press("o")
    assert page.locator(layer).is_visible()

    # Keyboard paging: j / k and the arrows, focus on the title, announced.
    page.goto(f"{base}{ordered[0].pk}/")
    page.wait_for_selector(f".pair[data-edit='{ordered[0].pk}']")
    page.wait_for_function("() => document.querySelectorAll('.pairs-list li').length === 3")
    page.keyboard.press("j")
    page.wait_for_selector(f".pair[data-edit='{ordered[1].pk}']")
    assert page.url.endswith(f"{base}{ordered[1].pk}/")
    page.wait_for_function("() => document.activeElement.id === 'pair-title'")
    page.wait_for_function(
        "() => document.getElementById('pairs-live').textContent.includes('pair 2 of 3')"
    )
    page.keyboard.press("ArrowRight")
    page.wait_for_selector(f".pair[data-edit='{ordered[2].pk}']")
    assert page.is_disabled("button[aria-keyshortcuts^=j]")
    page.keyboard.press("k")
    page.wait_for_selector(f".pair[data-edit='{ordered[1].pk}']")
    page.keyboard.press("ArrowLeft")
    page.wait_for_selector(f".pair[data-edit='{ordered[0].pk}']")
    page.go_back()  # the browser's history holds every pair visited
    page.wait_for_selector(f".pair[data-edit='{ordered[1].pk}']")

    # Filters narrow the list, live in the URL and survive a reload.
    page.select_option("#f-modality", "image")
    page.wait_for_selector(f".pair[data-edit='{image_edit.pk}']")
    page.wait_for_function("() => document.querySelectorAll('.pairs-list li').length === 1")
    assert re.search(rf"{base}{image_edit.pk}/\?modality=image$", page.url), page.url
    page.reload()
    page.wait_for_selector(f".pair[data-edit='{image_edit.pk}']")
    assert page.input_value("#f-modality") == "image"
    page.wait_for_function("() => document.querySelectorAll('.pairs-list li').length === 1")
    assert "pair 1 of 1" in page.inner_text("#pair-title")

    page.select_option("#f-modality", "")
    page.select_option("#f-author", "cat")
    page.wait_for_selector(f".pair[data-edit='{edits['cat'].pk}']")
    page.wait_for_function("() => document.querySelectorAll('.pairs-list li').length === 1")
    pending = page.locator(".pair-models tr.pending")
    assert pending.count() == len(evqa.models)
    assert all(t.endswith("scoring…") for t in pending.all_inner_texts())
    page.select_option("#f-author", "")
    page.select_option("#f-status", "verified")
    page.wait_for_selector(f".pair[data-edit='{text_edit.pk}']")
    page.wait_for_function("() => document.querySelectorAll('.pairs-list li').length === 1")
    fooled = [
        int(k)
        for k, v in text_edit.scores.items()
        if v["edit"]["predicted_label"] != text_edit.target_label
    ]
    page.select_option("#f-status", "")
    if fooled:
        page.select_option("#f-fooled", str(fooled[0]))
        page.wait_for_selector(f".pair[data-edit='{text_edit.pk}']")
        page.wait_for_function("() => document.querySelectorAll('.pairs-list li').length === 1")
        assert page.locator(".pair-models tr.is-fooled").count() >= 1
    page.select_option("#f-fooled", "")
    page.select_option("#f-target_label", "circle")
    page.wait_for_selector(f".pair[data-edit='{image_edit.pk}']")
    shot(page, "pairs-filtered")

    # A stable link with filters opens that pair under them; an unknown one says so.
    page.goto(f"{base}{edits['cat'].pk}/?author=cat")
    page.wait_for_selector(f".pair[data-edit='{edits['cat'].pk}']")
    assert page.input_value("#f-author") == "cat"
    page.goto(f"{base}999999/")
    page.wait_for_selector("text=No such pair")


def test_tabular_pair_highlights_the_changed_features(page: Any, transactional_db: Any) -> None:
    from annotation.models import Campaign
    from annotation.schema import content_hash
    from annotation.services.campaigns import campaign_add_examples, campaign_create
    from tests.factories import DatasetFactory, ExampleFactory

    dataset = DatasetFactory(
        name="vitals",
        modalities=[
            {"name": "vitals", "kind": "tabular", "label": "Vital signs"},
            {"name": "note", "kind": "text"},
        ],
        label_space=["healthy", "at risk"],
    )
    values = {"vitals": {"age": 61, "systolic": 150, "smoker": "yes"}, "note": "follow-up visit"}
    ExampleFactory(dataset=dataset, values=values, content_hash=content_hash(values))
    campaign = campaign_create(
        dataset=dataset,
        name="Tabular pairs",
        status=Campaign.Status.ACTIVE,
        editable_modalities=["vitals"],
        edit_budgets={"vitals": 0.5},
    )
    campaign_add_examples(campaign=campaign)
    member(campaign, "mia", Membership.Role.MANAGER)
    ana = member(campaign, "ana", "annotator")

    # Before anyone has edited: an empty state that says so.
    login(page, "mia", next_url=f"/manage/campaigns/{campaign.pk}/pairs/")
    page.wait_for_selector("text=Nobody has submitted an edit in this campaign yet.")
    assert page.is_disabled("button[aria-keyshortcuts^=j]")
    shot(page, "pairs-empty")

    task = _lease(campaign, ana)
    edit = _submit(
        ana,
        task,
        {
            "modality": "vitals",
            "target_label": "healthy",
            "value": {"age": 61, "systolic": 118, "smoker": "yes"},
        },
    )
    page.reload()
    page.wait_for_selector(f".pair[data-edit='{edit.pk}']")
    changed = page.locator(".pair-table tr.changed")
    assert changed.count() == 1
    assert changed.inner_text().split() == ["systolic", "(changed)", "150", "118"]
    assert page.locator(".pair-table tbody tr").count() == 3
    assert "Features changed" in page.inner_text(".pair-columns")
    assert "This campaign has no models attached." in page.inner_text(".pair")
    shot(page, "pairs-tabular")


HEAT_RGB = (255, 110, 0)  # attention_overlay.js HEAT_RGB


def test_attention_overlay_over_the_image(page: Any, evqa: Any) -> None:
    from models_bridge.services.attention import attention_map

    cross = next((m for m in evqa.models if str(m) == "easyvqa-cross-attention@2"), None)
    if cross is None:
        pytest.skip("the cross-attention reference package is not available")
    flip = evqa.flip
    campaign = make_campaign(evqa, examples=[flip.example], name="Attention campaign")
    member(campaign, "mia", Membership.Role.MANAGER)
    ben = member(campaign, "ben", "annotator")
    edit = _submit(
        ben,
        _lease(campaign, ben),
        {"modality": "text", "target_label": flip.edited_prediction, "value": flip.edited},
    )
    original = attention_map(cross, edit.example.values)
    edited = attention_map(cross, edit.edited_values)

    login(page, "mia", next_url=f"/manage/campaigns/{campaign.pk}/pairs/{edit.pk}/")
    sides = ".modality-image .pair-sides"
    page.wait_for_function(f"() => document.querySelector('{sides}')?.stages !== undefined")
    assert page.locator(".attention-layer").count() == 0
    page.check("input[name=attention]")
    page.wait_for_selector(f"{sides}[data-attention=drawn]")
    assert page.locator(".attention-layer").count() == 2
    # two of the campaign's models have attention (cross-attention v1 and v2): pick v2
    choices = page.locator("select[name=attention-model] option").all_inner_texts()
    assert choices == ["easyvqa-cross-attention v1", "easyvqa-cross-attention v2"]
    page.select_option("select[name=attention-model]", str(cross.pk))
    page.wait_for_selector("select[name=attention-head]")
    words = page.locator("select[name=attention-token] option").all_inner_texts()
    assert words[0] == "all words (mean)" and len(words) == 1 + max(
        len(original["tokens"]), len(edited["tokens"])
    )
    assert flip.word in " ".join(words) and flip.replacement in " ".join(words)
    heads = page.locator("select[name=attention-head] option").all_inner_texts()
    assert heads == ["all heads (mean)", "head 1", "head 2", "head 3", "head 4"]

    def cell_alpha(side: str, weights: list[float], region: int) -> list[int]:
        rows, cols = original["grid"]
        size = 64 * SCALE
        x = int((region % cols + 0.5) * size / cols)
        y = int((region // cols + 0.5) * size / rows)
        return _pixel(page, f".side-{side} .attention-layer", x, y)

    # The strongest region of the (token, head)-averaged map is drawn at full heat, the
    # weakest at the alpha its share of the maximum gives.
    for side, amap in (("original", original), ("edit", edited)):
        w = amap["average"]
        top, low = int(np.argmax(w)), int(np.argmin(w))
        px = cell_alpha(side, w, top)
        # (canvas stores premultiplied alpha: a colour channel may be off by one)
        assert all(abs(a - b) <= 2 for a, b in zip(px[:3], HEAT_RGB, strict=True)), px
        assert abs(px[3] - round(255 * 0.75)) <= 2, px
        expect = round(255 * 0.75 * w[low] / w[top])
        assert abs(cell_alpha(side, w, low)[3] - expect) <= 3
    shot(page, "pairs-attention")

    # One word of one head: the layer redraws from that row.
    page.select_option("select[name=attention-head]", "2")
    page.select_option("select[name=attention-token]", "0")
    w = original["per_head"][2][0]
    top = int(np.argmax(w))
    px = cell_alpha("original", w, top)
    assert abs(px[3] - round(255 * 0.75)) <= 2, px
    low = int(np.argmin(w))
    assert abs(cell_alpha("original", w, low)[3] - round(255 * 0.75 * w[low] / w[top])) <= 3

    page.uncheck("input[name=attention]")
    page.wait_for_selector(f"{sides}[data-attention=off]")
    assert page.locator(".attention-layer").count() == 0
