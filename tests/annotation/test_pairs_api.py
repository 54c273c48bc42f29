"""The pair viewer's API: the edits list filtered by status, modality, author, target label
and "model fooled", and one pair with its neighbours under the same filters; manager-only,
exact query counts, no draft loaded."""

from __future__ import annotations

from typing import Any

import easy_vqa
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotation.models import Assignment, CounterfactualEdit, Membership
from annotation.selectors_results import edit_models_fooled, edits_fooling
from annotation.services.counterfactuals import edit_scores_record
from models_bridge.services.registry import campaign_models_set, model_register
from tests.annotation.annotator_helpers import add_annotators, annotate_body, member, text_campaign
from tests.annotation.test_draft_not_loaded import DRAFT_COLUMN
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def _summary(label: str) -> dict[str, Any]:
    return {"predicted_label": label, "probabilities": {label: 0.9}}


def _submit(campaign: Any, user: Any, target: str) -> CounterfactualEdit:
    client = client_for(user)
    task = client.post(
        f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "annotate"}, format="json"
    ).json()
    aid = task["assignment"]["id"]
    # A big draft, which no result may load.
    client.put(
        f"/api/v1/assignments/{aid}/draft/",
        {"draft": {"image": "data:image/png;base64," + "A" * 100_000}},
        format="json",
    )
    r = client.post(
        f"/api/v1/assignments/{aid}/submit/",
        annotate_body(task, label="no", target=target),
        format="json",
    )
    assert r.status_code == 201, r.content
    return CounterfactualEdit.objects.get(pk=r.json()["edit"]["id"])


def _world() -> dict[str, Any]:
    """Four text edits by four annotators, one model, two validators: edits 0 and 1 verified,
    edit 2 disputed, edit 3 pending. The model is fooled by edit 0 only (it still says the
    original's label), edit 1 it follows; edit 2 is disputed, so fooling does not apply."""
    campaign = text_campaign(
        4,
        redundancy=1,
        labels=list(easy_vqa.get_answers()),
        validations_required=1,
        validations_to_verify=1,
    )
    model = model_register(
        dataset=campaign.dataset, kind="torchscript", location="easyvqa-text-only"
    )
    campaign_models_set(campaign=campaign, model_versions=[model])
    manager = member(campaign, "mia-pairs", Membership.Role.MANAGER)
    authors = add_annotators(campaign, 4)
    targets = ["yes", "circle", "yes", "circle"]
    edits = [
        _submit(campaign, user, target)
        for user, target in zip(authors[:3], targets[:3], strict=True)
    ]
    edit_scores_record(
        scores={
            edits[0].pk: {str(model.pk): {"original": _summary("no"), "edit": _summary("no")}},
            edits[1].pk: {str(model.pk): {"original": _summary("no"), "edit": _summary("circle")}},
            edits[2].pk: {str(model.pk): {"original": _summary("no"), "edit": _summary("no")}},
        }
    )
    # Validators who never saw the originals; whichever edit the lease gives, the answer is
    # the plan's for it (edits 0 and 1 confirmed, edit 2 relabelled: disputed).
    wanted = {edits[0].pk: "yes", edits[1].pk: "circle", edits[2].pk: "no"}
    for n in range(3):
        vclient = client_for(member(campaign, f"val-{campaign.pk}-{n}", Membership.Role.VALIDATOR))
        task = vclient.post(
            f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "validate"}, format="json"
        ).json()
        given = Assignment.objects.get(pk=task["assignment"]["id"]).edit_id
        r = vclient.post(
            f"/api/v1/assignments/{task['assignment']['id']}/submit/",
            {"idempotency_key": f"v-{n}", "label": wanted[given], "broken": False},
            format="json",
        )
        assert r.status_code == 201, r.content
    # The fourth edit comes after: pending, not scored yet.
    edits.append(_submit(campaign, authors[3], targets[3]))
    for e in edits:
        e.refresh_from_db()
    return {
        "campaign": campaign,
        "model": model,
        "manager": manager,
        "authors": authors,
        "edits": edits,
    }


def _statuses(world: dict[str, Any]) -> dict[str, str]:
    return {str(e.pk): e.status for e in world["edits"]}


