"""Pool writes of campaign setup: the task order (the pool's `rank`) and gold items with
their answers.

The lease paths (services.assignments, SQL and ORM) read only `rank`, so any task order is
applied here, by rewriting the ranks with policy.pool_ranks, and both paths follow it
unchanged."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction

from annotation import policy
from annotation.models import Campaign, CampaignExample
from counterpoint.errors import ValidationFailed


@dataclass(frozen=True)
class PoolRankResult:
    changed: int  # pool rows whose rank moved
    unscored: int  # examples the order could not rank by scores (placed last)


def rank_inputs(*, campaign: Campaign) -> list[policy.RankInput]:
    """The pool as policy.pool_ranks sees it: labels always, model predictions for the orders
    that read scores (one pool query, then the score lookups of models_bridge)."""
    rows = list(
        CampaignExample.objects.filter(campaign=campaign)
        .order_by("example_id")
        .values_list("example_id", "example__label", "example__values")
    )
    predictions: dict[int, list[tuple[str, dict[str, float]]]] = {}
    if campaign.task_order in policy.SCORED_ORDERS:
        # models_bridge reads annotation's tables, not the reverse: imported where needed.
        from models_bridge.selectors import pool_predictions

        predictions = pool_predictions(
            campaign=campaign, examples=[(ex, values) for ex, _, values in rows]
        )
    return [
        policy.RankInput(example_id=ex, label=label, predictions=tuple(predictions.get(ex, ())))
        for ex, label, _ in rows
    ]


def campaign_pool_rank(*, campaign: Campaign) -> PoolRankResult:
    """Rewrite the pool's ranks for the campaign's task order (run when the order changes and
    after examples are added). Reads scores before the write transaction; writes only the
    rows whose rank moved."""
    items = rank_inputs(campaign=campaign)
    ranks = policy.pool_ranks(items, order=campaign.task_order, seed=campaign.seed)
    with transaction.atomic():
        rows = list(
            CampaignExample.objects.filter(campaign=campaign).only("id", "example_id", "rank")
        )
        moved = []
        for row in rows:
            rank = ranks.get(row.example_id)
            if rank is not None and rank != row.rank:
                row.rank = rank
                moved.append(row)
        CampaignExample.objects.bulk_update(moved, ["rank"], batch_size=1000)
    return PoolRankResult(
        changed=len(moved), unscored=policy.unscored_count(items, order=campaign.task_order)
    )


def campaign_gold_set(
    *,
    campaign: Campaign,
    example_ids: Iterable[int],
    is_gold: bool = True,
    answer: str | None = None,
) -> int:
    """Mark pool examples as gold items (or unmark them, which drops their answers). A gold
    item's answer (selectors.gold_answer) is `answer` when given, which must be in the
    dataset's label space; without one, an answer set earlier stays and otherwise the
    example's own label is the answer, so an unlabelled example needs one. Returns the rows
    changed."""
    ids = sorted({int(i) for i in example_ids})
    rows = {
        ex: (label, given)
        for ex, label, given in CampaignExample.objects.filter(
            campaign=campaign, example_id__in=ids
        ).values_list("example_id", "example__label", "gold_answer")
    }
    missing = [i for i in ids if i not in rows]
    if missing:
        raise ValidationFailed(
            f"examples {missing[:10]} are not in the campaign's pool", code="gold_not_in_pool"
        )
    pool = CampaignExample.objects.filter(campaign=campaign, example_id__in=ids)
    if not is_gold:
        return pool.update(is_gold=False, gold_answer="")
    if answer is not None:
        labels = list(campaign.dataset.label_space)
        if answer not in labels:
            raise ValidationFailed(
                f"the answer {answer!r} is not in the label space {labels}",
                code="gold_answer_not_in_label_space",
                details={"label_space": labels},
            )
        return pool.update(is_gold=True, gold_answer=answer)
    unanswered = [i for i in ids if not rows[i][0] and not rows[i][1]]
    if unanswered:
        raise ValidationFailed(
            f"examples {unanswered[:10]} have no label: give the gold answer for them",
            code="gold_needs_answer",
        )
    return pool.update(is_gold=True)
