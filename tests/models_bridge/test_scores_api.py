"""GET /api/v1/campaigns/{id}/scores/: per example and campaign model, the stored prediction,
probabilities and correctness; filterable, paginated, managers only, flat query count."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction

from annotation.models import Example
from models_bridge.services.bulk import bulk_score_run, bulk_score_start
from models_bridge.services.registry import campaign_models_set, model_register
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def _scored_campaign(campaign: Any, manager: Any) -> tuple[Any, Any]:
    a = model_register(dataset=campaign.dataset, kind="torchscript", location="easyvqa-text-only")
    b = model_register(dataset=campaign.dataset, kind="torchscript", location="easyvqa-additive")
    campaign_models_set(campaign=campaign, model_versions=[a, b])
    with transaction.atomic():
        job = bulk_score_start(model_version=a, campaign=campaign, created_by=manager)
    bulk_score_run(job=job)  # model b stays unscored
    return a, b


def test_manager_reads_per_example_scores_with_filters(
    evqa_campaign: Any, evqa_people: Any, django_assert_num_queries: Any
) -> None:
    a, b = _scored_campaign(evqa_campaign, evqa_people["manager"])
    client = client_for(evqa_people["manager"])
    url = f"/api/v1/campaigns/{evqa_campaign.pk}/scores/"
    n = evqa_campaign.items.count()

    # membership check, campaign models, pool values, count-free page of Score rows
    with django_assert_num_queries(4):
        r = client.get(url + "?page_size=10")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["count"] == 2 * n and len(body["results"]) == 10 and body["next"]
    first = body["results"][0]
    assert (first["model"], first["scored"]) == (a.pk, True)
    assert set(first["probabilities"]) <= set(evqa_campaign.dataset.label_space)
    assert first["correct"] == (first["predicted_label"] == first["gold_label"])
    assert body["results"][1]["model"] == b.pk and body["results"][1]["scored"] is False

    only_a = client.get(url, {"model": a.pk}).json()
    assert only_a["count"] == n and all(row["scored"] for row in only_a["results"])
    wrong = client.get(url, {"model": a.pk, "correct": "false"}).json()
    right = client.get(url, {"model": a.pk, "correct": "true"}).json()
    assert wrong["count"] + right["count"] == n
    assert all(row["predicted_label"] != row["gold_label"] for row in wrong["results"])
    assert client.get(url, {"scored": "false"}).json()["count"] == n
    label = Example.objects.filter(dataset=evqa_campaign.dataset).first().label
    by_label = client.get(url, {"label": label, "model": a.pk}).json()
    assert by_label["count"] == Example.objects.filter(label=label).count()
    predicted = first["predicted_label"]
    assert all(
        row["predicted_label"] == predicted
        for row in client.get(url, {"predicted": predicted}).json()["results"]
    )
    assert client.get(url, {"split": "nope"}).json()["count"] == 0
    last = client.get(url, {"page": 3, "page_size": 10}).json()
    assert len(last["results"]) == 2 * n - 20 and last["next"] is None

    bad = client.get(url, {"correct": "maybe"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "scores_filter"
    assert client.get(url, {"model": "abc"}).json()["error"]["code"] == "scores_filter"


def test_scores_are_for_managers_only(evqa_campaign: Any, evqa_people: Any) -> None:
    url = f"/api/v1/campaigns/{evqa_campaign.pk}/scores/"
    r = client_for(evqa_people["shown"]).get(url)
    assert r.status_code == 403 and r.json()["error"]["code"] == "role_required"
    assert client_for(evqa_people["outsider"]).get(url).status_code == 404
