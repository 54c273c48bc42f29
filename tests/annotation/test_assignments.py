"""The assignment engine through the API and its services: lease order, open leases, expiry,
late submissions, skip, drafts, quotas, gold mixing, and pinned query counts."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation import policy
from annotation.models import Annotation, Assignment, Campaign, CampaignExample
from annotation.services.assignments import (
    assignment_expire_stale,
    assignment_lease,
    assignment_skip,
)
from tests.annotation.annotator_helpers import add_annotators, annotate_body, text_campaign
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def lease(client, campaign, kind="annotate"):  # type: ignore[no-untyped-def]
    return client.post(f"/api/v1/campaigns/{campaign.id}/lease/", {"kind": kind}, format="json")


def submit(client, task, **kw):  # type: ignore[no-untyped-def]
    return client.post(
        f"/api/v1/assignments/{task['assignment']['id']}/submit/",
        annotate_body(task, **kw),
        format="json",
    )


def pool_items(campaign: Campaign) -> list[policy.PoolItem]:
    return [
        policy.PoolItem(
            id=ce.id,
            example_id=ce.example_id,
            rank=ce.rank,
            completed=ce.completed,
            in_flight=ce.in_flight,
            is_gold=ce.is_gold,
        )
        for ce in CampaignExample.objects.filter(campaign=campaign)
    ]


def expire(assignment_id: int) -> None:
    Assignment.objects.filter(pk=assignment_id).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )


def test_lease_returns_a_task_and_the_same_open_lease_again() -> None:
    campaign = text_campaign(4)
    (ann,) = add_annotators(campaign, 1)
    client = client_for(ann)
    r = lease(client, campaign)
    assert r.status_code == 200, r.content
    task = r.json()
    assert set(task) == {
        "assignment",
        "campaign",
        "example",
        "counterfactual",
        "progress",
        "draft",
        "draft_updated_at",
    }
    assert task["assignment"]["kind"] == "annotate" and task["assignment"]["status"] == "active"
    assert task["campaign"]["label_space"] == ["yes", "no"]
    assert task["campaign"]["feedback"] == "shown"
    assert task["progress"] == {"done": 0, "target": 4}
    assert task["draft"] == {} and task["draft_updated_at"] is None
    again = lease(client, campaign).json()
    assert again["assignment"]["id"] == task["assignment"]["id"]
    assert Assignment.objects.filter(annotator=ann).count() == 1
    assert (
        sum(CampaignExample.objects.filter(campaign=campaign).values_list("in_flight", flat=True))
        == 1
    )


def test_lease_order_in_sql_is_the_policy_order() -> None:
    campaign = text_campaign(12, redundancy=3)
    items = list(CampaignExample.objects.filter(campaign=campaign).order_by("id"))
    # Some partly done examples, some full ones.
    for ce, completed in zip(items, [0, 2, 3, 1, 0, 3, 0, 2, 0, 0, 1, 0], strict=True):
        ce.completed = completed
        ce.save(update_fields=["completed"])
    (ann,) = add_annotators(campaign, 1)
    expected = [i.example_id for i in policy.order_pool(pool_items(campaign), redundancy=3)]
    got = []
    for _ in range(len(expected) + 1):
        result = assignment_lease(campaign=campaign, annotator=ann, kind="annotate")
        if result.assignment is None:
            break
        got.append(result.assignment.example_id)
        assignment_skip(assignment=result.assignment)  # frees the slot; never offered to ann again
    assert got == expected
    assert len(expected) == 10  # the two full ones never come


def test_gold_checks_are_mixed_in_as_the_policy_says() -> None:
    campaign = text_campaign(30, redundancy=1, gold_rate=0.25, seed=5, gold=lambda i: i % 3 == 0)
    items = list(CampaignExample.objects.filter(campaign=campaign).order_by("example_id"))
    (ann,) = add_annotators(campaign, 1)
    pool = pool_items(campaign)
    held: list[int] = []
    expected = []
    for n in range(20):
        want = policy.want_gold(
            gold_rate=0.25,
            seed=5,
            secret=campaign.gold_secret,
            annotator_id=ann.pk,
            tasks_so_far=n,
        )
        nxt = policy.order_pool(pool, redundancy=1, held_example_ids=held, want_gold=want)[0]
        expected.append(nxt.example_id)
        held.append(nxt.example_id)
    got = []
    for _ in range(20):
        a = assignment_lease(campaign=campaign, annotator=ann, kind="annotate").assignment
        assert a is not None
        got.append(a.example_id)
        assignment_skip(assignment=a)
    assert got == expected
    gold_ids = {ce.example_id for ce in items[::3]}
    assert 3 <= sum(e in gold_ids for e in got) <= 7  # 20 x 0.25 = 5, within the policy's bound


def test_gold_is_never_revealed_in_the_task() -> None:
    campaign = text_campaign(2, redundancy=1, gold_rate=1.0, gold=lambda i: True)
    (ann,) = add_annotators(campaign, 1)
    client = client_for(ann)
    task = lease(client, campaign).json()
    blob = json.dumps(task)
    assert "gold" not in blob
    assignment = Assignment.objects.get(pk=task["assignment"]["id"])
    assert assignment.is_gold
    # The example's own label is nowhere in the task (the text contains neither label word).
    assert '"label": "' not in blob
    r = submit(client, task)
    assert r.status_code == 201
    assert "gold" not in json.dumps(r.json())
    assert Annotation.objects.get().is_gold


def test_never_an_example_this_annotator_already_did_and_204_when_done() -> None:
    campaign = text_campaign(2, redundancy=3)
    (ann,) = add_annotators(campaign, 1)
    client = client_for(ann)
    seen = []
    for _ in range(2):
        task = lease(client, campaign).json()
        seen.append(task["example"]["id"])
        assert submit(client, task).status_code == 201
    assert len(set(seen)) == 2
    r = lease(client, campaign)
    assert r.status_code == 204 and r.content == b""


def test_examples_with_all_slots_taken_are_not_leased() -> None:
    campaign = text_campaign(1, redundancy=1)
    a, b = add_annotators(campaign, 2)
    assert lease(client_for(a), campaign).status_code == 200
    assert lease(client_for(b), campaign).status_code == 204


def test_an_expired_lease_returns_the_example_to_the_pool() -> None:
    campaign = text_campaign(1, redundancy=1)
    a, b = add_annotators(campaign, 2)
    task_a = lease(client_for(a), campaign).json()
    expire(task_a["assignment"]["id"])
    task_b = lease(client_for(b), campaign).json()
    assert task_b["example"]["id"] == task_a["example"]["id"]
    assert Assignment.objects.get(pk=task_a["assignment"]["id"]).status == "expired"
    ce = CampaignExample.objects.get(campaign=campaign)
    assert (ce.completed, ce.in_flight) == (0, 1)


def test_own_stale_lease_not_yet_swept_is_renewed() -> None:
    campaign = text_campaign(2, redundancy=1)
    (a,) = add_annotators(campaign, 1)
    client = client_for(a)
    task = lease(client, campaign).json()
    expire(task["assignment"]["id"])
    again = lease(client, campaign).json()
    assert again["assignment"]["id"] == task["assignment"]["id"]
    assert Assignment.objects.get(pk=task["assignment"]["id"]).expires_at > timezone.now()


def test_periodic_sweep_expires_and_frees_slots() -> None:
    campaign = text_campaign(3, redundancy=2)
    users = add_annotators(campaign, 3)
    ids = [
        assignment_lease(campaign=campaign, annotator=u, kind="annotate").assignment.pk
        for u in users
    ]  # type: ignore[union-attr]
    Assignment.objects.filter(pk__in=ids[:2]).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    assert assignment_expire_stale() == 2
    assert assignment_expire_stale() == 0
    assert (
        sum(CampaignExample.objects.filter(campaign=campaign).values_list("in_flight", flat=True))
        == 1
    )


def test_late_submission_is_accepted_while_the_example_has_room() -> None:
    campaign = text_campaign(1, redundancy=2)
    (a,) = add_annotators(campaign, 1)
    client = client_for(a)
    task = lease(client, campaign).json()
    expire(task["assignment"]["id"])
    assert assignment_expire_stale() == 1
    r = submit(client, task)
    assert r.status_code == 201, r.content
    assert r.json()["annotation"]["late"] is True
    ce = CampaignExample.objects.get(campaign=campaign)
    assert (ce.completed, ce.in_flight) == (1, 0)


def test_late_submission_without_room_is_refused_and_the_draft_kept() -> None:
    campaign = text_campaign(1, redundancy=1)
    a, b = add_annotators(campaign, 2)
    ca, cb = client_for(a), client_for(b)
    task_a = lease(ca, campaign).json()
    expire(task_a["assignment"]["id"])
    task_b = lease(cb, campaign).json()
    assert submit(cb, task_b).status_code == 201
    # The expired lease still takes drafts (work is never lost)...
    r = ca.put(
        f"/api/v1/assignments/{task_a['assignment']['id']}/draft/",
        {"draft": {"label": "no"}},
        format="json",
    )
    assert r.status_code == 200, r.content
    # ...but the example is full now.
    r = submit(ca, task_a)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "lease_expired_no_room"
    stored = Assignment.objects.get(pk=task_a["assignment"]["id"])
    assert stored.status == "expired" and stored.draft == {"label": "no"}
    assert Annotation.objects.count() == 1
    ce = CampaignExample.objects.get(campaign=campaign)
    assert (ce.completed, ce.in_flight) == (1, 0)


def test_skip_frees_the_slot_for_others_but_never_offers_it_again() -> None:
    campaign = text_campaign(1, redundancy=1)
    a, b = add_annotators(campaign, 2)
    ca = client_for(a)
    task = lease(ca, campaign).json()
    r = ca.post(
        f"/api/v1/assignments/{task['assignment']['id']}/skip/",
        {"reason": "unreadable"},
        format="json",
    )
    assert r.status_code == 200 and r.json() == {"status": "skipped"}
    assert Assignment.objects.get(pk=task["assignment"]["id"]).skip_reason == "unreadable"
    assert lease(ca, campaign).status_code == 204
    task_b = lease(client_for(b), campaign).json()
    assert task_b["example"]["id"] == task["example"]["id"]
    # A skipped task can be neither submitted nor drafted.
    r = submit(ca, task)
    assert r.status_code == 409 and r.json()["error"]["code"] == "assignment_skipped"
    r = ca.put(
        f"/api/v1/assignments/{task['assignment']['id']}/draft/", {"draft": {}}, format="json"
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "assignment_skipped"


def test_drafts_save_restore_extend_the_lease_and_stop_after_submit() -> None:
    campaign = text_campaign(1, redundancy=1, lease_seconds=60)
    (a,) = add_annotators(campaign, 1)
    client = client_for(a)
    task = lease(client, campaign).json()
    url = f"/api/v1/assignments/{task['assignment']['id']}/draft/"
    Assignment.objects.filter(pk=task["assignment"]["id"]).update(
        expires_at=timezone.now() + timedelta(seconds=5)
    )
    r = client.put(url, {"draft": {"label": "no", "text": "half way"}}, format="json")
    assert r.status_code == 200 and "saved_at" in r.json()
    assert Assignment.objects.get(
        pk=task["assignment"]["id"]
    ).expires_at > timezone.now() + timedelta(seconds=30)
    restored = client.get(f"/api/v1/assignments/{task['assignment']['id']}/").json()
    assert restored["draft"] == {"label": "no", "text": "half way"}
    assert restored["draft_updated_at"] is not None
    r = client.put(url, {"draft": ["not", "an", "object"]}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "draft_invalid"
    r = client.put(url, {"draft": {"blob": "x" * (2 * 1024 * 1024)}}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "draft_too_large"
    assert submit(client, task).status_code == 201
    r = client.put(url, {"draft": {"label": "yes"}}, format="json")
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_submitted"


def test_task_is_for_the_holder_only() -> None:
    campaign = text_campaign(2)
    a, b = add_annotators(campaign, 2)
    task = lease(client_for(a), campaign).json()
    assert client_for(a).get(f"/api/v1/assignments/{task['assignment']['id']}/").status_code == 200
    for path in ("", "draft/", "submit/", "skip/"):
        url = f"/api/v1/assignments/{task['assignment']['id']}/{path}"
        r = client_for(b).get(url) if not path else client_for(b).post(url, {}, format="json")
        if path == "draft/":
            r = client_for(b).put(url, {"draft": {}}, format="json")
        assert r.status_code == 404, (path, r.status_code)


def test_lease_needs_an_active_campaign_and_a_known_kind() -> None:
    campaign = text_campaign(2, status=Campaign.Status.PAUSED)
    (a,) = add_annotators(campaign, 1)
    r = lease(client_for(a), campaign)
    assert r.status_code == 409 and r.json()["error"]["code"] == "campaign_not_active"
    r = lease(client_for(a), campaign, kind="review")
    assert r.status_code == 400 and r.json()["error"]["code"] == "kind_unknown"


def test_balanced_quota_assigns_the_most_underfilled_cell() -> None:
    campaign = text_campaign(
        12,
        redundancy=1,
        labels=["yes", "no", "maybe"],
        balance_counterfactuals=True,
        editable_modalities=["text"],
    )
    users = add_annotators(campaign, 12)
    cells = []
    for u in users:
        a = assignment_lease(campaign=campaign, annotator=u, kind="annotate").assignment
        assert a is not None
        assert a.cf_modality == "text"
        assert a.cf_target_label != a.example.label  # never the example's own label
        cells.append(a.cf_target_label)
    counts = {label: cells.count(label) for label in ("yes", "no", "maybe")}
    assert max(counts.values()) - min(counts.values()) <= 1, counts
    task = (
        client_for(users[0])
        .get(f"/api/v1/assignments/{Assignment.objects.filter(annotator=users[0]).get().pk}/")
        .json()
    )
    assert task["counterfactual"]["modality"] == "text" and task["counterfactual"][
        "target_label"
    ] in ("yes", "no", "maybe")


def test_me_reports_progress_and_open_assignments() -> None:
    campaign = text_campaign(3)
    (a,) = add_annotators(campaign, 1)
    client = client_for(a)
    task = lease(client, campaign).json()
    me = client.get(f"/api/v1/campaigns/{campaign.id}/me/").json()
    assert me == {
        "roles": ["annotator"],
        "feedback": "shown",
        "annotate": {"done": 0, "target": 3, "open_assignment": task["assignment"]["id"]},
        "validate": {"done": 0, "available": 0, "open_assignment": None},
    }
    submit(client, task)
    me = client.get(f"/api/v1/campaigns/{campaign.id}/me/").json()
    assert me["annotate"] == {"done": 1, "target": 3, "open_assignment": None}


def test_hidden_arm_is_reported_in_the_task() -> None:
    campaign = text_campaign(2, feedback_arm=Campaign.FeedbackArm.HIDDEN)
    (a,) = add_annotators(campaign, 1)
    assert lease(client_for(a), campaign).json()["campaign"]["feedback"] == "hidden"


def test_query_counts_are_pinned(exact_queries) -> None:  # type: ignore[no-untyped-def]
    """Pinned exactly per call (the API client is force-authenticated, so no token lookup).
    PostgreSQL runs the lease's pick and the submit as single statements, so those two calls
    pin a second, smaller figure there."""
    campaign = text_campaign(50, redundancy=3)
    a, b = add_annotators(campaign, 2)
    client = client_for(a)
    # (one of them the annotator's task cap: their own or the campaign's, selectors_people)
    with exact_queries(11, postgres=10):
        task = lease(client, campaign).json()  # a new lease
    with exact_queries(4):
        assert lease(client, campaign).json()["assignment"]["id"] == task["assignment"]["id"]
    with exact_queries(3):
        assert client.get(f"/api/v1/assignments/{task['assignment']['id']}/").status_code == 200
    with exact_queries(7, postgres=4):
        assert submit(client, task).status_code == 201
    other = client_for(b)
    other_task = lease(other, campaign).json()
    with exact_queries(2):
        url = f"/api/v1/assignments/{other_task['assignment']['id']}/draft/"
        assert other.put(url, {"draft": {}}, format="json").status_code == 200
    with exact_queries(6):
        assert client.get(f"/api/v1/campaigns/{campaign.id}/me/").status_code == 200
    # b was given the edit's original (partly done examples come first), so validation blindness
    # keeps it from b; a validator who never saw it validates.
    validator = client_for(add_annotators(campaign, 1, prefix="val", role="validator")[0])
    with exact_queries(11):
        vtask = lease(validator, campaign, kind="validate")  # the edit submitted above
        assert vtask.status_code == 200
    with exact_queries(5):
        url = f"/api/v1/assignments/{vtask.json()['assignment']['id']}/"
        assert validator.get(url).status_code == 200
