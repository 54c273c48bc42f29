"""The grounding report in real headless Chromium (issue 12): on an easy-VQA campaign whose
annotators marked the question's last word and a box on the image, the report draws the
plausibility and faithfulness charts, and each disagreement card shows the image under the
annotators' and the model's overlays, each toggled by its checkbox, and the question with
the marked words underlined and the model's word weights shaded."""

from __future__ import annotations

from typing import Any

import pytest

from annotation.models import Job, Membership
from models_bridge.analysis.grounding import word_spans
from models_bridge.models import AnalysisResult
from models_bridge.services.analysis import analysis_start
from models_bridge.tasks import analysis_run_task
from tests.frontend.conftest import login, make_campaign, member, shot
from tests.models_bridge.test_analysis_grounding import annotate_with

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def last_word_and_a_box(values: dict[str, Any]) -> list[dict[str, Any]]:
    s, e = word_spans(values["text"])[-1]
    return [
        {"modality": "text", "type": "span", "start": s, "end": e},
        {"modality": "image", "type": "box", "x": 8, "y": 8, "w": 32, "h": 32},
    ]


def test_grounding_report_overlays_toggle(page: Any, evqa: Any) -> None:
    examples = sorted(evqa.dataset.examples.all(), key=lambda e: e.pk)[:8]
    campaign = make_campaign(evqa, examples=examples, name="Grounding study")
    manager = member(campaign, "gina", Membership.Role.MANAGER)
    annotate_with(campaign, member(campaign, "ann", Membership.Role.ANNOTATOR), last_word_and_a_box)
    job = analysis_start(
        campaign=campaign,
        model_version=evqa.multiplicative,
        methods=["grounding"],
        params={"resamples": 100, "top": 4},
        created_by=manager,
        enqueue=False,
    )
    analysis_run_task(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    res = AnalysisResult.objects.get(job=job, method="grounding").result

    login(page, "gina")
    page.goto(f"/manage/campaigns/{campaign.pk}/analyses/{job.pk}/")
    page.wait_for_function("() => document.getElementById('report').dataset.chartsRendered === '1'")
    for chart in ("plausibility", "faithfulness"):
        page.locator(f"[data-chart='grounding:{chart}'] svg.marks").wait_for()
    cards = page.locator(".grounding-card")
    assert cards.count() == len(res["disagreements"]) == 4
    card = cards.first
    card.scroll_into_view_if_needed()
    human, model = card.locator(".gr-human"), card.locator(".gr-model")
    assert human.is_visible() and model.is_visible()
    assert card.locator(".gr-human span").count() == 64
    assert card.locator(".gr-human-word").count() == 1
    shot(page, "grounding-card")
    card.locator("label", has_text="annotators").click()
    assert not human.is_visible() and model.is_visible()
    card.locator("label", has_text="model").click()
    assert not model.is_visible()
    assert not card.locator(".gr-model-word").first.is_visible()
    card.locator("label", has_text="annotators").click()
    assert human.is_visible()
