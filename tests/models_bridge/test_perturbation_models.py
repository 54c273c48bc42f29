"""Models on perturbation studies (models_bridge/services/perturbation.py): bulk jobs score every
perturbed item with every campaign model (a second pass calls no model); the curves endpoint
puts humans and models side by side with their points of chance and the gap by level, reading
only stored rows; the minimal perturbation to chance runs through the analysis registry within
the call budget and agrees with a brute-force walk up the ladder."""

from __future__ import annotations

import math
from typing import Any

import pytest

from annotation.models import Job, Membership, PerturbationLabel, PerturbedItem
from annotation.services.campaigns import campaign_add_examples, campaign_create
from annotation.services.perturbation_tasks import perturbation_label_submit, perturbation_lease
from annotation.services.perturbations import perturbation_study_create
from annotation.tasks import perturbation_build_run
from models_bridge.analysis.registry import METHODS
from models_bridge.models import Score
from models_bridge.services.registry import model_register
from models_bridge.services.scoring import score
from models_bridge.tasks import bulk_score_task
from tests.conftest import client_for
from tests.factories import MembershipFactory, UserFactory
from tests.models_bridge.conftest import counting, easyvqa_dataset, package_dir

pytestmark = pytest.mark.django_db

LEVELS = [0.0, 0.1, 0.2, 0.4, 0.8]


def noop(done: int, total: int) -> None:
    pass


