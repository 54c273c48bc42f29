"""Gold placement is keyed by a per-campaign secret: annotators see neither the seed nor the
gold rate, and knowing the seed does not tell which items are gold or when a check comes."""

from __future__ import annotations

import pytest

from annotation import policy
from annotation.models import CampaignExample
from annotation.services.campaigns import campaign_add_examples, campaign_create, membership_add
from tests.annotation.annotator_helpers import add_annotators, text_campaign
from tests.conftest import client_for
from tests.factories import ExampleFactory, UserFactory

pytestmark = pytest.mark.django_db

HIDDEN_FROM_ANNOTATORS = {"seed", "gold_rate", "gold_secret", "warnings"}


def test_annotator_sees_no_seed_gold_rate_or_secret_and_the_manager_no_secret() -> None:
    campaign = text_campaign(3, gold_rate=0.2, seed=11)
    (annotator,) = add_annotators(campaign, 1)
    manager = UserFactory(username="gold-manager")
    membership_add(campaign=campaign, user=manager, role="manager")
    client = client_for(annotator)
    detail = client.get(f"/api/v1/campaigns/{campaign.pk}/").json()
    listed = client.get("/api/v1/campaigns/").json()["results"][0]
    for body in (detail, listed):
        assert body["id"] == campaign.pk
        assert not HIDDEN_FROM_ANNOTATORS & set(body), body
        assert campaign.gold_secret not in str(body)
    as_manager = client_for(manager).get(f"/api/v1/campaigns/{campaign.pk}/").json()
    assert as_manager["seed"] == 11 and as_manager["gold_rate"] == 0.2
    assert "gold_secret" not in as_manager and campaign.gold_secret not in str(as_manager)


def test_each_campaign_gets_its_own_secret_at_creation(dataset) -> None:  # type: ignore[no-untyped-def]
    a = campaign_create(dataset=dataset, name="same-seed-a", seed=7)
    b = campaign_create(dataset=dataset, name="same-seed-b", seed=7)
    assert len(a.gold_secret) == 64 and len(b.gold_secret) == 64
    assert a.gold_secret != b.gold_secret


def test_same_seed_places_gold_differently(dataset) -> None:  # type: ignore[no-untyped-def]
    examples = [ExampleFactory(dataset=dataset) for _ in range(40)]
    gold = []
    for name in ("gold-a", "gold-b"):
        campaign = campaign_create(dataset=dataset, name=name, seed=7, gold_rate=0.2)
        campaign_add_examples(campaign=campaign, gold_fraction=0.5)
        gold.append(
            set(
                CampaignExample.objects.filter(campaign=campaign, is_gold=True).values_list(
                    "example_id", flat=True
                )
            )
        )
        # Exactly what the pure policy says for this campaign's secret.
        assert gold[-1] == {
            e.pk
            for e in examples
            if policy.is_gold_item(
                seed=7, secret=campaign.gold_secret, example_id=e.pk, gold_fraction=0.5
            )
        }
    assert gold[0] and gold[1] and gold[0] != gold[1]


def test_gold_timing_depends_on_the_secret_and_is_deterministic_given_it() -> None:
    def checks(secret: str) -> list[bool | None]:
        return [
            policy.want_gold(gold_rate=0.2, seed=7, secret=secret, annotator_id=a, tasks_so_far=n)
            for a in range(10)
            for n in range(20)
        ]

    assert checks("one") == checks("one")
    assert checks("one") != checks("two")
    flags = [
        policy.is_gold_item(seed=7, secret="one", example_id=i, gold_fraction=0.3)
        for i in range(200)
    ]
    assert flags == [
        policy.is_gold_item(seed=7, secret="one", example_id=i, gold_fraction=0.3)
        for i in range(200)
    ]
    assert 30 < sum(flags) < 90
