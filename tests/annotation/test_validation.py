"""Blind validation: who gets which edit, what a validator sees, and the verdict rule
(verified as soon as agreeing ≥ validations_to_verify; disputed once validations_required
are in without that; broken counts as disagreement)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from annotation.models import Assignment, Campaign, CounterfactualEdit, Validation
from annotation.services.assignments import assignment_expire_stale
from annotation.services.validations import edit_status
from tests.annotation.annotator_helpers import add_annotators, annotate_body, text_campaign
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def lease(client, campaign, kind):  # type: ignore[no-untyped-def]
    return client.post(f"/api/v1/campaigns/{campaign.id}/lease/", {"kind": kind}, format="json")


def make_edit(
    campaign: Campaign, author: Any, *, target: str = "yes"
) -> tuple[dict[str, Any], CounterfactualEdit]:
    client = client_for(author)
    task = lease(client, campaign, "annotate").json()
    label = "no" if target == "yes" else "yes"
    r = client.post(
        f"/api/v1/assignments/{task['assignment']['id']}/submit/",
        annotate_body(task, label=label, target=target),
        format="json",
    )
    assert r.status_code == 201, r.content
    return task, CounterfactualEdit.objects.get(pk=r.json()["edit"]["id"])


def validate(
    user: Any, campaign: Campaign, *, label: str = "", broken: bool = False, key: str | None = None
) -> Any:
    client = client_for(user)
    r = lease(client, campaign, "validate")
    assert r.status_code == 200, r.content
    task = r.json()
    return client.post(
        f"/api/v1/assignments/{task['assignment']['id']}/submit/",
        {
            "idempotency_key": key or str(uuid.uuid4()),
            "label": label,
            "broken": broken,
            "comment": "",
        },
        format="json",
    )


@pytest.mark.parametrize(
    ("count", "agree", "expected"),
    [
        (0, 0, "pending"),
        (1, 1, "pending"),
        (2, 2, "verified"),
        (2, 1, "pending"),
        (3, 1, "disputed"),
        (3, 2, "verified"),
        (3, 3, "verified"),
    ],
)
def test_verdict_rule(count: int, agree: int, expected: str) -> None:
    assert (
        edit_status(validations_count=count, validations_agree=agree, required=3, to_verify=2)
        == expected
    )


def test_the_validator_sees_the_edit_alone() -> None:
    campaign = text_campaign(2)
    author, val = add_annotators(campaign, 2)
    task, edit = make_edit(campaign, author)
    r = lease(client_for(val), campaign, "validate")
    assert r.status_code == 200
    vtask = r.json()
    assert vtask["assignment"]["kind"] == "validate"
    assert vtask["example"]["values"] == {"text": edit.edited_values["text"]}
    assert vtask["counterfactual"] == {"modality": "", "target_label": ""}
    blob = json.dumps(vtask)
    assert task["example"]["values"]["text"] not in blob  # no original
    assert author.username not in blob and '"author' not in blob
    assert vtask["progress"] == {"done": 0, "target": 1}


def test_never_to_the_author_and_never_twice_to_one_validator() -> None:
    campaign = text_campaign(2)
    author, val = add_annotators(campaign, 2)
    make_edit(campaign, author)
    assert lease(client_for(author), campaign, "validate").status_code == 204
    assert validate(val, campaign, label="yes").status_code == 201
    assert lease(client_for(val), campaign, "validate").status_code == 204


def test_validator_role_may_validate_but_not_annotate(validator, campaign) -> None:  # type: ignore[no-untyped-def]
    r = lease(client_for(validator), campaign, "annotate")
    assert r.status_code == 403 and r.json()["error"]["code"] == "role_required"
    assert lease(client_for(validator), campaign, "validate").status_code == 204


def test_verified_after_enough_agreement_and_validations_stop_at_required() -> None:
    campaign = text_campaign(1, validations_required=3, validations_to_verify=2)
    author, *vals = add_annotators(campaign, 5)
    _, edit = make_edit(campaign, author, target="yes")
    assert validate(vals[0], campaign, label="yes").status_code == 201
    edit.refresh_from_db()
    assert (edit.validations_count, edit.validations_agree, edit.status) == (1, 1, "pending")
    assert validate(vals[1], campaign, label="yes").status_code == 201
    edit.refresh_from_db()
    assert (edit.validations_count, edit.validations_agree, edit.status) == (2, 2, "verified")
    assert validate(vals[2], campaign, label="no").status_code == 201
    edit.refresh_from_db()
    assert (edit.validations_count, edit.validations_agree, edit.status) == (3, 2, "verified")
    assert lease(client_for(vals[3]), campaign, "validate").status_code == 204  # has its 3


def test_disputed_when_required_validations_disagree_and_broken_counts_against() -> None:
    campaign = text_campaign(1, validations_required=3, validations_to_verify=2)
    author, *vals = add_annotators(campaign, 4)
    _, edit = make_edit(campaign, author, target="yes")
    assert validate(vals[0], campaign, label="yes").status_code == 201
    assert validate(vals[1], campaign, broken=True).status_code == 201
    assert validate(vals[2], campaign, label="yes", broken=True).status_code == 201
    edit.refresh_from_db()
    assert (edit.validations_count, edit.validations_agree, edit.status) == (3, 1, "disputed")


def test_open_validation_leases_hold_slots() -> None:
    campaign = text_campaign(1, validations_required=2, validations_to_verify=1)
    author, *vals = add_annotators(campaign, 4)
    make_edit(campaign, author)
    assert lease(client_for(vals[0]), campaign, "validate").status_code == 200
    assert lease(client_for(vals[1]), campaign, "validate").status_code == 200
    assert lease(client_for(vals[2]), campaign, "validate").status_code == 204
    # One lease expires: its slot returns.
    Assignment.objects.filter(annotator=vals[0], kind="validate").update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert lease(client_for(vals[2]), campaign, "validate").status_code == 200


def test_late_validation_is_refused_once_the_edit_is_full_and_the_draft_kept() -> None:
    campaign = text_campaign(1, validations_required=1, validations_to_verify=1)
    author, v1, v2 = add_annotators(campaign, 3)
    make_edit(campaign, author)
    c1 = client_for(v1)
    t1 = lease(c1, campaign, "validate").json()
    c1.put(
        f"/api/v1/assignments/{t1['assignment']['id']}/draft/",
        {"draft": {"label": "yes"}},
        format="json",
    )
    Assignment.objects.filter(pk=t1["assignment"]["id"]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert assignment_expire_stale() == 1
    assert validate(v2, campaign, label="yes").status_code == 201
    r = c1.post(
        f"/api/v1/assignments/{t1['assignment']['id']}/submit/",
        {"idempotency_key": "k1", "label": "yes"},
        format="json",
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "lease_expired_no_room"
    assert Assignment.objects.get(pk=t1["assignment"]["id"]).draft == {"label": "yes"}
    assert Validation.objects.count() == 1


def test_label_required_unless_broken_and_idempotent_retry() -> None:
    campaign = text_campaign(1)
    author, val = add_annotators(campaign, 2)
    make_edit(campaign, author)
    client = client_for(val)
    task = lease(client, campaign, "validate").json()
    url = f"/api/v1/assignments/{task['assignment']['id']}/submit/"
    r = client.post(url, {"idempotency_key": "v-1", "label": ""}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "validation_label_required"
    r = client.post(url, {"idempotency_key": "v-1", "label": "purple"}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "label_not_in_label_space"
    first = client.post(url, {"idempotency_key": "v-1", "label": "no"}, format="json")
    again = client.post(url, {"idempotency_key": "v-1", "label": "no"}, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert (
        first.json()
        == again.json()
        == {
            "validation": {
                "id": Validation.objects.get().pk,
                "label": "no",
                "broken": False,
                "comment": "",
            }
        }
    )
    other = client.post(url, {"idempotency_key": "v-2", "label": "no"}, format="json")
    assert other.status_code == 409 and other.json()["error"]["code"] == "already_submitted"


def test_validation_off_means_nothing_to_validate() -> None:
    campaign = text_campaign(1, task_validation=False)
    author, val = add_annotators(campaign, 2)
    make_edit(campaign, author)
    assert lease(client_for(val), campaign, "validate").status_code == 204


def test_validation_order_finishes_edits_first() -> None:
    campaign = text_campaign(3, redundancy=1, validations_required=3, validations_to_verify=3)
    authors = add_annotators(campaign, 3, prefix="author")
    vals = add_annotators(campaign, 3, prefix="val")
    edits = [make_edit(campaign, a)[1] for a in authors]
    assert validate(vals[0], campaign, label="yes").status_code == 201  # takes the oldest
    first = Validation.objects.get().edit_id
    assert first == edits[0].pk
    nxt = lease(client_for(vals[1]), campaign, "validate").json()
    assert Assignment.objects.get(pk=nxt["assignment"]["id"]).edit_id == first  # closest to done


def test_the_same_key_with_another_body_is_refused_and_nothing_changes() -> None:
    campaign = text_campaign(1)
    author, val = add_annotators(campaign, 2)
    make_edit(campaign, author)
    client = client_for(val)
    task = lease(client, campaign, "validate").json()
    url = f"/api/v1/assignments/{task['assignment']['id']}/submit/"
    first = client.post(url, {"idempotency_key": "v-1", "label": "no"}, format="json")
    assert first.status_code == 201, first.content
    for body in (
        {"idempotency_key": "v-1", "label": "yes"},
        {"idempotency_key": "v-1", "label": "no", "comment": "changed my mind"},
        {"idempotency_key": "v-1", "label": "no", "broken": True},
    ):
        r = client.post(url, body, format="json")
        assert r.status_code == 409, (body, r.content)
        assert r.json()["error"]["code"] == "idempotency_key_reused"
    again = client.post(url, {"idempotency_key": "v-1", "label": "no"}, format="json")
    assert (again.status_code, again.json()) == (200, first.json())
    v = Validation.objects.get()
    assert (v.label, v.comment, v.broken) == ("no", "", False)
