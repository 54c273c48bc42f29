"""Role x endpoint matrix (docs/architecture.md "Conventions") for the annotator API and the dataset/campaign API.

Personas: the campaign's manager, two annotators, a validator, an outsider (signed in, no
membership) and an anonymous client. The open assignment belongs to `annotator`. Objects a
caller may not know about answer 404 (ids do not leak); members lacking a role get 403;
anonymous callers get 403 (session auth is the first authenticator, so no 401 challenge)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from annotation.models import Assignment
from annotation.services.assignments import assignment_lease
from tests.annotation.annotator_helpers import annotate_body
from tests.conftest import client_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PERSONAS = ["manager", "annotator", "annotator2", "validator", "outsider", "anonymous"]


class World:
    def __init__(
        self,
        campaign: Any,
        dataset: Any,
        assignment: Assignment,
        task: dict[str, Any],
        membership_id: int,
    ) -> None:
        self.campaign = campaign
        self.dataset = dataset
        self.assignment = assignment
        self.task = task
        self.membership_id = membership_id


Call = Callable[[Any, World], Any]


def _task_of(world: World) -> dict[str, Any]:
    return world.task


ENDPOINTS: dict[str, tuple[Call, dict[str, int]]] = {
    # --- annotator API ---
    "lease annotate": (
        lambda c, w: c.post(
            f"/api/v1/campaigns/{w.campaign.id}/lease/", {"kind": "annotate"}, format="json"
        ),
        {
            "manager": 403,
            "annotator": 200,
            "annotator2": 200,
            "validator": 403,
            "outsider": 404,
            "anonymous": 403,
        },
    ),
    "lease validate": (
        lambda c, w: c.post(
            f"/api/v1/campaigns/{w.campaign.id}/lease/", {"kind": "validate"}, format="json"
        ),
        {
            "manager": 403,
            "annotator": 204,
            "annotator2": 204,
            "validator": 204,
            "outsider": 404,
            "anonymous": 403,
        },
    ),
    "my progress": (
        lambda c, w: c.get(f"/api/v1/campaigns/{w.campaign.id}/me/"),
        {
            "manager": 200,
            "annotator": 200,
            "annotator2": 200,
            "validator": 200,
            "outsider": 404,
            "anonymous": 403,
        },
    ),
    "task": (
        lambda c, w: c.get(f"/api/v1/assignments/{w.assignment.id}/"),
        {
            "manager": 404,
            "annotator": 200,
            "annotator2": 404,
            "validator": 404,
            "outsider": 404,
            "anonymous": 403,
        },
    ),
    "draft": (
        lambda c, w: c.put(
            f"/api/v1/assignments/{w.assignment.id}/draft/", {"draft": {"a": 1}}, format="json"
        ),
        {
            "manager": 404,
            "annotator": 200,
            "annotator2": 404,
            "validator": 404,
            "outsider": 404,
            "anonymous": 403,
        },
    ),
    "submit": (
        lambda c, w: c.post(
            f"/api/v1/assignments/{w.assignment.id}/submit/",
            annotate_body(_task_of(w)),
            format="json",
        ),
        {
            "manager": 404,
            "annotator": 201,
            "annotator2": 404,
            "validator": 404,
            "outsider": 404,
            "anonymous": 403,
        },
    ),
    "skip": (
        lambda c, w: c.post(
            f"/api/v1/assignments/{w.assignment.id}/skip/", {"reason": "x"}, format="json"
        ),
        {
            "manager": 404,
            "annotator": 200,
            "annotator2": 404,
            "validator": 404,
            "outsider": 404,
            "anonymous": 403,
        },
    ),
    "whoami": (
        lambda c, w: c.get("/api/v1/whoami/"),
        {
            "manager": 200,
            "annotator": 200,
            "annotator2": 200,
            "validator": 200,
            "outsider": 200,
            "anonymous": 403,
        },
    ),
    # --- datasets ---
    "dataset list": (
        lambda c, w: c.get("/api/v1/datasets/"),
        {
            "manager": 200,
            "annotator": 200,
            "annotator2": 200,
            "validator": 200,
            "outsider": 200,
            "anonymous": 403,
        },
    ),
    "dataset detail": (
        lambda c, w: c.get(f"/api/v1/datasets/{w.dataset.id}/"),
        {
            "manager": 200,
            "annotator": 404,
            "annotator2": 404,
            "validator": 404,
            "outsider": 404,
            "anonymous": 403,
        },
    ),
    "dataset examples": (
        lambda c, w: c.get(f"/api/v1/datasets/{w.dataset.id}/examples/"),
        {
            "manager": 200,
            "annotator": 404,
            "annotator2": 404,
            "validator": 404,
            "outsider": 404,
            "anonymous": 403,
        },
    ),
    "dataset create": (
        lambda c, w: c.post(
            "/api/v1/datasets/",
            {
                "name": "new-ds",
                "modalities": [{"name": "text", "kind": "text"}],
                "label_space": ["a", "b"],
            },
            format="json",
        ),
        {
            "manager": 201,
            "annotator": 403,
            "annotator2": 403,
            "validator": 403,
            "outsider": 403,
            "anonymous": 403,
        },
    ),
    # --- campaigns ---
    "campaign list": (
        lambda c, w: c.get("/api/v1/campaigns/"),
        {
            "manager": 200,
            "annotator": 200,
            "annotator2": 200,
            "validator": 200,
            "outsider": 200,
            "anonymous": 403,
        },
    ),
    "campaign detail": (
        lambda c, w: c.get(f"/api/v1/campaigns/{w.campaign.id}/"),
        {
            "manager": 200,
            "annotator": 200,
            "annotator2": 200,
            "validator": 200,
            "outsider": 404,
            "anonymous": 403,
        },
    ),
    "campaign update": (
        lambda c, w: c.patch(
            f"/api/v1/campaigns/{w.campaign.id}/", {"instructions": "be careful"}, format="json"
        ),
        {
            "manager": 200,
            "annotator": 403,
            "annotator2": 403,
            "validator": 403,
            "outsider": 404,
            "anonymous": 403,
        },
    ),
    "campaign create": (
        lambda c, w: c.post(
            "/api/v1/campaigns/", {"name": "new-campaign", "dataset": w.dataset.id}, format="json"
        ),
        {
            "manager": 201,
            "annotator": 403,
            "annotator2": 403,
            "validator": 403,
            "outsider": 403,
            "anonymous": 403,
        },
    ),
    "campaign add examples": (
        lambda c, w: c.post(f"/api/v1/campaigns/{w.campaign.id}/examples/", {}, format="json"),
        {
            "manager": 201,
            "annotator": 403,
            "annotator2": 403,
            "validator": 403,
            "outsider": 404,
            "anonymous": 403,
        },
    ),
    "memberships list": (
        lambda c, w: c.get(f"/api/v1/campaigns/{w.campaign.id}/memberships/"),
        {
            "manager": 200,
            "annotator": 403,
            "annotator2": 403,
            "validator": 403,
            "outsider": 404,
            "anonymous": 403,
        },
    ),
    "membership add": (
        lambda c, w: c.post(
            f"/api/v1/campaigns/{w.campaign.id}/memberships/",
            {"username": "nina-newcomer", "role": "annotator"},
            format="json",
        ),
        {
            "manager": 201,
            "annotator": 403,
            "annotator2": 403,
            "validator": 403,
            "outsider": 404,
            "anonymous": 403,
        },
    ),
    "membership remove": (
        lambda c, w: c.delete(f"/api/v1/campaigns/{w.campaign.id}/memberships/{w.membership_id}/"),
        {
            "manager": 204,
            "annotator": 403,
            "annotator2": 403,
            "validator": 403,
            "outsider": 404,
            "anonymous": 403,
        },
    ),
    # --- rounds (docs/rounds.md); opening against no model: past the access gate, a 400 ---
    "rounds list": (
        lambda c, w: c.get(f"/api/v1/campaigns/{w.campaign.id}/rounds/"),
        {
            "manager": 200,
            "annotator": 403,
            "annotator2": 403,
            "validator": 403,
            "outsider": 404,
            "anonymous": 403,
        },
    ),
    "round open": (
        lambda c, w: c.post(
            f"/api/v1/campaigns/{w.campaign.id}/rounds/", {"target": 10**9}, format="json"
        ),
        {
            "manager": 400,
            "annotator": 403,
            "annotator2": 403,
            "validator": 403,
            "outsider": 404,
            "anonymous": 403,
        },
    ),
}

CASES = [(name, persona) for name in ENDPOINTS for persona in PERSONAS]


@pytest.mark.parametrize(("endpoint", "persona"), CASES, ids=[f"{e}-{p}" for e, p in CASES])
def test_matrix(
    request,
    campaign,
    dataset,
    examples,
    manager,
    annotator,
    annotator2,
    validator,
    outsider,
    endpoint,
    persona,
) -> None:  # type: ignore[no-untyped-def]
    UserFactory(username="nina-newcomer")
    lease = assignment_lease(campaign=campaign, annotator=annotator, kind="annotate").assignment
    assert lease is not None
    task = client_for(annotator).get(f"/api/v1/assignments/{lease.id}/").json()
    membership_id = annotator2.memberships.get(campaign=campaign).id
    world = World(campaign, dataset, lease, task, membership_id)
    user = None if persona == "anonymous" else request.getfixturevalue(persona)
    call, expected = ENDPOINTS[endpoint]
    response = call(client_for(user), world)
    assert response.status_code == expected[persona], (
        endpoint,
        persona,
        response.status_code,
        getattr(response, "content", b"")[:300],
    )
    if response.status_code in (403, 404) and response.content:
        assert "error" in response.json() and response.json()["error"]["code"]
