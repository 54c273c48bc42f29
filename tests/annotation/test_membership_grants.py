"""Who grants which role (issue 7, A2), through the real memberships API: the role x grantor
matrix, granting oneself, removal, and the operator's MANAGERS_MAY_GRANT_MANAGER switch."""

from __future__ import annotations

import pytest

from annotation.models import Membership
from tests.conftest import client_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

GRANTORS = ["staff", "manager", "annotator", "validator", "outsider", "anonymous"]
ROLES = ["manager", "annotator", "validator"]

# grantor -> role -> status when granting a role to a newcomer.
EXPECTED = {
    "staff": {"manager": 201, "annotator": 201, "validator": 201},
    "manager": {"manager": 403, "annotator": 201, "validator": 201},
    "annotator": {"manager": 403, "annotator": 403, "validator": 403},
    "validator": {"manager": 403, "annotator": 403, "validator": 403},
    "outsider": {"manager": 404, "annotator": 404, "validator": 404},
    "anonymous": {"manager": 403, "annotator": 403, "validator": 403},
}
CASES = [(g, r) for g in GRANTORS for r in ROLES]


def _grant(user, campaign, username: str, role: str):  # type: ignore[no-untyped-def]
    return client_for(user).post(
        f"/api/v1/campaigns/{campaign.id}/memberships/",
        {"username": username, "role": role},
        format="json",
    )


@pytest.mark.parametrize(("grantor", "role"), CASES, ids=[f"{g}-grants-{r}" for g, r in CASES])
def test_grant_matrix(
    request, campaign, manager, annotator, validator, outsider, staff, grantor, role
):  # type: ignore[no-untyped-def]
    newcomer = UserFactory(username="nina-newcomer")
    user = None if grantor == "anonymous" else request.getfixturevalue(grantor)
    response = _grant(user, campaign, "nina-newcomer", role)
    assert response.status_code == EXPECTED[grantor][role], response.content[:300]
    stored = Membership.objects.filter(campaign=campaign, user=newcomer, role=role).exists()
    assert stored == (response.status_code == 201)
    if response.status_code != 201:
        assert response.json()["error"]["code"]
    if grantor == "manager" and role == "manager":
        assert response.json()["error"]["code"] == "role_grant_forbidden"


@pytest.mark.parametrize("role", ROLES)
def test_a_manager_grants_nothing_to_themselves(campaign, manager, role):  # type: ignore[no-untyped-def]
    response = _grant(manager, campaign, manager.username, role)
    assert response.status_code == 403
    expected = "role_grant_forbidden" if role == "manager" else "role_grant_self"
    assert response.json()["error"]["code"] == expected
    held = set(
        Membership.objects.filter(campaign=campaign, user=manager).values_list("role", flat=True)
    )
    assert held == {"manager"}


def test_the_outsider_cannot_be_made_manager_but_staff_may(campaign, manager, outsider, staff):  # type: ignore[no-untyped-def]
    assert _grant(manager, campaign, outsider.username, "manager").status_code == 403
    assert not Membership.objects.filter(user=outsider).exists()
    assert _grant(staff, campaign, outsider.username, "manager").status_code == 201
    assert _grant(staff, campaign, staff.username, "annotator").status_code == 201


def test_the_operator_may_let_managers_grant_manager(campaign, manager, outsider, settings):  # type: ignore[no-untyped-def]
    settings.MANAGERS_MAY_GRANT_MANAGER = True
    assert _grant(manager, campaign, outsider.username, "manager").status_code == 201
    # Still nobody grants themselves anything.
    assert _grant(manager, campaign, manager.username, "annotator").status_code == 403


def _remove(user, campaign, membership):  # type: ignore[no-untyped-def]
    return client_for(user).delete(f"/api/v1/campaigns/{campaign.id}/memberships/{membership.id}/")


def test_removal_follows_the_same_rule(campaign, manager, annotator, staff):  # type: ignore[no-untyped-def]
    co = UserFactory(username="carl-comanager")
    _grant(staff, campaign, co.username, "manager")
    co_membership = Membership.objects.get(campaign=campaign, user=co)
    response = _remove(manager, campaign, co_membership)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "role_grant_forbidden"
    assert Membership.objects.filter(pk=co_membership.pk).exists()
    ann = Membership.objects.get(campaign=campaign, user=annotator)
    assert _remove(manager, campaign, ann).status_code == 204
    assert _remove(staff, campaign, co_membership).status_code == 204
