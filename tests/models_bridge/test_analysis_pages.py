"""The manager console's analyses pages: the list with its start form (every registered
method offered), a job started the way the page starts it (the REST endpoint, with the
session) and run as the worker runs it, its report rendering every result, the downloads,
and who may see any of it."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from django.test import Client

from annotation.models import CounterfactualEdit, Job, Membership
from frontend.views_analyses import STUDY_METHODS, method_choices
from models_bridge.analysis.registry import METHODS
from models_bridge.analysis.tables import result_tables
from models_bridge.models import AnalysisResult
from models_bridge.services.analysis import analysis_result_store
from models_bridge.services.registry import campaign_models_set, model_register
from models_bridge.tasks import analysis_run_task, edit_score_task
from tests.factories import MembershipFactory, UserFactory
from tests.models_bridge.conftest import annotate_all

pytestmark = pytest.mark.django_db

RELIANCE = ["synergy", "equivalence", "synergy", "specialization"]


def browser(user: Any) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def world(evqa_campaign: Any, evqa_people: Any) -> dict[str, Any]:
    mv = model_register(
        dataset=evqa_campaign.dataset, kind="torchscript", location="easyvqa-multiplicative"
    )
    campaign_models_set(campaign=evqa_campaign, model_versions=[mv])
    annotate_all(evqa_campaign, evqa_people["shown"], RELIANCE)
    annotate_all(evqa_campaign, evqa_people["hidden"], RELIANCE[::-1])
    for edit in CounterfactualEdit.objects.filter(campaign=evqa_campaign):
        edit_score_task(edit.pk)
    return {"campaign": evqa_campaign, "model": mv, **evqa_people}


def start_like_the_page(
    world: dict[str, Any], methods: list[str], capture: Any, **params: Any
) -> Job:
    """What js/analyses.js sends: the REST endpoint, with the signed-in session."""
    campaign = world["campaign"]
    with capture(execute=False) as sent:
        r = browser(world["manager"]).post(
            f"/api/v1/campaigns/{campaign.pk}/analyses/",
            json.dumps({"model": world["model"].pk, "methods": methods, "params": params}),
            content_type="application/json",
        )
    assert r.status_code == 202, r.content
    assert len(sent) == 1  # the job's message, sent on commit
    return Job.objects.get(pk=r.json()["job"]["id"])


def test_the_list_page_offers_every_registered_method_and_the_campaign_models(
    world: dict[str, Any],
) -> None:
    campaign = world["campaign"]
    page = browser(world["manager"]).get(f"/manage/campaigns/{campaign.pk}/analyses/")
    assert page.status_code == 200
    body = page.content.decode()
    assert 'aria-current="page">Analyses<' in body
    for name in METHODS:
        # A method that needs a perturbation study is started from the study's page.
        offered = f'name="methods" value="{name}"' in body
        assert offered == (name not in STUDY_METHODS), name
    assert f'<option value="{world["model"].pk}">{world["model"].name}@' in body
    dash = browser(world["manager"]).get(f"/manage/campaigns/{campaign.pk}/dashboard/")
    assert f'href="/manage/campaigns/{campaign.pk}/analyses/"' in dash.content.decode()


def test_start_from_the_page_run_and_read_the_report(
    world: dict[str, Any], django_capture_on_commit_callbacks: Any, exact_queries: Any
) -> None:
    campaign, manager = world["campaign"], world["manager"]
    names = [name for name, _ in method_choices()]  # every method the form offers
    job = start_like_the_page(
        world, names, django_capture_on_commit_callbacks, seed=0, k=3, resamples=100
    )
    listed = browser(manager).get(f"/api/v1/campaigns/{campaign.pk}/analyses/?results=methods")
    (item,) = listed.json()
    assert item["job"]["status"] == "pending" and item["results"] == []

    analysis_run_task(job.pk)  # what the analysis worker does with the message
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    (item,) = (
        browser(manager).get(f"/api/v1/campaigns/{campaign.pk}/analyses/?results=methods").json()
    )
    assert [r["method"] for r in item["results"]] == names
    assert all(set(r) == {"id", "method"} for r in item["results"])

    base = f"/manage/campaigns/{campaign.pk}/analyses/{job.pk}/"
    client = browser(manager)
    # session, user, membership (the access helper), the job, its results, its author
    with exact_queries(6):
        page = client.get(base)
    assert page.status_code == 200
    body = page.content.decode()
    results = {r.method: r.result for r in AnalysisResult.objects.filter(job=job)}
    for name in names:
        assert f'id="result-{name}"' in body
        assert f'href="{name}.json"' in body
        for table in result_tables(name, results[name]):
            assert f'data-table="{name}:{table.key}"' in body
    assert 'id="analysis-charts"' in body  # the charts' data (json_script)
    rel = results["reliance"]
    for d in rel["disagreements"]:
        assert f'src="/media/{d["inputs"]["image_sha256"]}"' in body
        for edit in d["edits"]:
            assert f'href="/manage/campaigns/{campaign.pk}/pairs/{edit}/"' in body
    # Cluster members are shown with their thumbnails too.
    member = results["clusters"]["clusters"][0]["examples"][0]
    assert f'src="/media/{member["image_sha256"]}"' in body

    # Downloads: the stored JSON, and each table as CSV.
    got = browser(manager).get(f"{base}reliance.json")
    assert got.status_code == 200 and json.loads(got.content) == rel
    assert "attachment" in got["Content-Disposition"]
    for table in result_tables("reliance", rel):
        sheet = browser(manager).get(f"{base}reliance.csv?table={table.key}")
        assert sheet.status_code == 200 and sheet["Content-Type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(sheet.content.decode())))
        assert rows[0] == table.columns and len(rows) == 1 + len(table.rows)
    assert browser(manager).get(f"{base}reliance.csv?table=nope").status_code == 404
    assert browser(manager).get(f"{base}reliance.xml").status_code == 404
    assert browser(manager).get(f"{base}heads.json").status_code == 404


def test_a_result_of_a_method_the_page_does_not_know_is_rendered_generically(
    world: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    job = start_like_the_page(world, ["counterfactual"], django_capture_on_commit_callbacks)
    analysis_run_task(job.pk)
    heads = {
        "method": "heads",
        "variant": "head masks on the cross-attention model",
        "importance": [{"head": h, "accuracy_drop": 0.1 * h} for h in range(4)],
        "pruning": [{"heads_removed": k, "accuracy": 1 - 0.2 * k} for k in range(5)],
        "accuracy": 0.9,
    }
    analysis_result_store(job_id=job.pk, method="heads", result=heads)
    base = f"/manage/campaigns/{world['campaign'].pk}/analyses/{job.pk}/"
    body = browser(world["manager"]).get(base).content.decode()
    assert 'id="result-heads"' in body and "Attention heads" in body
    for key in ("summary", "importance", "pruning"):
        assert f'data-table="heads:{key}"' in body
    sheet = browser(world["manager"]).get(f"{base}heads.csv?table=pruning").content.decode()
    assert sheet.splitlines()[:2] == ["heads_removed,accuracy", "0,1.0"]


def test_only_the_campaigns_managers_see_analyses(
    world: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    from annotation.services.campaigns import campaign_create

    campaign = world["campaign"]
    job = start_like_the_page(world, ["counterfactual"], django_capture_on_commit_callbacks)
    analysis_run_task(job.pk)
    other = campaign_create(dataset=campaign.dataset, name="another study")
    other_manager = UserFactory(username="olga-other-manager")
    MembershipFactory(campaign=other, user=other_manager, role=Membership.Role.MANAGER)
    base = f"/manage/campaigns/{campaign.pk}/analyses/"
    urls = [base, f"{base}{job.pk}/", f"{base}{job.pk}/counterfactual.json"]
    for url in urls:
        assert browser(world["manager"]).get(url).status_code == 200
        assert browser(world["shown"]).get(url).status_code == 403  # an annotator
        assert browser(other_manager).get(url).status_code == 404
        assert browser(world["outsider"]).get(url).status_code == 404
        anonymous = browser(None).get(url)
        assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    # The job under another campaign's address does not exist; the REST start is refused too.
    wrong = f"/manage/campaigns/{other.pk}/analyses/{job.pk}/"
    assert browser(other_manager).get(wrong).status_code == 404
    r = browser(world["shown"]).post(
        f"/api/v1/campaigns/{campaign.pk}/analyses/",
        json.dumps({"model": world["model"].pk, "methods": ["emap"]}),
        content_type="application/json",
    )
    assert r.status_code == 403
    assert Job.objects.filter(kind=Job.Kind.ANALYSIS).count() == 1
