from __future__ import annotations

import pytest

from annotation.models import Campaign, CampaignExample, Dataset, Membership
from tests.factories import ExampleFactory

pytestmark = pytest.mark.django_db


def test_manager_creates_dataset_and_campaign_and_invites(
    api, manager, dataset, examples, annotator
):
    client = api(manager)
    r = client.post(
        "/api/v1/datasets/",
        {
            "name": "pets",
            "modalities": [{"name": "photo", "kind": "image"}, {"name": "caption", "kind": "text"}],
            "label_space": ["cat", "dog"],
        },
        format="json",
    )
    assert r.status_code == 201, r.content
    pets = Dataset.objects.get(name="pets")
    assert pets.created_by == manager

    r = client.post(
        "/api/v1/campaigns/", {"name": "pets-1", "dataset": pets.id, "redundancy": 2}, format="json"
    )
    assert r.status_code == 201, r.content
    campaign = Campaign.objects.get(name="pets-1")
    assert campaign.editable_modalities == ["photo", "caption"]
    assert Membership.objects.filter(campaign=campaign, user=manager, role="manager").exists()

    r = client.post(
        f"/api/v1/campaigns/{campaign.id}/memberships/",
        {"username": annotator.username, "role": "annotator"},
    )
    assert r.status_code == 201, r.content
    assert r.json()["arm"] == "shown"


def test_bad_schema_names_the_rule(api, manager):
    r = api(manager).post(
        "/api/v1/datasets/",
        {"name": "bad", "modalities": [{"name": "x", "kind": "audio"}], "label_space": ["a"]},
        format="json",
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "schema_modality_kind"
    assert "audio" in r.json()["error"]["message"]
    assert not Dataset.objects.filter(name="bad").exists()


def test_campaign_rejects_unknown_editable_modality(api, manager, dataset):
    r = api(manager).post(
        "/api/v1/campaigns/",
        {"name": "c2", "dataset": dataset.id, "editable_modalities": ["audio"]},
        format="json",
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "campaign_editable_modalities"
    assert not Campaign.objects.filter(name="c2").exists()


def test_over_budget_setting_is_refused(api, manager, campaign):
    r = api(manager).patch(
        f"/api/v1/campaigns/{campaign.id}/", {"edit_budgets": {"image": 1.5}}, format="json"
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "campaign_edit_budgets"


def test_examples_paginated_and_filtered(api, manager, campaign, dataset):
    for i in range(7):
        ExampleFactory(
            dataset=dataset, label="yes" if i % 2 else "no", split="train" if i < 3 else "test"
        )
    client = api(manager)
    r = client.get(f"/api/v1/datasets/{dataset.id}/examples/?split=test&label=yes")
    assert r.status_code == 200
    body = r.json()
    assert body["count"] == 2
    assert all(e["split"] == "test" and e["label"] == "yes" for e in body["results"])
    image = body["results"][0]["values"]["image"]
    assert image["url"] == f"/media/{image['sha256']}"


def test_media_served_to_signed_in_users_only(client, manager, examples):
    sha = examples[0].values["image"]
    anonymous = client.get(f"/media/{sha}")
    assert anonymous.status_code == 403  # JSON for API clients, not a sign-in redirect
    assert anonymous.json()["error"]["code"] == "not_authenticated"
    client.force_login(manager)
    r = client.get(f"/media/{sha}")
    assert r.status_code == 200
    assert r["Content-Type"] == "image/png"
    assert b"".join(r.streaming_content).startswith(b"\x89PNG")
    assert client.get("/media/" + "0" * 64).status_code == 404
    assert client.get("/media/not-a-hash").status_code == 404


@pytest.mark.parametrize(
    ("who", "list_status", "detail_status", "patch_status"),
    [
        ("manager", 200, 200, 200),
        ("annotator", 200, 200, 403),
        ("outsider", 200, 404, 404),
        ("staff", 200, 200, 200),
    ],
)
def test_campaign_permission_matrix(
    api,
    request,
    campaign,
    manager,
    annotator,
    outsider,
    staff,
    who,
    list_status,
    detail_status,
    patch_status,
):
    user = request.getfixturevalue(who)
    client = api(user)
    r = client.get("/api/v1/campaigns/")
    assert r.status_code == list_status
    visible = {c["id"] for c in r.json()["results"]}
    assert (campaign.id in visible) == (who != "outsider")
    assert client.get(f"/api/v1/campaigns/{campaign.id}/").status_code == detail_status
    r = client.patch(f"/api/v1/campaigns/{campaign.id}/", {"instructions": "new"}, format="json")
    assert r.status_code == patch_status
    if patch_status == 403:
        assert r.json()["error"]["code"] == "role_required"


def test_anonymous_gets_401_or_403(api, campaign):
    r = api(None).get("/api/v1/campaigns/")
    assert r.status_code in (401, 403)


def test_datasets_hidden_from_annotators(api, annotator, dataset):
    client = api(annotator)
    assert dataset.id not in {d["id"] for d in client.get("/api/v1/datasets/").json()["results"]}
    assert client.get(f"/api/v1/datasets/{dataset.id}/examples/").status_code == 404


def test_campaign_add_examples_is_idempotent_and_seeded(api, manager, campaign, dataset):
    for _ in range(10):
        ExampleFactory(dataset=dataset)
    client = api(manager)
    r = client.post(f"/api/v1/campaigns/{campaign.id}/examples/", {"limit": 6}, format="json")
    assert r.status_code == 201 and r.json()["added"] == 6
    first = list(
        CampaignExample.objects.filter(campaign=campaign).values_list("example_id", "rank")
    )
    r = client.post(f"/api/v1/campaigns/{campaign.id}/examples/", {"limit": 6}, format="json")
    assert r.json()["added"] == 0
    assert sorted(rank for _, rank in first) == list(range(6))


def test_list_campaigns_query_count_is_flat(api, manager, campaign, dataset, exact_queries):
    from tests.factories import CampaignFactory, MembershipFactory

    for _ in range(5):
        MembershipFactory(campaign=CampaignFactory(dataset=dataset), user=manager, role="manager")
    with exact_queries(3):
        r = api(manager).get("/api/v1/campaigns/")
    assert r.json()["count"] == 6


def test_token_auth(client, manager):
    r = client.post(
        "/api/v1/auth/token/", {"username": manager.username, "password": "pw-for-tests"}
    )
    assert r.status_code == 200
    token = r.json()["token"]
    r = client.get("/api/v1/campaigns/", HTTP_AUTHORIZATION=f"Token {token}")
    assert r.status_code == 200
