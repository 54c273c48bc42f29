"""Blind validation (docs/architecture.md "Domain", Validation): nobody who was given the original example to annotate
is offered its edits, the validation task names nothing of the original, and a manager is warned
when the team cannot supply enough validators. Runs on SQLite and on PostgreSQL (DATABASE_URL)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from annotation import policy
from annotation.models import CounterfactualEdit, Example
from annotation.policy import EditCandidate
from annotation.services.assignments import assignment_lease, assignment_skip
from annotation.services.campaigns import campaign_update, membership_add
from tests.annotation.annotator_helpers import add_annotators, annotate_body, text_campaign
from tests.conftest import client_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def lease(user: Any, campaign: Any, kind: str) -> Any:
    return client_for(user).post(
        f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": kind}, format="json"
    )


def annotate(user: Any, campaign: Any) -> dict[str, Any]:
    task = lease(user, campaign, "annotate").json()
    r = client_for(user).post(
        f"/api/v1/assignments/{task['assignment']['id']}/submit/",
        annotate_body(task, label="no", target="yes"),
        format="json",
    )
    assert r.status_code == 201, r.content
    return task


def test_policy_never_offers_an_edit_of_an_example_the_validator_saw() -> None:
    edits = [
        EditCandidate(id=1, author_id=5, validations_count=0, example_id=10),
        EditCandidate(id=2, author_id=5, validations_count=0, example_id=11),
    ]
    order = policy.validation_order(
        edits, validator_id=6, validations_required=3, seen_example_ids=[10]
    )
    assert [e.id for e in order] == [2]


def test_nobody_who_annotated_the_original_validates_its_edits() -> None:
    campaign = text_campaign(1, redundancy=3)
    author, coannotator, skipper = add_annotators(campaign, 3)
    (outsider_validator,) = add_annotators(campaign, 1, prefix="val", role="validator")
    annotate(author, campaign)
    annotate(coannotator, campaign)  # labelled the same original (and wrote an edit of it)
    held = assignment_lease(campaign=campaign, annotator=skipper, kind="annotate").assignment
    assert held is not None
    assignment_skip(assignment=held)  # saw the original, then gave it back
    assert CounterfactualEdit.objects.filter(campaign=campaign).count() == 2

    for person in (author, coannotator, skipper):
        assert lease(person, campaign, "validate").status_code == 204, person.username
        me = client_for(person).get(f"/api/v1/campaigns/{campaign.pk}/me/").json()
        assert me["validate"]["available"] == 0
    me = client_for(outsider_validator).get(f"/api/v1/campaigns/{campaign.pk}/me/").json()
    assert me["validate"]["available"] == 2
    r = lease(outsider_validator, campaign, "validate")
    assert r.status_code == 200


def test_the_validation_task_names_nothing_of_the_original() -> None:
    campaign = text_campaign(1, redundancy=1)
    (author,) = add_annotators(campaign, 1)
    (val,) = add_annotators(campaign, 1, prefix="val", role="validator")
    task = annotate(author, campaign)
    example = Example.objects.get(pk=task["example"]["id"])
    edit = CounterfactualEdit.objects.get(campaign=campaign)
    vtask = lease(val, campaign, "validate").json()
    again = client_for(val).get(f"/api/v1/assignments/{vtask['assignment']['id']}/").json()
    for body in (vtask, again):
        assert body["example"] == {"values": {"text": edit.edited_values["text"]}}
        blob = json.dumps(body)
        assert example.external_id not in blob
        assert example.values["text"] not in blob


def _warnings(manager: Any, campaign: Any) -> list[dict[str, Any]]:
    body = client_for(manager).get(f"/api/v1/campaigns/{campaign.pk}/").json()
    listed = client_for(manager).get("/api/v1/campaigns/").json()["results"]
    assert [c["warnings"] for c in listed if c["id"] == campaign.pk] == [body["warnings"]]
    return list(body["warnings"])


def test_a_manager_is_warned_when_the_team_is_too_small_to_validate() -> None:
    campaign = text_campaign(2, redundancy=2, validations_required=2, validations_to_verify=1)
    manager = UserFactory(username="small-team-manager")
    membership_add(campaign=campaign, user=manager, role="manager")
    assert _warnings(manager, campaign)[0]["details"]["short_by"] == 2  # nobody yet
    add_annotators(campaign, 3)  # 2 label each example, 1 left to validate its edits
    (warning,) = _warnings(manager, campaign)
    assert warning["code"] == "team_too_small_for_validation"
    assert warning["details"] == {
        "validations_required": 2,
        "redundancy": 2,
        "annotators": 3,
        "validator_eligible": 3,
        "short_by": 1,
    }
    (v,) = add_annotators(campaign, 1, prefix="val", role="validator")
    membership_add(campaign=campaign, user=v, role="annotator")  # one person, counted once
    assert _warnings(manager, campaign) == []
    campaign_update(campaign=campaign, validations_required=3, validations_to_verify=1)
    (warning,) = _warnings(manager, campaign)
    assert (warning["details"]["validator_eligible"], warning["details"]["short_by"]) == (4, 1)
    add_annotators(campaign, 1, prefix="val2", role="validator")
    assert _warnings(manager, campaign) == []
    campaign_update(campaign=campaign, validations_required=5, validations_to_verify=1)
    assert _warnings(manager, campaign)[0]["details"]["short_by"] == 2
    campaign_update(campaign=campaign, task_validation=False)
    assert _warnings(manager, campaign) == []


def test_validators_short_is_the_rule() -> None:
    assert (
        policy.validators_short(
            annotators=3, validator_eligible=3, redundancy=3, validations_required=3
        )
        == 3
    )
    assert (
        policy.validators_short(
            annotators=3, validator_eligible=6, redundancy=3, validations_required=3
        )
        == 0
    )
    # Fewer annotators than the redundancy: only those who exist label each example.
    assert (
        policy.validators_short(
            annotators=1, validator_eligible=3, redundancy=3, validations_required=2
        )
        == 0
    )


def test_someone_validating_an_edit_is_never_given_its_original() -> None:
    campaign = text_campaign(2, redundancy=3)
    author, other = add_annotators(campaign, 2)
    task = annotate(author, campaign)
    assert lease(other, campaign, "validate").status_code == 200  # holds the edit, blind
    r = lease(other, campaign, "annotate")
    assert r.status_code == 200
    assert r.json()["example"]["id"] != task["example"]["id"]  # the other example, not the original
    r = client_for(other).post(
        f"/api/v1/assignments/{r.json()['assignment']['id']}/submit/",
        annotate_body(r.json(), label="no", target="yes"),
        format="json",
    )
    assert r.status_code == 201
    assert lease(other, campaign, "annotate").status_code == 204


@pytest.mark.parametrize(
    "annotators,eligible,redundancy,required,says",
    [
        (
            0,
            0,
            3,
            3,
            "nobody has joined this campaign yet. With 3 annotations per example, "
            "invite at least 6 people",
        ),
        (0, 2, 3, 3, "the team has 2 validators but no annotators yet"),
        (1, 1, 3, 3, "the one annotator labels every example, so nobody is left"),
        (2, 2, 3, 3, "both annotators label every example"),
        (
            3,
            3,
            2,
            2,
            "labelled by 2 of the 3 annotators, so only 1 other person can validate "
            "its edits. Invite 1 more validator,",
        ),
        (4, 4, 3, 3, "only 1 other person can validate its edits. Invite 2 more validators,"),
    ],
)
def test_the_team_warning_reads_as_a_researcher_expects(
    annotators: int, eligible: int, redundancy: int, required: int, says: str
) -> None:
    from annotation.selectors import team_too_small_message

    short = policy.validators_short(
        annotators=annotators,
        validator_eligible=eligible,
        redundancy=redundancy,
        validations_required=required,
    )
    text = team_too_small_message(
        required=required,
        redundancy=redundancy,
        annotators=annotators,
        validator_eligible=eligible,
        short=short,
    )
    assert says in text
    assert text.startswith(f"Each edit needs {required} validator")
    assert text.endswith(f"or lower “Validators per edit” (now {required}).")
    assert "(s)" not in text and "_" not in text and "0 of the 0" not in text
