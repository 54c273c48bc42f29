"""Analyses in real headless Chromium (issue 9 "Done when"): on a small demo-like campaign
(easy-VQA, the reference models, annotations with reliance answers and scored edits) a
manager goes from the dashboard to the analyses page, starts an analysis of every method,
watches its progress bar fill without a reload while the worker runs the job, and reads the
report: every result's charts rendered, the reliance report's disagreement examples with
their thumbnails and links to the pair viewer."""

from __future__ import annotations

from typing import Any

import pytest

from annotation.models import CounterfactualEdit, Job, Membership
from frontend.views_analyses import method_choices
from models_bridge.models import AnalysisResult
from models_bridge.tasks import analysis_run_task, edit_score_task
from tests.frontend.conftest import login, make_campaign, member, shot
from tests.models_bridge.conftest import annotate_all

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_start_an_analysis_from_the_dashboard_and_read_the_report(page: Any, evqa: Any) -> None:
    examples = sorted(evqa.dataset.examples.all(), key=lambda e: e.pk)[:12]
    campaign = make_campaign(
        evqa, examples=examples, name="Analysis study", editable_modalities=["text"]
    )
    member(campaign, "mona", Membership.Role.MANAGER)
    answers = ["synergy", "equivalence", "specialization", "synergy", "complementarity"]
    annotate_all(campaign, member(campaign, "ann", Membership.Role.ANNOTATOR), answers)
    # The second annotator agrees on most examples, not all.
    other = [*answers[:4], "synergy"]
    annotate_all(campaign, member(campaign, "bea", Membership.Role.ANNOTATOR), other)
    for edit in CounterfactualEdit.objects.filter(campaign=campaign):
        edit_score_task(edit.pk)

    login(page, "mona")
    page.goto(f"/manage/campaigns/{campaign.pk}/dashboard/")
    page.click(".dash-analyses a")
    page.wait_for_url(f"**/manage/campaigns/{campaign.pk}/analyses/")
    page.wait_for_selector("#analyses-empty:not([hidden])")
    page.select_option("#analysis-model", str(evqa.multiplicative.pk))
    # Every method the form offers (the minimal perturbation to chance, which needs a study, is
    # started from the study's page: tests/frontend/test_browser_perturbation.py).
    methods = [name for name, _ in method_choices()]
    assert "perturbation_minimal" not in methods
    for name in methods:
        page.check(f"input[name=methods][value={name}]")
    page.fill("#analysis-limit", "12")
    shot(page, "analyses-form")
    page.click("#analysis-start")
    row = page.locator("#analyses-table tbody tr").first
    row.wait_for()
    assert row.get_attribute("data-status") == "pending"

    job = Job.objects.get(kind=Job.Kind.ANALYSIS, campaign=campaign)
    assert job.params["methods"] == methods and job.params["params"]["limit"] == 12
    analysis_run_task(job.pk)  # what the analysis worker does with the message the POST sent
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error

    # The page polls: the row turns into a finished analysis with a report link, no reload.
    done = f"tr[data-job-id='{job.pk}'][data-status=succeeded]"
    page.wait_for_selector(done)
    assert page.get_attribute(f"{done} [role=progressbar]", "aria-valuenow") == "100"
    shot(page, "analyses-done")
    page.click(f"{done} a.analysis-report-link")
    page.wait_for_url(f"**/analyses/{job.pk}/")
    page.wait_for_function("() => document.getElementById('report').dataset.chartsRendered === '1'")
    shot(page, "analysis-report")
    for name in methods:
        assert (
            page.locator(f"#result-{name} .report-chart[data-rendered='1'] svg.marks").count() >= 1
        ), name
    for chart in ("emap", "ablation", "kappa"):
        page.locator(f"[data-chart='reliance:{chart}'] svg.marks").wait_for()
    page.locator("#result-reliance").scroll_into_view_if_needed()
    shot(page, "analysis-report-reliance-charts")
    rel = AnalysisResult.objects.get(job=job, method="reliance").result
    cards = page.locator("#result-reliance .example-card")
    assert cards.count() == len(rel["disagreements"])
    if rel["disagreements"]:
        img = cards.first.locator("img").first
        img.scroll_into_view_if_needed()
        page.wait_for_function(
            "() => { const i = document.querySelector('#result-reliance .example-card img');"
            " return i && i.complete && i.naturalWidth > 0; }"
        )
        assert img.get_attribute("src").startswith("/media/")
    page.locator("#result-reliance .disagreements").scroll_into_view_if_needed()
    shot(page, "analysis-report-reliance")
    links = page.locator("#result-reliance a.pair-link")
    if links.count():
        links.first.click()
        page.wait_for_url("**/pairs/*/")
        page.wait_for_selector("#pair-detail")
