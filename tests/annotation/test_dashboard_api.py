"""The dashboard data API (annotation/api/dashboard.py, annotation/selectors_dashboard.py):
figures reached through the real lease / submit / validate / score services, exact query
counts whatever the size, CSV per chart, managers only."""

from __future__ import annotations

import csv
import io

import pytest
from django.test import override_settings

from annotation.models import CounterfactualEdit, Membership
from annotation.services.counterfactuals import edit_scores_record
from models_bridge.models import ModelVersion
from tests.annotation.annotator_helpers import add_annotators, annotate_body, member, text_campaign
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def _annotate(campaign, user, label, target):  # type: ignore[no-untyped-def]
    client = client_for(user)
    task = client.post(
        f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "annotate"}, format="json"
    ).json()
    r = client.post(
        f"/api/v1/assignments/{task['assignment']['id']}/submit/",
        annotate_body(task, label=label, target=target),
        format="json",
    )
    assert r.status_code == 201, r.content
    return task


def _validate(campaign, validator, label):  # type: ignore[no-untyped-def]
    client = client_for(validator)
    task = client.post(
        f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "validate"}, format="json"
    ).json()
    r = client.post(
        f"/api/v1/assignments/{task['assignment']['id']}/submit/",
        {"idempotency_key": f"v-{task['assignment']['id']}", "label": label, "broken": False},
        format="json",
    )
    assert r.status_code == 201, r.content
    return task


def _model(campaign, name):  # type: ignore[no-untyped-def]
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


def _world(n_examples=3, n_annotators=3):  # type: ignore[no-untyped-def]
    campaign = text_campaign(
        n_examples, redundancy=3, validations_required=1, validations_to_verify=1
    )
    manager = member(campaign, "mia-manager", Membership.Role.MANAGER)
    annotators = add_annotators(campaign, n_annotators)
    return campaign, manager, annotators


def test_dashboard_figures_from_real_work():
    campaign, manager, (a, b, c) = _world(n_examples=1)
    m1, m2 = _model(campaign, "alpha-model"), _model(campaign, "beta-model")
    validator = member(campaign, "val-1", Membership.Role.VALIDATOR)
    # One example, three annotators: a and b say "no", c says "yes".
    _annotate(campaign, a, "no", "yes")
    _annotate(campaign, b, "no", "yes")
    _annotate(campaign, c, "yes", "no")
    edits = {e.author_id: e for e in CounterfactualEdit.objects.filter(campaign=campaign)}
    # m1 flips on a's edit to the target (not fooled); m2 stays on "no" (fooled). b's edit:
    # only m1 scored so far.
    edit_scores_record(
        scores={
            edits[a.pk].pk: {
                str(m1.pk): {
                    "original": {"predicted_label": "no"},
                    "edit": {"predicted_label": "yes"},
                },
                str(m2.pk): {
                    "original": {"predicted_label": "no"},
                    "edit": {"predicted_label": "no"},
                },
            },
            edits[b.pk].pk: {
                str(m1.pk): {
                    "original": {"predicted_label": "no"},
                    "edit": {"predicted_label": "yes"},
                }
            },
        }
    )
    # The validator answers "yes" on each edit it is shown (all three, one at a time).
    for _ in range(3):
        _validate(campaign, validator, "yes")
    data = client_for(manager).get(f"/api/v1/campaigns/{campaign.pk}/dashboard/").json()

    p = data["progress"]
    assert (p["examples"], p["annotations"], p["target_annotations"]) == (1, 3, 3)
    assert p["fraction"] == 1.0 and p["edits"] == 3
    # Edits a and b target "yes" (verified by a "yes" vote); c's targets "no" (disputed).
    assert (p["edits_verified"], p["edits_disputed"]) == (2, 1)
    assert p["scores_pending"] == 2  # b's edit lacks m2; c's edit lacks both

    rows = {r["annotator"]: r for r in data["annotators"]}
    assert rows[a.username]["done"] == 1
    # The server caps the reported time by the lease's age (annotation.services.annotations).
    assert 0 < rows[a.username]["median_seconds"] <= 1.234
    assert rows[c.username]["agreement"] == 0.0  # others a=no, b=no -> unique "no" != "yes"
    assert rows[a.username]["agreement"] is None  # others b=no, c=yes tie
    assert rows[a.username]["edits_verified"] == 1
    assert rows[a.username]["model_fooling_edits"] == 1  # m2 kept "no" on a verified "yes"
    assert rows[b.username]["model_fooling_edits"] == 0
    assert rows[c.username]["edits_disputed"] == 1
    assert data["labels"] == [{"label": "no", "annotations": 2}, {"label": "yes", "annotations": 1}]

    models = {m["model"]: m for m in data["models"]}
    assert models["alpha-model 1"]["scored_edits"] == 2
    assert models["alpha-model 1"]["flip_rate"] == 1.0
    assert models["alpha-model 1"]["fooled_rate"] == 0.0
    assert models["beta-model 1"]["flip_rate"] == 0.0
    assert models["beta-model 1"]["fooled_rate"] == 1.0

    flips = {(f["modality"], f["status"]): f["edits"] for f in data["flips"]}
    assert flips[("text", "claimed")] == 3
    assert flips[("text", "verified")] == 2 and flips[("text", "disputed")] == 1
    hist = [h for h in data["minimality"] if h["modality"] == "text"]
    assert len(hist) == 20 and sum(h["edits"] for h in hist) == 3
    assert sum(t["annotations"] for t in data["throughput"]) == 3
    assert data["agreement"]["krippendorff_alpha_nominal"] is not None


