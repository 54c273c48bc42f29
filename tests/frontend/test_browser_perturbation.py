"""Perturbation studies in real headless Chromium: a manager defines a 5-level image-noise
study on easy-VQA on the Perturbation tab and sees it build; two annotators label its perturbed
examples on the task page (label + confidence, nothing else); after the models are scored the
study page draws humans and the model in one Vega-Lite chart with chance and the halfway
levels marked, and the gap table; the page follows the build, the labels and the jobs without
a reload, the minimal perturbation to chance is started there and drawn beside the human edit
sizes (and on the analysis report), the dashboard shows the study's progress. The second test
is issue 10's Done-when walk on the seeded demo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from annotation.models import (
    Assignment,
    Campaign,
    Job,
    Membership,
    PerturbationLabel,
    PerturbationStudy,
)
from annotation.services.campaigns import campaign_add_examples, campaign_create
from annotation.tasks import perturbation_build_run
from models_bridge.services.registry import REFERENCE_MODELS, model_register
from models_bridge.tasks import analysis_run_task, bulk_score_task
from tests.annotation.annotator_helpers import member
from tests.frontend.conftest import login, shot
from tests.models_bridge.conftest import easyvqa_dataset, package_dir

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _label_on_the_page(
    page: Any,
    campaign: Any,
    study: Any,
    name: str,
    *,
    n: int,
    password: str | None = None,
    shot_as: str = "",
) -> None:
    """`name` labels the study's `n` perturbed examples on the annotators' page in a browser
    context of their own, as a person who sees through mild noise and guesses under heavy
    noise: right up to level 0.2, a wrong label above (the page never says the level; the
    test looks the held item up), confidence 4."""
    space = list(campaign.dataset.label_space)
    ctx = page.context.browser.new_context(
        viewport={"width": 1280, "height": 800}, base_url=page.url.split("/manage")[0]
    )
    annotator = ctx.new_page()
    errors: list[str] = []
    annotator.on("pageerror", lambda exc, sink=errors: sink.append(str(exc)))
    if password is None:
        login(annotator, name)
    else:
        login(annotator, name, password)
    annotator.goto(f"/campaigns/{campaign.pk}/perturbation/{study.pk}/")
    for i in range(n):
        annotator.wait_for_selector(".ws.perturb .label-btn")
        annotator.wait_for_function("() => document.querySelector('.ws.perturb img')?.complete")
        held = int(annotator.get_attribute(".ws.perturb", "data-assignment") or 0)
        item = Assignment.objects.select_related("perturbed_item__example").get(pk=held)
        right = item.perturbed_item.example.label
        wrong = next(x for x in space if x != right)
        answer = right if item.perturbed_item.level <= 0.2 else wrong
        annotator.locator(".label-btn").nth(space.index(answer)).click()
        annotator.click("label[for=conf-4]")
        if shot_as and i == 0:
            shot(annotator, shot_as)
            shot_as = ""
        annotator.click("#perturb-submit")
        if i < n - 1:
            annotator.wait_for_function(
                f"() => document.querySelector('.ws.perturb')?.dataset.assignment !== '{held}'"
            )
    annotator.wait_for_selector("[data-state=done]")
    assert not errors, errors
    ctx.close()


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

    for name in ("ann", "bob"):
        _label_on_the_page(page, campaign, study, name, n=5, shot_as="perturbation-task")
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
        "() => document.querySelector('[data-chart=curves]')?.dataset.scores === '25'"
    )
    assert page.get_attribute("[data-chart=curves]", "data-series") == "2"
    page.wait_for_selector("#study-score-status:has-text('every job succeeded (25 items each)')")
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


def test_done_when_walk_on_the_demo(
    page: Any, transactional_db: Any, settings: Any, tmp_path: Path
) -> None:
    """Issue 10's Done-when on the demo data (`make demo` runs seed_demo): the demo manager
    defines a 5-level image-noise study, annotator1 and annotator2 label it on the annotate
    page, the reference models are scored, and the study page shows humans and models
    side by side with their points of chance."""
    settings.VAR_DIR = tmp_path
    call_command("seed_demo", examples=10, stdout=open(tmp_path / "seed.log", "w"))
    creds = json.loads((tmp_path / "demo-credentials.json").read_text())
    campaign = Campaign.objects.get(name="easy-VQA demo")
    n_models = campaign.model_versions.filter(is_active=True).count()
    assert n_models == len(REFERENCE_MODELS)  # the demo attaches every reference model

    login(page, "manager", creds["manager"])
    page.goto(f"/manage/campaigns/{campaign.pk}/perturbation/")
    page.fill("#s-name", "noise")
    page.select_option("#s-perturbation", "gaussian_noise")
    page.select_option("#s-modality", "image")
    page.fill("#s-levels", "0, 0.1, 0.2, 0.4, 0.8")
    page.click("#study-start")
    page.wait_for_selector("#studies-table tbody tr[data-status=building]")
    study = PerturbationStudy.objects.get(campaign=campaign, name="noise")
    page.click("a.study-link")
    page.wait_for_selector("#study[data-status=building]")
    perturbation_build_run(study.job_id)  # the io worker
    page.wait_for_selector("#study[data-status=ready]")
    assert "10 · 10 · 10 · 10 · 10" in page.inner_text("#study-build")
    # The page gives the annotators' link; they follow it.
    link = page.get_attribute("#study-task-link", "href")
    assert link == f"/campaigns/{campaign.pk}/perturbation/{study.pk}/"

    for name in ("annotator1", "annotator2"):
        _label_on_the_page(page, campaign, study, name, n=10, password=creds[name])
    # The page followed the labels without a reload: 4 per level (2 people x 10 examples / 5).
    page.wait_for_selector("#study-humans:has-text('20 from 2 annotators')")
    assert "per level 4 · 4 · 4 · 4 · 4" in page.inner_text("#study-humans")

    page.click("#study-score")
    page.wait_for_selector(f"#study-score-status:has-text('{n_models} scoring job')")
    for job in Job.objects.filter(kind=Job.Kind.SCORE, campaign=campaign):
        bulk_score_task(job.pk)  # the scoring worker
    # The page sees the jobs finish and redraws with every model's 50 scores: no reload.
    page.wait_for_function(
        f"() => document.querySelector('[data-chart=curves]')?.dataset.scores === '{50 * n_models}'"
    )
    assert page.get_attribute("[data-chart=curves]", "data-series") == str(n_models + 1)
    assert f"Scored by {n_models} models: every job succeeded (50 items each)" in page.inner_text(
        "#study-score-status"
    )
    # Six series and a gap column per model still fit the page (the tables scroll inside).
    assert page.evaluate(
        "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )
    page.wait_for_selector("#study-chart svg")
    rows = page.locator("#study-halfway tbody tr")
    assert rows.count() == n_models + 1
    humans = page.locator("#study-halfway tbody tr[data-who=humans] td")
    assert humans.nth(1).inner_text() == "20" and humans.nth(2).inner_text() == "100.0 %"
    assert 0.2 <= float(humans.nth(3).inner_text()) <= 0.4, humans.all_inner_texts()
    for row in rows.all()[1:]:  # every model: 50 scores and its own point of chance (or none)
        cells = row.locator("td").all_inner_texts()
        assert cells[1] == "50" and cells[3] not in ("", "\u2013"), cells
    # The chart marks chance and the halfway levels (dashed rules) beside the points and fits.
    assert (
        page.locator("#study-chart svg .mark-rule path, #study-chart svg .mark-rule line").count()
        > 0
    )
    page.locator("[data-chart=curves]").scroll_into_view_if_needed()
    shot(page, "perturbation-demo-curves")
    page.locator("#study-gap").scroll_into_view_if_needed()
    shot(page, "perturbation-demo-gap")
