"""Perturbation studies in real headless Chromium: a manager defines a 5-level image-noise
study on easy-VQA on the Perturbation tab and sees it build; two annotators label its perturbed
examples on the task page (label + confidence, nothing else); after the models are scored the
study page draws humans and the model in one Vega-Lite chart with chance and the halfway
levels marked, and the gap table."""

from __future__ import annotations

from typing import Any

import pytest

from annotation.models import Assignment, Job, Membership, PerturbationLabel, PerturbationStudy
from annotation.services.campaigns import campaign_add_examples, campaign_create
from annotation.tasks import perturbation_build_run
from models_bridge.services.registry import model_register
from models_bridge.tasks import analysis_run_task, bulk_score_task
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
    # The study page follows the build while it runs: no reload.
    page.click("a.study-link")
    page.wait_for_selector("#study[data-status=building]")
    assert "Building the perturbed items" in page.inner_text("#study-build")
    perturbation_build_run(study.job_id)  # what the io worker does with the message
    page.wait_for_selector("#study[data-status=ready]")
    assert "5 · 5 · 5 · 5 · 5" in page.inner_text("#study-build")
    page.go_back()
    page.wait_for_selector("#studies-table tbody tr[data-status=ready]")
    assert "5 · 5 · 5 · 5 · 5" in page.inner_text("#studies-table tbody tr")
    shot(page, "perturbation-studies")

    space = list(dataset.label_space)
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
            # A person who sees through mild noise and guesses under heavy noise: right up to
            # noise 0.2, a wrong label above (the page never says the level; the test looks it up).
            held = int(annotator.get_attribute(".ws.perturb", "data-assignment") or 0)
            item = Assignment.objects.select_related("perturbed_item__example").get(pk=held)
            right = item.perturbed_item.example.label
            wrong = next(x for x in space if x != right)
            answer = right if item.perturbed_item.level <= 0.2 else wrong
            annotator.locator(".label-btn").nth(space.index(answer)).click()
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
    assert "Human labels: 10 from 2 annotators" in page.inner_text("#study-humans")
    page.click("#study-score")
    page.wait_for_selector("#study-score-status:has-text('1 scoring job')")
    for job in Job.objects.filter(kind=Job.Kind.SCORE, campaign=campaign):
        bulk_score_task(job.pk)
    # The page sees the job finish and redraws the curves with the model: no reload.
    page.wait_for_function(
        "() => document.querySelector('[data-chart=curves]')?.dataset.series === '2'"
    )
    page.wait_for_selector("#study-score-status:has-text('succeeded (25 of 25 items)')")
    page.wait_for_selector("#study-chart svg")
    assert page.locator("#study-halfway tbody tr").count() == 2
    assert page.locator("#study-gap tbody tr").count() == 5
    assert "gap to" in page.inner_text("#study-gap thead")
    # The humans' point of chance lies between the last rung they saw through and the first
    # they did not (fit and observed), and is drawn as a rule; the model's row says its own.
    humans = page.locator("#study-halfway tbody tr[data-who=humans] td")
    assert 0.2 <= float(humans.nth(3).inner_text()) <= 0.4, humans.all_inner_texts()
    assert 0.2 <= float(humans.nth(4).inner_text()) <= 0.4, humans.all_inner_texts()
    assert humans.nth(2).inner_text() == "100.0 %"
    shot(page, "perturbation-study")

    # The minimal perturbation to chance, started from the study page, drawn beside the
    # human edit sizes once its analysis job is done.
    page.click("#minimal-start")
    page.wait_for_selector("#minimal-status:has-text('pending')")
    (minimal_job,) = Job.objects.filter(kind=Job.Kind.ANALYSIS, campaign=campaign)
    analysis_run_task(minimal_job.pk)
    page.wait_for_selector("[data-chart=minimal][data-rendered='1'] #minimal-charts svg")
    assert "median minimal level" in page.inner_text("#minimal-charts")
    page.locator("[data-chart=minimal]").scroll_into_view_if_needed()
    shot(page, "perturbation-minimal")
    page.click("#minimal-charts a:has-text('report')")
    page.wait_for_selector(
        "[data-chart='perturbation_minimal:distribution'][data-rendered='1'] svg"
    )
    shot(page, "perturbation-minimal-report")

    # The dashboard: the study's human progress and a link to its page.
    page.goto(f"/manage/campaigns/{campaign.pk}/dashboard/")
    page.wait_for_selector(f"#dash-perturbation:not([hidden]) tr[data-study='{study.pk}']")
    text = page.inner_text(f"tr[data-study='{study.pk}']")
    assert "10" in text and "0: 2" in text and "0.8: 2" in text, text
    page.locator("#dash-perturbation").scroll_into_view_if_needed()
    shot(page, "perturbation-dashboard")
    page.click(f"tr[data-study='{study.pk}'] a")
    page.wait_for_selector("#study-chart svg")
