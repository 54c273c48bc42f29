"""The score-reading task orders over real stored scores: the five easy-VQA reference models
score part of a campaign's pool; "models disagree most first" and "least confident first"
rank the scored examples by those scores, put the unscored last, and the lease endpoint
hands them out in that order."""

from __future__ import annotations

from typing import Any

import pytest

from annotation import policy
from annotation.models import Campaign, CampaignExample, Example, Membership
from annotation.services.campaigns import campaign_update
from models_bridge.services.scoring import score
from tests.conftest import client_for
from tests.factories import MembershipFactory, UserFactory
from tests.frontend.conftest import register_reference_models


def _pool_order(campaign: Campaign) -> list[int]:
    return list(
        CampaignExample.objects.filter(campaign=campaign)
        .order_by("rank", "id")
        .values_list("example_id", flat=True)
    )


@pytest.mark.parametrize("order", ["disagreement", "uncertainty"])
def test_scored_orders_rank_by_stored_scores_and_the_lease_follows(
    evqa_campaign: Campaign, order: str
) -> None:
    models = register_reference_models(evqa_campaign.dataset)
    if len(models) < 2:
        pytest.skip("needs two reference model packages")
    evqa_campaign.model_versions.set(models)
    campaign_update(campaign=evqa_campaign, redundancy=1)
    examples = list(Example.objects.filter(dataset=evqa_campaign.dataset).order_by("id"))
    # Score two thirds of the pool with the models that read the image (a text-only model
    # would share its scores between examples asking the same question).
    for mv in models:
        if "image" in mv.modalities:
            score(model_version=mv, inputs=[e.values for e in examples[:8]])

    campaign_update(campaign=evqa_campaign, task_order=order)
    ranked = _pool_order(evqa_campaign)
    measure = policy.disagreement if order == "disagreement" else policy.confidence
    from models_bridge.selectors import pool_predictions

    preds = pool_predictions(campaign=evqa_campaign, examples=[(e.pk, e.values) for e in examples])
    values = {ex: measure(preds.get(ex, [])) for ex in ranked}
    unscored = [ex for ex in ranked if values[ex] is None]
    assert unscored and len(unscored) < len(ranked)
    scored_part = ranked[: len(ranked) - len(unscored)]
    assert ranked[len(scored_part) :] == unscored  # the unscored go last
    figures = [values[ex] for ex in scored_part]
    assert figures == sorted(figures, reverse=order == "disagreement")  # type: ignore[type-var]
    summary = client_for(UserFactory(username="root", is_staff=True)).get(
        f"/api/v1/campaigns/{evqa_campaign.pk}/pool/"
    )
    assert summary.json()["unscored"] == len(unscored)

    leased: list[Any] = []
    for i in range(len(examples)):
        user = UserFactory(username=f"seq-{i}")
        MembershipFactory(campaign=evqa_campaign, user=user, role=Membership.Role.ANNOTATOR)
        r = client_for(user).post(
            f"/api/v1/campaigns/{evqa_campaign.pk}/lease/", {"kind": "annotate"}, format="json"
        )
        assert r.status_code == 200, r.content
        leased.append(r.json()["example"]["id"])
    assert leased == ranked