def test_filters_narrow_the_list_and_fooled_agrees_with_the_row_rule(
    django_assert_num_queries: Any,
) -> None:
    world = _world()
    campaign, model, edits = world["campaign"], world["model"], world["edits"]
    assert [e.status for e in edits] == ["verified", "verified", "disputed", "pending"]
    verified = edits[:2]
    client = client_for(world["manager"])
    base = f"/api/v1/campaigns/{campaign.pk}/edits/"

    def ids(query: str) -> list[int]:
        r = client.get(base + query)
        assert r.status_code == 200, r.content
        return [e["id"] for e in r.json()["results"]]

    fooled_rows = [e.pk for e in edits if model.pk in edit_models_fooled(e)]
    assert fooled_rows == [edits[0].pk]
    sql_rows = sorted(
        edits_fooling(
            CounterfactualEdit.objects.filter(campaign=campaign), model_id=model.pk
        ).values_list("id", flat=True)
    )
    assert sql_rows == fooled_rows
    # membership, count, edits, validations, assignments, attempts, campaign models (filter),
    # campaign models (pending)
    with django_assert_num_queries(8):
        with CaptureQueriesContext(connection) as seen:
            got = ids(f"?fooled={model.pk}")
    assert not any(DRAFT_COLUMN in q["sql"] for q in seen.captured_queries)
    assert got == fooled_rows
    assert ids("?status=verified") == [e.pk for e in verified]
    assert ids("?target_label=circle") == [e.pk for e in edits if e.target_label == "circle"]
    author = world["authors"][2].username
    assert ids(f"?author={author}") == [e.pk for e in edits if e.author.username == author]
    assert ids("?modality=text") == [e.pk for e in edits]
    assert ids("?modality=image") == []
    assert ids("?status=verified&target_label=yes") == [
        e.pk for e in verified if e.target_label == "yes"
    ]

    page = client.get(base).json()["results"]
    first = next(p for p in page if p["id"] == edits[0].pk)
    assert first["answer"]["reliance"] == "specialization"
    assert first["answer"]["rationale"] == "the word decides it"
    assert isinstance(first["answer"]["time_spent_ms"], int)
    assert first["answer"]["evidence"][0]["start"] == 0
    assert first["models_fooled"] == [model.pk]
    assert first["attempts_count"] == 0 and first["mask"] is None
    assert first["scores_pending"] == []
    pending = next(p for p in page if p["id"] == edits[3].pk)
    assert pending["scores_pending"] == [model.pk]

    bad = client.get(base + "?fooled=999999")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "filter_invalid"
    assert client.get(base + "?fooled=abc").json()["error"]["code"] == "filter_invalid"


def test_one_pair_with_its_neighbours_under_the_filters(django_assert_num_queries: Any) -> None:
    world = _world()
    campaign, edits = world["campaign"], world["edits"]
    client = client_for(world["manager"])
    base = f"/api/v1/campaigns/{campaign.pk}/edits/"
    second = edits[1]

    # membership, edit, validations, assignment, attempts, neighbours, campaign models
    with django_assert_num_queries(7):
        with CaptureQueriesContext(connection) as seen:
            r = client.get(f"{base}{second.pk}/")
    assert r.status_code == 200, r.content
    assert not any(DRAFT_COLUMN in q["sql"] for q in seen.captured_queries)
    body = r.json()
    assert body["id"] == second.pk
    assert body["original_values"]["text"] != body["edited_values"]["text"]
    assert body["neighbours"] == {
        "previous": edits[0].pk,
        "next": edits[2].pk,
        "position": 2,
        "count": 4,
    }

    # Under a filter the neighbours skip what it leaves out.
    circle = [e.pk for e in edits if e.target_label == "circle"]
    r = client.get(f"{base}{circle[-1]}/?target_label=circle").json()
    assert r["neighbours"] == {
        "previous": circle[0],
        "next": None,
        "position": 2,
        "count": 2,
    }
    # An edit outside the filter still opens (a stable link), with no position.
    r = client.get(f"{base}{edits[0].pk}/?target_label=circle").json()
    assert r["neighbours"]["position"] is None
    assert r["neighbours"]["next"] == circle[0]

    assert client.get(f"{base}999999/").json()["error"]["code"] == "not_found"
    other = text_campaign(1)
    assert (
        client_for(member(other, "mgr-other", Membership.Role.MANAGER))
        .get(f"/api/v1/campaigns/{other.pk}/edits/{second.pk}/")
        .status_code
        == 404
    )


def test_a_pair_is_for_the_campaign_managers_only() -> None:
    campaign = text_campaign(2, redundancy=1)
    (author,) = add_annotators(campaign, 1)
    client = client_for(author)
    task = client.post(
        f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "annotate"}, format="json"
    ).json()
    r = client.post(
        f"/api/v1/assignments/{task['assignment']['id']}/submit/",
        annotate_body(task),
        format="json",
    )
    edit_id = r.json()["edit"]["id"]
    path = f"/api/v1/campaigns/{campaign.pk}/edits/{edit_id}/"
    r = client.get(path)
    assert r.status_code == 403 and r.json()["error"]["code"] == "role_required"
    outsider = member(text_campaign(1), "elsewhere-pairs")
    assert client_for(outsider).get(path).status_code == 404
    assert client_for(None).get(path).status_code in (401, 403)
