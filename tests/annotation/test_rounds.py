"""Dynamic rounds (docs/rounds.md): the database's one-per rules, the round an edit records at
submission (both submit paths), vMER per round through the pair viewer's "fooled" rule, the
REST endpoints by role, the dashboard field and the export column."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import easy_vqa
import pytest
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotation.models import Assignment, Campaign, CampaignRound, CounterfactualEdit, Job
from annotation.models import Membership as M
from annotation.selectors_results import edit_models_fooled, edits_fooling
from annotation.selectors_rounds import campaign_rounds, vmer_interval
from annotation.services.annotations import annotation_submit
from annotation.services.assignments import assignment_lease
from annotation.services.counterfactuals import edit_scores_record
from annotation.services.exports import export_job_create
from annotation.services.rounds import round_close, round_open
from annotation.tasks import export_run
from counterpoint.errors import Conflict
from models_bridge.services.registry import model_register
from tests.annotation.annotator_helpers import add_annotators, annotate_body, member, text_campaign
from tests.conftest import client_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _campaign() -> tuple[Campaign, Any]:
    campaign = text_campaign(
        8,
        redundancy=1,
        labels=list(easy_vqa.get_answers()),
        validations_required=1,
        validations_to_verify=1,
        status=Campaign.Status.ACTIVE,
    )
    model = model_register(
        dataset=campaign.dataset, kind="torchscript", location="easyvqa-text-only"
    )
    return campaign, model


def _submit(campaign: Campaign, user: Any, target: str) -> CounterfactualEdit:
    client = client_for(user)
    task = client.post(
        f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "annotate"}, format="json"
    ).json()
    r = client.post(
        f"/api/v1/assignments/{task['assignment']['id']}/submit/",
        annotate_body(task, label="no", target=target),
        format="json",
    )
    assert r.status_code == 201, r.content
    return CounterfactualEdit.objects.get(pk=r.json()["edit"]["id"])


def _validate_all(campaign: Campaign, wanted: dict[int, str], prefix: str) -> None:
    """One fresh validator per edit; each answers the plan's label for the edit it is given."""
    for n in range(len(wanted)):
        client = client_for(member(campaign, f"{prefix}-{campaign.pk}-{n}", M.Role.VALIDATOR))
        task = client.post(
            f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "validate"}, format="json"
        ).json()
        given = Assignment.objects.get(pk=task["assignment"]["id"]).edit_id
        r = client.post(
            f"/api/v1/assignments/{task['assignment']['id']}/submit/",
            {"idempotency_key": f"{prefix}-{n}", "label": wanted[given], "broken": False},
            format="json",
        )
        assert r.status_code == 201, r.content


def _pred(label: str) -> dict[str, Any]:
    return {"predicted_label": label, "probabilities": {label: 0.9}}


def test_one_number_per_campaign_and_one_open_round_are_database_rules() -> None:
    campaign, model = _campaign()
    first = round_open(campaign=campaign, target=model)
    assert first.number == 1 and first.closed_at is None
    now = timezone.now()
    with pytest.raises(IntegrityError), transaction.atomic():
        CampaignRound.objects.create(campaign=campaign, number=2, target=model, opened_at=now)
    with pytest.raises(IntegrityError), transaction.atomic():
        CampaignRound.objects.create(
            campaign=campaign, number=1, target=model, opened_at=now, closed_at=now
        )
    with pytest.raises(Conflict) as exc:
        round_open(campaign=campaign, target=model)
    assert exc.value.code == "round_already_open"
    round_close(round=first)
    assert round_open(campaign=campaign, target=model).number == 2
    assert campaign.model_versions.filter(pk=model.pk).exists()  # its edits get scored


def test_every_edit_records_the_round_open_at_its_submission() -> None:
    campaign, model = _campaign()
    people = add_annotators(campaign, 4)
    before = _submit(campaign, people[0], "yes")
    first = round_open(campaign=campaign, target=model)
    during = _submit(campaign, people[1], "yes")
    round_close(round=first)
    between = _submit(campaign, people[2], "yes")
    second = round_open(campaign=campaign, target=model)
    assignment = assignment_lease(
        campaign=campaign, annotator=people[3], kind="annotate"
    ).assignment
    assert assignment is not None
    task = {"example": {"values": assignment.example.values}}
    body = annotate_body(task, label="no", target="yes")
    body.pop("idempotency_key")
    result = annotation_submit(assignment=assignment, idempotency_key="round-2", **body)
    after = result.edit
    assert after is not None
    got = {
        e.pk: e.round_id
        for e in CounterfactualEdit.objects.filter(pk__in=[before.pk, during.pk, between.pk])
    }
    assert got == {before.pk: None, during.pk: first.pk, between.pk: None}
    # The instance the submit service returned reads its round as the insert stored it.
    assert after.round_id == second.pk
    assert CounterfactualEdit.objects.get(pk=after.pk).round_id == second.pk


