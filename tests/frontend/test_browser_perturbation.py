"""Perturbation studies in real headless Chromium: a manager defines a 5-level image-noise
study on easy-VQA on the Perturbation tab and sees it build; two annotators label its perturbed
examples on the task page (label + confidence, nothing else); after the models are scored the
study page draws humans and the model in one Vega-Lite chart with chance and the halfway
levels marked, and the gap table."""

from __future__ import annotations

from typing import Any

import pytest

from annotation.models import Job, Membership, PerturbationLabel, PerturbationStudy
from annotation.services.campaigns import campaign_add_examples, campaign_create
from annotation.tasks import perturbation_build_run
from models_bridge.services.registry import model_register
from models_bridge.tasks import bulk_score_task
from tests.annotation.annotator_helpers import member
from tests.frontend.conftest import login, shot
from tests.models_bridge.conftest import easyvqa_dataset, package_dir

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_noise_study_from_definition_to_curves(page: Any, transactional_db: Any) -> None:
    package_dir("easyvqa-multiplicative")
    dataset = easyvqa_dataset(n=5, name="easy-VQA-perturb")
    campaign = campaign_create(dataset=dataset, name="Noise study", status="active")
    campaign_add_examples(campaign=campaign)
    mv = model_register(dataset=dataset, kind="torchscript", location="easyvqa-multiplicative")
    campaign.model_versions.add(mv)
    member(campaign, "mona", Membership.Role.MANAGER)
    member(campaign, "ann")
    member(campaign, "bob")

    login(page, "mona")
    page.goto(f"/manage/campaigns/{campaign.pk}/perturbation/")
    page.wait_for_selector("#studies-empty:not([hidden])")
    page.fill("#s-name", "noise")
    page.select_option("#s-perturbation", "gaussian_noise")
    page.fill("#s-levels", "0, 0.1, 0.2, 0.4, 0.8")
    page.click("#study-start")
    page.wait_for_selector("#studies-table tbody tr[data-status=building]")
    study = PerturbationStudy.objects.get(campaign=campaign)
    assert study.levels == [0.0, 0.1, 0.2, 0.4, 0.8] and study.modality == "image"
    perturbation_build_run(study.job_id)  # what the io worker does with the message
    page.wait_for_selector("#studies-table tbody tr[data-status=ready]")
    assert "5 · 5 · 5 · 5 · 5" in page.inner_text("#studies-table tbody tr")
    shot(page, "perturbation-studies")

    for name in ("ann", "bob"):
        ctx = page.context.browser.new_context(
            viewport={"width": 1280, "height": 800}, base_url=page.url.split("/manage")[0]
        )
        annotator = ctx.new_page()
        errors: list[str] = []
        annotator.on("pageerror", lambda exc, sink=errors: sink.append(str(exc)))
        login(annotator, name)
        annotator.goto(f"/campaigns/{campaign.pk}/perturbation/{study.pk}/")
        for i in range(5):
            annotator.wait_for_selector(".ws.perturb .label-btn")
            annotator.wait_for_function("() => document.querySelector('.ws.perturb img')?.complete")
            annotator.locator(".label-btn").nth(i % 3).click()
            annotator.click("label[for=conf-4]")
            if name == "ann" and i == 0:
                shot(annotator, "perturbation-task")
            before = annotator.get_attribute(".ws.perturb", "data-assignment")
            annotator.click("#perturb-submit")
            if i < 4:
                annotator.wait_for_function(
                    f"() => document.querySelector('.ws.perturb')?.dataset.assignment !== '{before}'"
                )
        annotator.wait_for_selector("[data-state=done]")
        assert not errors, errors
        ctx.close()
    labels = PerturbationLabel.objects.filter(study=study)
    assert labels.count() == 10 and all(row.confidence == 4 for row in labels)
    # Two people: each example seen by each once, at two different levels.
    for example_id in {row.example_id for row in labels}:
        levels = [row.level_index for row in labels if row.example_id == example_id]
        assert len(levels) == 2 and len(set(levels)) == 2

    page.click("a.study-link")
    page.wait_for_selector("#study-chart svg")
    page.click("#study-score")
    page.wait_for_selector("#study-score-status:has-text('1 scoring job')")
    for job in Job.objects.filter(kind=Job.Kind.SCORE, campaign=campaign):
        bulk_score_task(job.pk)
    page.reload()
    page.wait_for_function(
        "() => document.querySelector('[data-chart=curves]')?.dataset.series === '2'"
    )
    page.wait_for_selector("#study-chart svg")
    assert page.locator("#study-halfway tbody tr").count() == 2
    assert page.locator("#study-gap tbody tr").count() == 5
    assert "gap to" in page.inner_text("#study-gap thead")
    shot(page, "perturbation-study")
