"""A campaign with work done through the real API (lease, submit, validate) and model scores
written by the scoring service, for the dashboard's API and browser tests."""

from __future__ import annotations

import random
from typing import Any

from annotation.models import Campaign, CounterfactualEdit, Membership
from annotation.services.counterfactuals import edit_scores_record
from models_bridge.models import ModelVersion
from tests.annotation.annotator_helpers import add_annotators, annotate_body, member, text_campaign
from tests.conftest import client_for


def model_attach(campaign: Campaign, name: str) -> ModelVersion:
    """A registered model (remote, never called here: its scores are recorded directly)."""
    mv = ModelVersion.objects.create(
        name=name,
        version="1",
        kind=ModelVersion.Kind.REMOTE,
        location="http://127.0.0.1:9/none",
        dataset=campaign.dataset,
        labels=["yes", "no"],
    )
    campaign.model_versions.add(mv)
    return mv


def annotate(campaign: Campaign, user: Any, label: str, target: str) -> bool:
    """One annotate task through the API; False when no task is left for `user`."""
    client = client_for(user)
    r = client.post(f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "annotate"}, format="json")
    if r.status_code != 200 or not r.json().get("assignment"):
        return False
    task = r.json()
    r = client.post(
        f"/api/v1/assignments/{task['assignment']['id']}/submit/",
        annotate_body(task, label=label, target=target),
        format="json",
    )
    assert r.status_code == 201, r.content
    return True


def validate(campaign: Campaign, validator: Any, label: str) -> bool:
    client = client_for(validator)
    r = client.post(f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "validate"}, format="json")
    if r.status_code != 200 or not r.json().get("assignment"):
        return False
    task = r.json()
    r = client.post(
        f"/api/v1/assignments/{task['assignment']['id']}/submit/",
        {"idempotency_key": f"v-{task['assignment']['id']}", "label": label, "broken": False},
        format="json",
    )
    assert r.status_code == 201, r.content
    return True


def worked_campaign(
    name: str, *, examples: int, annotators: int, tasks_each: int, seed: int = 0
) -> tuple[Campaign, Any]:
    """(campaign, manager): `annotators` people doing up to `tasks_each` tasks each, mostly
    agreeing; two models scored on about two thirds of the edits; validators vote on edits."""
    rng = random.Random(seed)
    campaign = text_campaign(
        examples,
        redundancy=3,
        gold=lambda i: i % 6 == 0,
        gold_rate=0.2,
        validations_required=1,
        validations_to_verify=1,
        name=name,
        status=Campaign.Status.ACTIVE,
    )
    manager = member(campaign, f"{name}-manager", Membership.Role.MANAGER)
    people = add_annotators(campaign, annotators, prefix=name)
    models = [
        model_attach(campaign, f"fusion-net-{name}"),
        model_attach(campaign, f"text-only-{name}"),
    ]
    for _ in range(tasks_each):
        for user in people:
            label = "no" if rng.random() < 0.8 else "yes"
            annotate(campaign, user, label, "yes" if label == "no" else "no")
    edits = list(CounterfactualEdit.objects.filter(campaign=campaign).order_by("id"))
    scores: dict[int, dict[str, Any]] = {}
    for edit in edits:
        if rng.random() < 0.33:
            continue  # still pending: the scoring worker has not got to it
        entry = {}
        for mv, flips in zip(models, (0.7, 0.3), strict=True):
            after = edit.target_label if rng.random() < flips else edit.original_label
            entry[str(mv.pk)] = {
                "original": {"predicted_label": edit.original_label},
                "edit": {"predicted_label": after},
            }
        scores[edit.pk] = entry
    edit_scores_record(scores=scores)
    validators = [member(campaign, f"{name}-val{i}", Membership.Role.VALIDATOR) for i in range(2)]
    for i in range(len(edits) // 2 if tasks_each else 0):
        target = "yes" if rng.random() < 0.75 else "no"
        validate(campaign, validators[i % 2], target)
    return campaign, manager
