"""Campaign setup through the API (issue 8 §1): the managed campaign list (exact query
count), lifecycle transitions with the dialog's lease figures and a named 409, pool picking
by label / metadata / seeded sample, gold items, instructions rendered and sanitised, and a
preview of the annotator's page that writes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from annotation.markdown import instructions_html
from annotation.models import (
    Annotation,
    Assignment,
    Attempt,
    Campaign,
    CampaignExample,
    Membership,
)
from annotation.services.assignments import assignment_draft_save, assignment_lease
from annotation.services.campaigns import campaign_add_examples, campaign_create
from tests.annotation.annotator_helpers import add_annotators, member, text_campaign
from tests.conftest import client_for
from tests.factories import DatasetFactory, ExampleFactory, UserFactory

pytestmark = pytest.mark.django_db


def _manager(campaign: Campaign, name: str = "boss") -> Any:
    return member(campaign, name, Membership.Role.MANAGER)


# --- instructions ---------------------------------------------------------------------------


def test_instructions_are_rendered_and_sanitised_once_for_every_reader() -> None:
    text = (
        "# Task\n\nLook **closely**. <script>alert(1)</script> <img src=x onerror=alert(1)>\n\n"
        "[guide](https://example.org/g) [bad](javascript:alert(1))"
    )
    html = instructions_html(text)
    assert "<h1>Task</h1>" in html and "<strong>closely</strong>" in html
    # Raw HTML is shown as text, never as a tag; the javascript: link is not a link.
    assert "<script" not in html and "<img" not in html and 'href="javascript' not in html
    assert "&lt;script&gt;" in html
    assert 'href="https://example.org/g"' in html and 'rel="noopener noreferrer"' in html
    assert instructions_html("") == "" and instructions_html(None) == ""

    campaign = text_campaign(2, status=Campaign.Status.ACTIVE, instructions=text)
    boss = _manager(campaign)
    (ann,) = add_annotators(campaign, 1)
    assert (
        client_for(boss).get(f"/api/v1/campaigns/{campaign.pk}/").json()["instructions_html"]
        == html
    )
    task = client_for(ann).post(
        f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "annotate"}, format="json"
    )
    assert task.json()["campaign"]["instructions_html"] == html
    r = client_for(boss).post(
        "/api/v1/campaigns/instructions-preview/", {"text": text}, format="json"
    )
    assert r.status_code == 200 and r.json() == {"html": html}
    assert (
        client_for(ann)
        .post("/api/v1/campaigns/instructions-preview/", {"text": text}, format="json")
        .status_code
        == 403
    )


# --- managed list ---------------------------------------------------------------------------


def test_managed_list_shows_only_managed_campaigns_with_progress(
    django_assert_num_queries: Any,
) -> None:
    mine = text_campaign(4, redundancy=2, status=Campaign.Status.ACTIVE, name="mine")
    other = text_campaign(3, name="other")
    boss = _manager(mine)
    member(other, "boss-as-annotator-elsewhere", Membership.Role.ANNOTATOR)
    (ann,) = add_annotators(mine, 1)
    assignment_lease(campaign=mine, annotator=ann, kind="annotate")
    # A fresh user object per request, as a real request has (Django caches permissions on it).
    fresh = lambda: client_for(type(boss).objects.get(pk=boss.pk))  # noqa: E731
    # The list (one query, its counts as subqueries) and can_manage_anything (the user's
    # and groups' permissions, then a manager membership).
    client = fresh()
    with django_assert_num_queries(4):
        r = client.get("/api/v1/campaigns/managed/")
    assert r.status_code == 200
    body = r.json()
    assert body["can_create"] is True
    assert [c["name"] for c in body["results"]] == ["mine"]
    row = body["results"][0]
    assert row["pool_size"] == 4 and row["target_annotations"] == 8
    assert row["annotations"] == 0 and row["open_leases"] == 1 and row["progress"] == 0.0
    assert row["console_url"] == f"/manage/campaigns/{mine.pk}/"

    # More campaigns, same number of queries.
    for i in range(3):
        _manager(text_campaign(2, name=f"more-{i}"), name=f"m{i}")
        from annotation.services.campaigns import membership_add

        membership_add(campaign=Campaign.objects.get(name=f"more-{i}"), user=boss, role="manager")
    client = fresh()
    with django_assert_num_queries(4):
        r = client.get("/api/v1/campaigns/managed/")
    assert len(r.json()["results"]) == 4

    # An annotator manages nothing; staff see every campaign.
    assert client_for(ann).get("/api/v1/campaigns/managed/").json() == {
        "can_create": False,
        "results": [],
    }
    staff = UserFactory(username="root", is_staff=True)
    assert len(client_for(staff).get("/api/v1/campaigns/managed/").json()["results"]) == 5


# --- lifecycle ------------------------------------------------------------------------------


def _lifecycle(client: Any, campaign: Campaign, action: str | None = None) -> Any:
    url = f"/api/v1/campaigns/{campaign.pk}/lifecycle/"
    if action is None:
        return client.get(url)
    return client.post(url, {"action": action}, format="json")


def test_lifecycle_says_what_happens_to_open_leases_and_refuses_illegal_moves() -> None:
    campaign = text_campaign(5, redundancy=1, status=Campaign.Status.DRAFT)  # before start
    boss = _manager(campaign)
    client = client_for(boss)
    state = _lifecycle(client, campaign).json()
    assert state["status"] == "draft" and state["open_leases"] == 0
    allowed = {a["action"]: a["allowed"] for a in state["actions"]}
    assert allowed == {"start": True, "pause": False, "resume": False, "close": True}

    r = _lifecycle(client, campaign, "resume")
    assert r.status_code == 409 and r.json()["error"]["code"] == "campaign_transition_invalid"
    assert _lifecycle(client, campaign, "start").json()["status"] == "active"
    campaign.refresh_from_db()

    annotators = add_annotators(campaign, 3)
    leases = [
        assignment_lease(campaign=campaign, annotator=a, kind="annotate").assignment
        for a in annotators
    ]
    assignment_draft_save(assignment=leases[0], draft={"v": 1, "label": "yes"})
    state = _lifecycle(client, campaign).json()
    pause = next(a for a in state["actions"] if a["action"] == "pause")
    close = next(a for a in state["actions"] if a["action"] == "close")
    assert state["open_leases"] == 3
    assert pause["message"].startswith("3 open leases: pausing keeps them")
    assert "closing expires them (autosaved drafts are kept)" in close["message"]

    assert _lifecycle(client, campaign, "pause").json()["status"] == "paused"
    assert Assignment.objects.filter(campaign=campaign, status="active").count() == 3
    r = client_for(annotators[0]).post(
        f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "annotate"}, format="json"
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "campaign_not_active"

    assert _lifecycle(client, campaign, "close").json() == {
        "status": "closed",
        "open_leases": 0,
        "open_leases_by_kind": {"annotate": 0, "validate": 0, "perturbation": 0},
        "actions": _lifecycle(client, campaign).json()["actions"],
    }
    assert Assignment.objects.filter(campaign=campaign, status="expired").count() == 3
    assert (
        sum(CampaignExample.objects.filter(campaign=campaign).values_list("in_flight", flat=True))
        == 0
    )
    leases[0].refresh_from_db()
    assert leases[0].draft["label"] == "yes"  # drafts are kept
    # Closed is final, through the lifecycle endpoint and through PATCH status alike.
    r = _lifecycle(client, campaign, "start")
    assert r.status_code == 409 and r.json()["error"]["code"] == "campaign_transition_invalid"
    r = client.patch(f"/api/v1/campaigns/{campaign.pk}/", {"status": "active"}, format="json")
    assert r.status_code == 409 and r.json()["error"]["code"] == "campaign_transition_invalid"
    r = _lifecycle(client, campaign, "reopen")
    assert r.status_code == 400 and r.json()["error"]["code"] == "campaign_action_unknown"
    assert _lifecycle(client_for(annotators[0]), campaign, "start").status_code == 403


# --- pool -----------------------------------------------------------------------------------


def _pool_campaign() -> tuple[Campaign, list[Any], Any]:
    dataset = DatasetFactory(
        modalities=[{"name": "text", "kind": "text"}], label_space=["yes", "no"]
    )
    examples = [
        ExampleFactory(
            dataset=dataset,
            values={"text": f"question {i}"},
            label=["yes", "no"][i % 2] if i < 18 else None,
            split="train" if i < 12 else "test",
            metadata={"source": "web" if i % 3 else "book", "difficulty": i % 4},
        )
        for i in range(20)
    ]
    boss = UserFactory(username="pool-boss")
    campaign = campaign_create(dataset=dataset, name="pool", created_by=boss)
    return campaign, examples, boss


def _add(client: Any, campaign: Campaign, **body: Any) -> Any:
    return client.post(f"/api/v1/campaigns/{campaign.pk}/examples/", body, format="json")


def test_pool_by_split_label_metadata_and_a_seeded_sample() -> None:
    campaign, examples, boss = _pool_campaign()
    client = client_for(boss)
    r = _add(client, campaign, split="test", label="no")
    assert r.status_code == 201 and r.json()["added"] == 3  # test split: 12..17 labelled
    r = _add(client, campaign, metadata_field="source", metadata_value="book", split="train")
    assert r.json()["added"] == 4  # 0, 3, 6, 9
    present = set(
        CampaignExample.objects.filter(campaign=campaign).values_list("example_id", flat=True)
    )
    r = _add(client, campaign, metadata_field="difficulty", metadata_value="3")  # a JSON number
    threes = {e.pk for e in examples if e.metadata["difficulty"] == 3}
    assert r.json()["added"] == len(threes - present) == 3
    pool = client.get(f"/api/v1/campaigns/{campaign.pk}/pool/").json()
    assert pool["pool_size"] == r.json()["pool_size"]
    assert sum(pool["labels"].values()) == pool["pool_size"]
    assert pool["dataset"]["splits"] == {"test": 8, "train": 12}
    assert pool["dataset"]["metadata_fields"] == ["difficulty", "source"]

    # A seeded sample: the same seed picks the same examples.
    other, _, boss2 = _pool_campaign_named("pool-2", campaign.dataset)
    picks = []
    for c, b in ((campaign, boss), (other, boss2)):
        CampaignExample.objects.filter(campaign=c).delete()
        assert _add(client_for(b), c, limit=5, sample_seed=11).json()["added"] == 5
        picks.append(
            set(CampaignExample.objects.filter(campaign=c).values_list("example_id", flat=True))
        )
    assert picks[0] == picks[1]

    r = _add(client, campaign, metadata_field="a__contains", metadata_value="x")
    assert r.status_code == 400 and r.json()["error"]["code"] == "campaign_examples_metadata"


def _pool_campaign_named(name: str, dataset: Any) -> tuple[Campaign, None, Any]:
    boss = UserFactory(username=f"{name}-boss")
    return campaign_create(dataset=dataset, name=name, created_by=boss), None, boss


def test_gold_items_take_their_label_as_answer() -> None:
    campaign, examples, boss = _pool_campaign()
    campaign_add_examples(campaign=campaign)
    client = client_for(boss)
    url = f"/api/v1/campaigns/{campaign.pk}/gold/"
    r = client.post(url, {"example_ids": [examples[0].pk, examples[1].pk]}, format="json")
    assert r.status_code == 200 and r.json()["changed"] == 2 and r.json()["gold"] == 2
    assert r.json()["gold_items"][0] == {
        "example": examples[0].pk,
        "external_id": examples[0].external_id,
        "answer": "yes",
        "answer_given": False,
    }
    assert r.json()["label_space"] == ["yes", "no"]
    r = client.post(url, {"example_ids": [examples[19].pk]}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "gold_needs_answer"
    outside = ExampleFactory(dataset=campaign.dataset)
    r = client.post(url, {"example_ids": [outside.pk]}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "gold_not_in_pool"
    r = client.post(url, {"example_ids": [examples[0].pk], "is_gold": False}, format="json")
    assert r.json()["gold"] == 1
    assert CampaignExample.objects.filter(campaign=campaign, is_gold=True).count() == 1


def test_gold_items_with_answers_given_by_the_manager() -> None:
    campaign, examples, boss = _pool_campaign()
    campaign_add_examples(campaign=campaign)
    client = client_for(boss)
    url = f"/api/v1/campaigns/{campaign.pk}/gold/"
    unlabelled, labelled = examples[19], examples[0]  # no label; label "yes"
    # An unlabelled example becomes gold with the answer given; a labelled one's answer
    # overrides its label.
    r = client.post(url, {"example_ids": [unlabelled.pk], "answer": "no"}, format="json")
    assert r.status_code == 200 and r.json()["changed"] == 1
    r = client.post(url, {"example_ids": [labelled.pk], "answer": "no"}, format="json")
    items = {g["example"]: g for g in r.json()["gold_items"]}
    assert items[unlabelled.pk]["answer"] == "no" and items[unlabelled.pk]["answer_given"]
    assert items[labelled.pk]["answer"] == "no" and items[labelled.pk]["answer_given"]
    # Marking again without an answer keeps the given one.
    r = client.post(url, {"example_ids": [unlabelled.pk, labelled.pk]}, format="json")
    assert r.status_code == 200
    assert {g["answer"] for g in r.json()["gold_items"]} == {"no"}
    # An answer outside the label space is refused, nothing written.
    r = client.post(url, {"example_ids": [examples[1].pk], "answer": "maybe"}, format="json")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "gold_answer_not_in_label_space"
    for bad in ({"answer": 3}, {"answer": "no", "is_gold": False}):
        r = client.post(url, {"example_ids": [examples[1].pk], **bad}, format="json")
        assert r.status_code == 400 and r.json()["error"]["code"] == "gold_items"
    assert not CampaignExample.objects.get(campaign=campaign, example=examples[1]).is_gold
    # Unmarking drops the answer; the example's own label is back next time.
    client.post(url, {"example_ids": [labelled.pk], "is_gold": False}, format="json")
    row = CampaignExample.objects.get(campaign=campaign, example=labelled)
    assert (row.is_gold, row.gold_answer) == (False, "")
    r = client.post(url, {"example_ids": [labelled.pk]}, format="json")
    assert {g["example"]: g["answer"] for g in r.json()["gold_items"]}[labelled.pk] == "yes"
    # Only the campaign's managers set gold.
    (ann,) = add_annotators(campaign, 1)
    r = client_for(ann).post(url, {"example_ids": [labelled.pk], "answer": "no"}, format="json")
    assert r.status_code == 403


def test_a_gold_answer_belongs_to_a_gold_item_by_constraint() -> None:
    from django.db import IntegrityError, transaction

    campaign, examples, _ = _pool_campaign()
    campaign_add_examples(campaign=campaign)
    with pytest.raises(IntegrityError), transaction.atomic():
        CampaignExample.objects.filter(campaign=campaign, example=examples[0]).update(
            gold_answer="no"
        )
    # One pool row (and so one answer) per (campaign, example).
    with pytest.raises(IntegrityError), transaction.atomic():
        CampaignExample.objects.create(
            campaign=campaign, example=examples[0], is_gold=True, gold_answer="no"
        )


# --- preview --------------------------------------------------------------------------------


def test_preview_shows_the_annotator_task_and_writes_nothing() -> None:
    campaign = text_campaign(4, instructions="Read *carefully*.")
    boss = _manager(campaign)
    (ann,) = add_annotators(campaign, 1)
    before = (Assignment.objects.count(), Annotation.objects.count(), Attempt.objects.count())
    r = client_for(boss).get(f"/api/v1/campaigns/{campaign.pk}/preview/")
    assert r.status_code == 200
    task = r.json()
    first = CampaignExample.objects.filter(campaign=campaign).order_by("rank", "id").first()
    assert task["preview"] is True and task["assignment"]["id"] is None
    assert task["example"]["id"] == first.example_id
    assert task["campaign"]["instructions_html"] == "<p>Read <em>carefully</em>.</p>"
    assert len(task["samples"]) == 4
    other = task["samples"][2]
    again = client_for(boss).get(f"/api/v1/campaigns/{campaign.pk}/preview/?example={other}")
    assert again.json()["example"]["id"] == other
    assert (
        Assignment.objects.count(),
        Annotation.objects.count(),
        Attempt.objects.count(),
    ) == before
    assert client_for(ann).get(f"/api/v1/campaigns/{campaign.pk}/preview/").status_code == 403
    r = client_for(boss).get(f"/api/v1/campaigns/{campaign.pk}/preview/?example=x")
    assert r.status_code == 400 and r.json()["error"]["code"] == "preview_example"


def test_settings_refused_by_rule_code_and_nothing_stored() -> None:
    campaign = text_campaign(2)
    boss = _manager(campaign)
    url = f"/api/v1/campaigns/{campaign.pk}/"
    for body, code in [
        ({"lease_seconds": 0}, "campaign_lease_seconds"),
        ({"feedback_arm": "sometimes"}, "campaign_arm"),
        ({"validations_required": 1, "validations_to_verify": 2}, "campaign_validation_rule"),
        ({"redundancy": 0}, "campaign_redundancy"),
    ]:
        r = client_for(boss).patch(url, body, format="json")
        assert r.status_code == 400 and r.json()["error"]["code"] == code, body
    campaign.refresh_from_db()
    assert (campaign.lease_seconds, campaign.feedback_arm, campaign.redundancy) == (
        1800,
        "shown",
        3,
    )
