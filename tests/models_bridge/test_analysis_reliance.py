"""The `reliance` analysis method on an easy-VQA campaign built through the services:
annotations with reliance answers and text edits submitted through the annotator API, edits
scored by the edit-score task, the job run as a worker runs it."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction

from annotation.agreement import cohen_kappa
from annotation.models import Annotation, CounterfactualEdit, Job
from models_bridge.analysis.reliance import NEEDED_BOTH, human_category
from models_bridge.models import AnalysisResult
from models_bridge.services.analysis import analysis_start
from models_bridge.services.registry import campaign_models_set, model_register
from models_bridge.tasks import analysis_run_task, edit_score_task
from tests.models_bridge.conftest import annotate_all

pytestmark = pytest.mark.django_db

RELIANCE = ["synergy", "equivalence", "synergy", "specialization", "complementarity", "synergy"]


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
    return {"campaign": evqa_campaign, "model": mv, "manager": evqa_people["manager"]}


def run(world: dict[str, Any], methods: list[str], **params: Any) -> dict[str, Any]:
    with transaction.atomic():
        job = analysis_start(
            campaign=world["campaign"],
            model_version=world["model"],
            methods=methods,
            params={"resamples": 200, **params},
            created_by=world["manager"],
            enqueue=False,
        )
    analysis_run_task(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    return {r.method: r.result for r in AnalysisResult.objects.filter(job=job)}


def test_reliance_report_on_a_campaign_through_the_services(world: dict[str, Any]) -> None:
    campaign = world["campaign"]
    results = run(world, ["emap", "reliance"])
    emap, rel = results["emap"], results["reliance"]
    assert "this job's emap result" in rel["variant"]
    assert rel["examples"] == emap["n"] == 12
    assert sum(g["examples"] for g in rel["by_category"].values()) == 12

    # The figures are the definitions applied to the stored rows.
    answers: dict[int, dict[str, int]] = {}
    for ex, reliance in Annotation.objects.filter(campaign=campaign).values_list(
        "example_id", "reliance"
    ):
        answers.setdefault(ex, {})
        answers[ex][reliance] = answers[ex].get(reliance, 0) + 1
    changed = {e["example"]: e["argmax_changed"] for e in emap["examples"]}
    cats = {ex: human_category(answers.get(ex, {})) for ex in changed}
    for cat, g in rel["by_category"].items():
        members = [ex for ex, c in cats.items() if c == cat]
        assert g["examples"] == len(members)
        assert g["emap_changed"]["numerator"] == sum(changed[ex] for ex in members)
    humans, model = [], []
    for ex in sorted(changed):
        if cats[ex] not in ("tied", "unanswered"):
            humans.append(cats[ex] == NEEDED_BOTH)
            model.append(changed[ex])
    k = cohen_kappa(humans, model)
    assert rel["kappa"]["n"] == len(humans)
    assert rel["kappa"]["value"] == (None if k != k else pytest.approx(k))

    # Edits: every edit of the campaign is a text edit scored by the campaign model.
    edits = CounterfactualEdit.objects.filter(campaign=campaign)
    assert rel["edits"] == edits.count() > 0
    assert rel["edited_modalities"] == ["text"]
    overall = rel["overall"]["edits"]["text"]["model_flip_rate"]
    flipped = sum(
        1
        for e in edits
        if e.scores[str(world["model"].pk)]["edit"]["predicted_label"]
        != e.scores[str(world["model"].pk)]["original"]["predicted_label"]
    )
    assert (overall["numerator"], overall["denominator"]) == (flipped, edits.count())
    assert set(rel["overall"]["ablation"]) == {"image", "text"}

    # Disagreements carry their inputs (thumbnail sha256, text) and their edits.
    for d in rel["disagreements"]:
        assert d["disagreement"] >= 0.5
        assert d["inputs"]["id"] == d["example"] and d["inputs"]["image_sha256"]
        assert d["edits"] == sorted(
            edits.filter(example_id=d["example"]).values_list("id", flat=True)
        )

    # Without the job's EMAP it computes the same figures itself.
    alone = run(world, ["reliance"])["reliance"]
    assert "streamed" in alone["variant"]
    assert alone["by_category"].keys() == rel["by_category"].keys()
    for cat in rel["by_category"]:
        assert alone["by_category"][cat]["emap_changed"] == rel["by_category"][cat]["emap_changed"]
    assert alone["kappa"] == rel["kappa"]


def test_reliance_params_are_checked(world: dict[str, Any]) -> None:
    from counterpoint.errors import ValidationFailed
    from models_bridge.analysis.registry import METHODS

    with pytest.raises(ValidationFailed) as exc:
        METHODS["reliance"](
            campaign=world["campaign"],
            model_version=world["model"],
            params={"top": -1},
            progress=lambda d, t: None,
        )
    assert exc.value.code == "analysis_param_invalid"