@pytest.fixture
def world(django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    package_dir("easyvqa-multiplicative")
    dataset = easyvqa_dataset(n=10)
    campaign = campaign_create(dataset=dataset, name="noise study", status="active")
    campaign_add_examples(campaign=campaign)
    mv = model_register(dataset=dataset, kind="torchscript", location="easyvqa-multiplicative")
    campaign.model_versions.add(mv)
    manager = UserFactory(username="mia")
    MembershipFactory(campaign=campaign, user=manager, role=Membership.Role.MANAGER)
    study = perturbation_study_create(
        campaign=campaign,
        created_by=manager,
        name="noise",
        modality="image",
        perturbation="gaussian_noise",
        levels=LEVELS,
    )
    perturbation_build_run(study.job_id)
    study.refresh_from_db()
    return {"campaign": campaign, "mv": mv, "manager": manager, "study": study}


def _score_all(world: dict[str, Any]) -> list[int]:
    campaign, study = world["campaign"], world["study"]
    r = client_for(world["manager"]).post(
        f"/api/v1/campaigns/{campaign.pk}/perturbation-studies/{study.pk}/score/"
    )
    assert r.status_code == 202, r.content
    ids = [j["id"] for j in r.json()["jobs"]]
    for ident in ids:
        bulk_score_task(ident)
    return ids


def test_bulk_jobs_score_every_item_once(world):  # type: ignore[no-untyped-def]
    counter = counting(world["mv"])
    (job_id,) = _score_all(world)
    job = Job.objects.get(pk=job_id)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.result["target"] == "perturbed" and job.result["done"] == 50
    # Level 0 is the example itself; noise makes new inputs at every other rung.
    assert Score.objects.filter(model_version=world["mv"]).count() == 50
    calls = counter.calls
    (again,) = _score_all(world)
    assert Job.objects.get(pk=again).result["model_calls"] == 0 and counter.calls == calls


def test_curves_put_humans_and_models_side_by_side(world, exact_queries):  # type: ignore[no-untyped-def]
    campaign, study = world["campaign"], world["study"]
    _score_all(world)
    people = []
    for name in ("ann", "bob", "cat", "dan", "eve"):
        user = UserFactory(username=name)
        MembershipFactory(campaign=campaign, user=user, role=Membership.Role.ANNOTATOR)
        people.append(user)
    # Humans here: right at the low rungs, wrong at the top ones (a clean, known curve).
    for user in people:
        while (leased := perturbation_lease(study=study, annotator=user).assignment) is not None:
            item = leased.perturbed_item
            right = item.example.label
            wrong = next(lab for lab in campaign.dataset.label_space if lab != right)
            leased.campaign = campaign
            perturbation_label_submit(
                assignment=leased, label=right if item.level_index < 3 else wrong, confidence=4
            )
    assert PerturbationLabel.objects.filter(study=study).count() == 50
    client = client_for(world["manager"])
    url = f"/api/v1/campaigns/{campaign.pk}/perturbation-studies/{study.pk}/curves/"
    # membership+study, items, labels, models, one cached-score lookup
    with exact_queries(6):
        body = client.get(url).json()
    assert body["levels"] == LEVELS
    assert body["chance"] == pytest.approx(1 / len(campaign.dataset.label_space))
    humans = body["humans"]
    assert [p["n"] for p in humans["points"]] == [10] * 5
    assert [p["accuracy"] for p in humans["points"]] == [1, 1, 1, 0, 0]
    assert humans["empirical_halfway"] == pytest.approx(0.2 + (0.4 - 0.2) * 0.5 / 1.0, abs=0.1)
    assert humans["fit"] is not None and 0.2 < humans["halfway"] < 0.4
    assert humans["halfway_on_ladder"] is True
    (model,) = body["models"]
    assert model["id"] == world["mv"].pk and model["scored"] == 50
    # The model's accuracy at each rung is what its stored scores say.
    items = PerturbedItem.objects.filter(study=study).select_related("example")
    for index in range(5):
        rows = [i for i in items if i.level_index == index]
        res = score(model_version=world["mv"], inputs=[i.values for i in rows])
        expect = sum(r.predicted_label == i.example.label for r, i in zip(res, rows, strict=True))
        assert model["points"][index]["correct"] == expect
        low, high = model["points"][index]["low"], model["points"][index]["high"]
        assert low <= model["points"][index]["accuracy"] <= high
    gap = [g for g in body["gap"] if g["model"] == world["mv"].pk]
    assert [g["gap"] for g in gap] == [
        pytest.approx(h["accuracy"] - m["accuracy"])
        for h, m in zip(humans["points"], model["points"], strict=True)
    ]
    assert client_for(people[0]).get(url).status_code == 403


def test_minimal_perturbation_agrees_with_walking_the_ladder(world):  # type: ignore[no-untyped-def]
    campaign, study, mv = world["campaign"], world["study"], world["mv"]
    out = METHODS["perturbation_minimal"](
        campaign=campaign, model_version=mv, params={"study": study.pk, "refine": 3}, progress=noop
    )
    assert out["examples"] == 10 and out["refine"] == 3
    # Beside it, the campaign's human edits of the same modality (none here).
    assert out["human_edits"] == {
        "modality": "image",
        "measure": "pixel_fraction",
        "count": 0,
        "median": None,
        "sizes": [],
    }
    assert out["mean_calls"] <= 2 * math.log2(len(LEVELS)) + 3
    chance = 1 / len(campaign.dataset.label_space)
    items = PerturbedItem.objects.filter(study=study).select_related("example")
    for row in out["rows"]:
        rungs = sorted((i for i in items if i.example_id == row["example"]), key=lambda i: i.level)
        res = score(model_version=mv, inputs=[i.values for i in rungs])
        ref, label = res[0].predicted_label, rungs[0].example.label
        fails = [r.predicted_label != ref or r.probabilities.get(label, 1.0) <= chance for r in res]
        first = next((k for k, f in enumerate(fails) if f), None)
        if first is None or not all(fails[first:]):
            continue  # not monotone on this example: the search only promises a failing level
        assert row["rung"] == first
        if first > 0:
            assert LEVELS[first - 1] < row["level"] <= LEVELS[first]
    with pytest.raises(Exception) as err:
        METHODS["perturbation_minimal"](
            campaign=campaign, model_version=mv, params={"study": 10**6}, progress=noop
        )
    assert getattr(err.value, "code", "") == "analysis_params"


def test_study_follows_its_jobs_and_serves_the_minimal_distribution(world):  # type: ignore[no-untyped-def]
    from models_bridge.tasks import analysis_run_task

    campaign, study, mv = world["campaign"], world["study"], world["mv"]
    client = client_for(world["manager"])
    base = f"/api/v1/campaigns/{campaign.pk}/perturbation-studies/{study.pk}/"
    assert client.get(f"{base}minimal/").json() == {"results": []}
    (score_job,) = _score_all(world)
    r = client.post(
        f"/api/v1/campaigns/{campaign.pk}/analyses/",
        {"model": mv.pk, "methods": ["perturbation_minimal"], "params": {"study": study.pk}},
        format="json",
    )
    assert r.status_code == 202, r.content
    jobs = client.get(base).json()["jobs"]
    assert [(j["id"], j["status"], j["model_version"]) for j in jobs["score"]] == [
        (score_job, "succeeded", mv.pk)
    ]
    assert [(j["status"], j["model_version"]) for j in jobs["minimal"]] == [("pending", mv.pk)]
    analysis_run_task(jobs["minimal"][0]["id"])
    assert client.get(base).json()["jobs"]["minimal"][0]["status"] == "succeeded"
    (minimal,) = client.get(f"{base}minimal/").json()["results"]
    assert minimal["model"] == mv.pk and minimal["examples"] == 10
    assert minimal["ladder"] == LEVELS
    assert len(minimal["levels"]) + minimal["beyond"] == 10
    assert all(0 < x <= LEVELS[-1] for x in minimal["levels"])
    assert minimal["human_measure"] == "pixel_fraction" and minimal["human_sizes"] == []
    assert minimal["report"] == f"/manage/campaigns/{campaign.pk}/analyses/{minimal['job']}/"
    outsider = UserFactory(username="olga")
    assert client_for(outsider).get(f"{base}minimal/").status_code == 404
