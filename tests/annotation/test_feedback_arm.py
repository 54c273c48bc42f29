"""One feedback-arm rule (policy.effective_arm): the task payload, live scoring, the "me" view
and the memberships list agree for every (campaign policy x stored member arm) pair."""

from __future__ import annotations

from typing import Any

import pytest

from annotation import policy
from annotation.models import Campaign, Membership
from annotation.services.campaigns import campaign_update, membership_add
from tests.annotation.annotator_helpers import text_campaign
from tests.conftest import client_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

EXPECTED = {
    ("shown", "shown"): "shown",
    ("shown", "hidden"): "shown",
    ("hidden", "shown"): "hidden",
    ("hidden", "hidden"): "hidden",
    ("randomised", "shown"): "shown",
    ("randomised", "hidden"): "hidden",
}


def test_effective_arm_is_the_table() -> None:
    for (campaign_policy, member_arm), arm in EXPECTED.items():
        assert policy.effective_arm(campaign_policy=campaign_policy, member_arm=member_arm) == arm
    assert policy.effective_arm(campaign_policy="randomised", member_arm=None) == "shown"


def test_invitation_arms_are_balanced_and_seeded() -> None:
    arms = [
        policy.invitation_arm(seed=3, campaign_id=1, user_id=u, shown=s, hidden=h)
        for u, (s, h) in enumerate([(0, 0), (1, 0), (0, 1), (2, 1), (1, 2)])
    ]
    assert arms[1:] == ["hidden", "shown", "hidden", "shown"]
    ties = {
        policy.invitation_arm(seed=3, campaign_id=1, user_id=u, shown=0, hidden=0)
        for u in range(20)
    }
    assert ties == {"shown", "hidden"}  # a seeded coin, not always the same arm


def test_membership_add_balances_arms_whatever_the_policy_and_keeps_one_arm_per_person() -> None:
    campaign = text_campaign(2, feedback_arm=Campaign.FeedbackArm.SHOWN)
    users = [UserFactory(username=f"arm-{i}") for i in range(6)]
    arms = [membership_add(campaign=campaign, user=u, role="annotator").arm for u in users]
    assert arms.count("shown") == arms.count("hidden") == 3
    again = membership_add(campaign=campaign, user=users[0], role="validator")
    assert again.arm == arms[0]


def _people(campaign: Campaign) -> dict[str, Any]:
    """Two annotators invited through the service: the balanced draw puts one in each arm."""
    people: dict[str, Any] = {}
    for i in range(2):
        user = UserFactory(username=f"arm-person-{campaign.pk}-{i}")
        people[membership_add(campaign=campaign, user=user, role="annotator").arm] = user
    assert set(people) == {"shown", "hidden"}
    return people


@pytest.mark.parametrize(("campaign_policy", "member_arm"), sorted(EXPECTED))
def test_every_path_agrees(campaign_policy: str, member_arm: str) -> None:
    campaign = text_campaign(3, feedback_arm=Campaign.FeedbackArm.RANDOMISED)
    user = _people(campaign)[member_arm]
    # The policy may change after invitation; the stored arms stay.
    campaign_update(campaign=campaign, feedback_arm=campaign_policy)
    expected = EXPECTED[(campaign_policy, member_arm)]
    client = client_for(user)

    lease = client.post(
        f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "annotate"}, format="json"
    )
    assert lease.status_code == 200, lease.content
    task = lease.json()
    assert task["campaign"]["feedback"] == expected
    again = client.get(f"/api/v1/assignments/{task['assignment']['id']}/").json()
    assert again["campaign"]["feedback"] == expected

    score = client.post(
        "/api/v1/score/",
        {"assignment": task["assignment"]["id"], "modality": "text", "value": "is it red ?"},
        format="json",
    )
    assert score.status_code == 200, score.content
    assert score.json()["feedback"] == expected

    me = client.get(f"/api/v1/campaigns/{campaign.pk}/me/").json()
    assert me["feedback"] == expected

    manager = UserFactory(username=f"arm-manager-{campaign.pk}")
    membership_add(campaign=campaign, user=manager, role=Membership.Role.MANAGER)
    listed = client_for(manager).get(f"/api/v1/campaigns/{campaign.pk}/memberships/").json()
    assert {m["username"]: m["arm"] for m in listed}[user.username] == expected
