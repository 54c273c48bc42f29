"""Task order (issue 8 §1): policy.pool_ranks is pure; the pool's ranks follow the campaign's
order and the lease endpoint hands examples out in that order."""

from __future__ import annotations

import pytest

from annotation import policy
from annotation.models import Campaign, CampaignExample, Membership
from annotation.services.campaigns import campaign_add_examples, campaign_update
from tests.annotation.annotator_helpers import add_annotators, member, text_campaign
from tests.conftest import client_for
from tests.factories import ExampleFactory

R = policy.RankInput


def _order(ranks: dict[int, int]) -> list[int]:
    return [ex for ex, _ in sorted(ranks.items(), key=lambda kv: kv[1])]


def test_random_order_is_a_seeded_permutation() -> None:
    items = [R(i) for i in range(1, 21)]
    a = policy.pool_ranks(items, order="random", seed=7)
    assert sorted(a.values()) == list(range(20))
    assert a == policy.pool_ranks(list(reversed(items)), order="random", seed=7)
    assert a != policy.pool_ranks(items, order="random", seed=8)


def test_stratified_order_keeps_every_prefix_in_proportion() -> None:
    # 12 "no", 6 "yes", 3 unlabelled: every prefix holds each label within one of its share.
    items = [R(i, "no") for i in range(12)] + [R(100 + i, "yes") for i in range(6)]
    items += [R(200 + i, None) for i in range(3)]
    order = _order(policy.pool_ranks(items, order="stratified", seed=3))
    label = {i.example_id: i.label for i in items}
    for n in range(1, len(order) + 1):
        prefix = [label[e] for e in order[:n]]
        for lab, share in (("no", 12 / 21), ("yes", 6 / 21), (None, 3 / 21)):
            assert abs(prefix.count(lab) - n * share) <= 1.0 + 1e-9, (n, lab, prefix)
    # The pool in id order (all "no" first) breaks the property: the check bites.
    by_id = [i.example_id for i in items]
    assert any(abs([label[e] for e in by_id[:n]].count("no") - n * 12 / 21) > 1 for n in range(22))


def _p(label: str, prob: float, other: str) -> tuple[str, dict[str, float]]:
    return (label, {label: prob, other: round(1 - prob, 6)})


def test_disagreement_first_then_unscored_last() -> None:
    items = [
        R(1, "yes", (_p("yes", 0.9, "no"), _p("yes", 0.8, "no"))),  # agree
        R(2, "yes", (_p("yes", 0.6, "no"), _p("no", 0.6, "yes"))),  # split vote
        R(3, "yes", (_p("yes", 0.95, "no"), _p("yes", 0.55, "no"))),  # agree, far apart
        R(4, "yes", (_p("yes", 0.9, "no"),)),  # one model: no disagreement to measure
        R(5, "yes", ()),  # no score
    ]
    order = _order(policy.pool_ranks(items, order="disagreement", seed=0))
    assert order[:3] == [2, 3, 1]
    assert set(order[3:]) == {4, 5}
    assert policy.unscored_count(items, order="disagreement") == 2


def test_least_confident_first_then_unscored_last() -> None:
    items = [
        R(1, "yes", (_p("yes", 0.9, "no"), _p("yes", 0.8, "no"))),  # 0.85
        R(2, "yes", (_p("yes", 0.6, "no"), _p("no", 0.55, "yes"))),  # 0.575
        R(3, "yes", (_p("no", 0.7, "yes"),)),  # 0.7
        R(4, "yes", ()),
    ]
    assert _order(policy.pool_ranks(items, order="uncertainty", seed=0)) == [2, 3, 1, 4]
    assert policy.unscored_count(items, order="uncertainty") == 1
    with pytest.raises(ValueError):
        policy.pool_ranks(items, order="alphabetical", seed=0)


def _pool_order(campaign: Campaign) -> list[int]:
    return list(
        CampaignExample.objects.filter(campaign=campaign)
        .order_by("rank", "id")
        .values_list("example_id", flat=True)
    )


def _lease_sequence(campaign: Campaign, n: int) -> list[int]:
    """The examples n fresh annotators are leased, one each (redundancy 1: each takes the next
    fresh item, so the sequence is the pool's rank order)."""
    out = []
    for user in add_annotators(campaign, n):
        r = client_for(user).post(
            f"/api/v1/campaigns/{campaign.pk}/lease/", {"kind": "annotate"}, format="json"
        )
        assert r.status_code == 200, r.content
        out.append(r.json()["example"]["id"])
    return out


@pytest.mark.django_db
def test_changing_the_order_reranks_the_pool_and_the_lease_follows_it() -> None:
    campaign = text_campaign(8, redundancy=1, status=Campaign.Status.ACTIVE)
    random_order = _pool_order(campaign)
    campaign_update(campaign=campaign, task_order="stratified")
    stratified = _pool_order(campaign)
    items = [
        R(ex, label)
        for ex, label in CampaignExample.objects.filter(campaign=campaign).values_list(
            "example_id", "example__label"
        )
    ]
    assert stratified == _order(policy.pool_ranks(items, order="stratified", seed=campaign.seed))
    assert stratified != random_order
    assert _lease_sequence(campaign, 8) == stratified


@pytest.mark.django_db
def test_examples_added_later_are_ranked_with_the_pool_under_a_non_random_order() -> None:
    campaign = text_campaign(
        6, redundancy=1, status=Campaign.Status.ACTIVE, task_order="stratified"
    )
    extra = [ExampleFactory(dataset=campaign.dataset, label="yes") for _ in range(3)]
    assert campaign_add_examples(campaign=campaign, example_ids=[e.pk for e in extra]) == 3
    labels = dict(
        CampaignExample.objects.filter(campaign=campaign).values_list(
            "example_id", "example__label"
        )
    )
    items = [R(ex, lab) for ex, lab in labels.items()]
    assert _pool_order(campaign) == _order(
        policy.pool_ranks(items, order="stratified", seed=campaign.seed)
    )
    assert sorted(
        CampaignExample.objects.filter(campaign=campaign).values_list("rank", flat=True)
    ) == list(range(9))


@pytest.mark.django_db
def test_a_bad_task_order_is_refused_by_name() -> None:
    campaign = text_campaign(2)
    boss = member(campaign, "boss", Membership.Role.MANAGER)
    r = client_for(boss).patch(
        f"/api/v1/campaigns/{campaign.pk}/", {"task_order": "alphabetical"}, format="json"
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "campaign_task_order"
    campaign.refresh_from_db()
    assert campaign.task_order == "random"