def test_vmer_per_round_counts_the_edits_the_fooled_rule_picks() -> None:
    campaign, model = _campaign()
    people = add_annotators(campaign, 6)
    r1 = round_open(campaign=campaign, target=model)
    edits = [
        _submit(campaign, u, t)
        for u, t in zip(people[:4], ["yes", "circle", "yes", "red"], strict=True)
    ]
    # Edit 0 fools the target, edit 1 it follows, edit 2 will be disputed, edit 3 unscored.
    edit_scores_record(
        scores={
            edits[0].pk: {str(model.pk): {"original": _pred("no"), "edit": _pred("no")}},
            edits[1].pk: {str(model.pk): {"original": _pred("no"), "edit": _pred("circle")}},
            edits[2].pk: {str(model.pk): {"original": _pred("no"), "edit": _pred("no")}},
        }
    )
    _validate_all(
        campaign,
        {edits[0].pk: "yes", edits[1].pk: "circle", edits[2].pk: "no", edits[3].pk: "red"},
        "v1",
    )
    round_close(round=r1)
    round_open(campaign=campaign, target=model)
    later = [_submit(campaign, u, "yes") for u in people[4:]]
    edit_scores_record(
        scores={
            e.pk: {str(model.pk): {"original": _pred("no"), "edit": _pred("yes")}} for e in later
        }
    )
    _validate_all(campaign, {e.pk: "yes" for e in later}, "v2")

    rows = {r["number"]: r for r in campaign_rounds(campaign=campaign)}
    statuses = [e.status for e in CounterfactualEdit.objects.filter(round=r1).order_by("id")]
    assert statuses == ["verified", "verified", "disputed", "verified"]
    fooled_sql = set(
        edits_fooling(CounterfactualEdit.objects.filter(round=r1), model_id=model.pk).values_list(
            "id", flat=True
        )
    )
    fooled_row = {
        e.pk
        for e in CounterfactualEdit.objects.filter(round=r1)
        if model.pk in edit_models_fooled(e)
    }
    assert fooled_sql == fooled_row == {edits[0].pk}
    one = rows[1]
    assert (one["edits"], one["verified"], one["verified_scored"]) == (4, 3, 2)
    assert one["verified_pending_score"] == 1 and one["fooling"] == 1 and one["vmer"] == 0.5
    assert one["status"] == "closed" and one["target"]["id"] == model.pk
    lo, hi = one["vmer_ci95"]
    assert 0.0 <= lo <= 0.5 <= hi <= 1.0
    two = rows[2]
    assert (two["verified_scored"], two["fooling"], two["vmer"]) == (2, 0, 0.0)
    assert two["status"] == "open" and two["vmer_ci95"] == [0.0, 0.0]
    # Seeded: the same counts and seed give the same interval.
    assert vmer_interval(3, 10, seed=(0, 1)) == vmer_interval(3, 10, seed=(0, 1))
    assert vmer_interval(0, 0, seed=(0, 1)) is None


def test_rounds_query_count_is_one_plus_one_per_round(exact_queries) -> None:  # type: ignore[no-untyped-def]
    campaign, model = _campaign()
    for _ in range(3):
        round_close(round=round_open(campaign=campaign, target=model))
    with exact_queries(4):
        assert len(campaign_rounds(campaign=campaign)) == 3


def test_rounds_api_by_role_and_its_errors() -> None:
    campaign, model = _campaign()
    manager = member(campaign, "mia-rounds", M.Role.MANAGER)
    (annotator,) = add_annotators(campaign, 1)
    outsider = UserFactory(username="oz-rounds")
    base = f"/api/v1/campaigns/{campaign.pk}/rounds/"
    assert client_for(annotator).get(base).status_code == 403
    assert client_for(outsider).get(base).status_code == 404
    assert client_for(annotator).post(base, {"target": model.pk}, format="json").status_code == 403
    client = client_for(manager)
    assert client.get(base).json() == {"rounds": []}
    r = client.post(base, {"target": 10**9}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "round_target"
    r = client.post(base, {"target": model.pk}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["number"] == 1 and r.json()["status"] == "open"
    r = client.post(base, {"target": model.pk}, format="json")
    assert r.status_code == 409 and r.json()["error"]["code"] == "round_already_open"
    assert CampaignRound.objects.filter(campaign=campaign).count() == 1
    assert client_for(annotator).post(f"{base}1/close/").status_code == 403
    r = client.post(f"{base}1/close/")
    assert r.status_code == 200 and r.json()["status"] == "closed"
    r = client.post(f"{base}7/close/")
    assert r.status_code == 404 and r.json()["error"]["code"] == "round_not_found"
    assert [x["number"] for x in client.get(base).json()["rounds"]] == [1]


def test_dashboard_shows_rounds_and_the_pairs_export_carries_the_round() -> None:
    campaign, model = _campaign()
    manager = member(campaign, "mia-rounds", M.Role.MANAGER)
    people = add_annotators(campaign, 2)
    outside = _submit(campaign, people[0], "yes")
    first = round_open(campaign=campaign, target=model)
    inside = _submit(campaign, people[1], "yes")
    data = client_for(manager).get(f"/api/v1/campaigns/{campaign.pk}/dashboard/").json()
    assert [(r["number"], r["edits"], r["vmer"]) for r in data["rounds"]] == [(1, 1, None)]
    assert data["rounds"][0]["target"]["id"] == model.pk

    job = export_job_create(campaign=campaign, created_by=manager, fmt="jsonl")
    export_run(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, (job.error, job.log)
    import zipfile

    with zipfile.ZipFile(Path(settings.MEDIA_ROOT) / job.result_file.name) as zf:
        pairs = [json.loads(line) for line in zf.read("pairs.jsonl").decode().splitlines()]
        readme = zf.read("README.md").decode()
    assert {p["edit_id"]: p["round"] for p in pairs} == {
        outside.pk: None,
        inside.pk: first.number,
    }
    assert "| `round` | int |" in readme