@pytest.mark.parametrize("n_annotators", [2, 6])
@pytest.mark.parametrize("n_models", [0, 2])
def test_dashboard_query_count_is_fixed(exact_queries, n_annotators, n_models):
    campaign, manager, annotators = _world(n_examples=4, n_annotators=n_annotators)
    for k in range(n_models):
        _model(campaign, f"m{k}")
    for user in annotators:
        _annotate(campaign, user, "no", "yes")
    client = client_for(manager)
    # A small campaign without a snapshot, computed inline: access (1 membership, the
    # campaign and its dataset) + the snapshot (none) + the annotation count + pool, leases,
    # models, per annotator, per profile, throughput, edits (one statement), members, names,
    # the perturbation studies (none here: their labels are not read) + the snapshot's upsert
    # (one statement) + the rounds (selectors_rounds: one query, none open here); PostgreSQL
    # also sets the statements' work_mem / jit (one statement).
    with exact_queries(15, postgres=16):
        r = client.get(f"/api/v1/campaigns/{campaign.pk}/dashboard/")
    assert r.status_code == 200
    assert len(r.json()["annotators"]) == n_annotators
    assert len(r.json()["models"]) == n_models
    assert r.json()["snapshot"]["state"] == "ready" and not r.json()["snapshot"]["stale"]
    # Its snapshot out of date (DASHBOARD_CACHE_SECONDS is 0 in tests) and small: recomputed
    # inline, without the count (the snapshot says how big the campaign was).
    with exact_queries(14, postgres=15):
        r = client.get(f"/api/v1/campaigns/{campaign.pk}/dashboard/")
    assert r.status_code == 200 and len(r.json()["models"]) == n_models


def test_empty_campaign_has_empty_charts():
    campaign = text_campaign(3)
    manager = member(campaign, "mia-manager", Membership.Role.MANAGER)
    data = client_for(manager).get(f"/api/v1/campaigns/{campaign.pk}/dashboard/").json()
    assert data["progress"]["annotations"] == 0 and data["progress"]["fraction"] == 0.0
    assert data["throughput"] == [] and data["labels"] == [] and data["minimality"] == []
    assert data["agreement"]["krippendorff_alpha_nominal"] is None
    r = client_for(manager).get(f"/api/v1/campaigns/{campaign.pk}/dashboard/labels.csv")
    assert r.status_code == 200 and r.content == b""


def test_csv_per_chart():
    campaign, manager, annotators = _world()
    for user in annotators:
        _annotate(campaign, user, "no", "yes")
    client = client_for(manager)
    r = client.get(f"/api/v1/campaigns/{campaign.pk}/dashboard/annotators.csv")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
    assert "attachment" in r["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(r.content.decode())))
    assert {row["annotator"] for row in rows} == {u.username for u in annotators}
    assert {row["done"] for row in rows} == {"1"}
    r = client.get(f"/api/v1/campaigns/{campaign.pk}/dashboard/nonsense.csv")
    assert r.status_code == 404 and r.json()["error"]["code"] == "chart_unknown"


@pytest.mark.parametrize("path", ["dashboard/", "dashboard/labels.csv"])
def test_dashboard_is_for_managers_only(path):
    campaign = text_campaign(2)
    annotator = member(campaign, "ann-only")
    outsider = member(text_campaign(1), "elsewhere")
    r = client_for(annotator).get(f"/api/v1/campaigns/{campaign.pk}/{path}")
    assert r.status_code == 403
    r = client_for(outsider).get(f"/api/v1/campaigns/{campaign.pk}/{path}")
    assert r.status_code == 404


def test_snapshot_is_served_for_the_ttl(exact_queries):
    campaign, manager, annotators = _world()
    client = client_for(manager)
    with override_settings(DASHBOARD_CACHE_SECONDS=60):
        first = client.get(f"/api/v1/campaigns/{campaign.pk}/dashboard/").json()
        _annotate(campaign, annotators[0], "no", "yes")
        with exact_queries(3):  # the access check, the snapshot, the rounds
            again = client.get(f"/api/v1/campaigns/{campaign.pk}/dashboard/").json()
        assert again["progress"] == first["progress"]
        assert again["snapshot"]["computed_at"] == first["snapshot"]["computed_at"]
        assert not again["snapshot"]["stale"] and not again["snapshot"]["refreshing"]
    fresh = client.get(f"/api/v1/campaigns/{campaign.pk}/dashboard/").json()
    assert fresh["progress"]["annotations"] == 1
