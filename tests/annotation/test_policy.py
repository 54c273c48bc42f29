"""The DB-free assignment policy (annotation/policy.py)."""

from __future__ import annotations

import math
import random

import pytest

from annotation import policy
from annotation.policy import EditCandidate, PoolItem


def item(
    i: int, *, rank: int | None = None, completed: int = 0, in_flight: int = 0, gold: bool = False
) -> PoolItem:
    return PoolItem(
        id=i,
        example_id=100 + i,
        rank=i if rank is None else rank,
        completed=completed,
        in_flight=in_flight,
        is_gold=gold,
    )


def ids(items: list[PoolItem]) -> list[int]:
    return [i.id for i in items]


def test_full_examples_and_examples_already_held_are_not_eligible() -> None:
    pool = [item(1, completed=3), item(2, completed=2, in_flight=1), item(3, completed=1), item(4)]
    assert ids(policy.order_pool(pool, redundancy=3)) == [3, 4]
    assert ids(policy.order_pool(pool, redundancy=3, held_example_ids=[103])) == [4]


def test_partly_done_before_fresh_then_rank() -> None:
    pool = [
        item(1, rank=5),
        item(2, rank=1),
        item(3, rank=9, in_flight=1),  # an open lease makes it partly done
        item(4, rank=2, completed=2),
        item(5, rank=0),
    ]
    assert ids(policy.order_pool(pool, redundancy=3)) == [4, 3, 5, 2, 1]


def test_gold_preference_with_fallback_to_the_other_kind() -> None:
    pool = [
        item(1, rank=0),
        item(2, rank=1, gold=True),
        item(3, rank=2),
        item(4, rank=3, gold=True, completed=1),
    ]
    assert ids(policy.order_pool(pool, redundancy=3, want_gold=True)) == [4, 2, 1, 3]
    assert ids(policy.order_pool(pool, redundancy=3, want_gold=False)) == [1, 3, 4, 2]
    # Rate 0: gold is an ordinary pool item.
    assert ids(policy.order_pool(pool, redundancy=3, want_gold=None)) == [4, 1, 2, 3]
    only_gold = [item(2, gold=True)]
    assert ids(policy.order_pool(only_gold, redundancy=3, want_gold=False)) == [2]


@pytest.mark.parametrize("rate", [0.05, 0.1, 0.25, 1 / 3, 0.5, 0.9])
def test_gold_checks_are_spread_at_the_rate(rate: float) -> None:
    for annotator in range(20):
        flags = [
            policy.want_gold(
                gold_rate=rate, seed=7, secret="k", annotator_id=annotator, tasks_so_far=n
            )
            for n in range(200)
        ]
        for n in range(1, 201):
            got = sum(bool(f) for f in flags[:n])
            assert math.floor(n * rate) - 1 < got < math.ceil(n * rate) + 1, (annotator, n, got)


def test_gold_rate_edges_and_phases_differ_between_annotators() -> None:
    assert (
        policy.want_gold(gold_rate=0.0, seed=1, secret="k", annotator_id=1, tasks_so_far=0) is None
    )
    assert all(
        policy.want_gold(gold_rate=1.0, seed=1, secret="k", annotator_id=1, tasks_so_far=n)
        for n in range(10)
    )
    first_gold = {
        a: next(
            n
            for n in range(100)
            if policy.want_gold(gold_rate=0.1, seed=3, secret="k", annotator_id=a, tasks_so_far=n)
        )
        for a in range(30)
    }
    assert len(set(first_gold.values())) > 1
    # Stable: the same inputs give the same answer.
    assert [
        policy.want_gold(gold_rate=0.2, seed=3, secret="k", annotator_id=5, tasks_so_far=n)
        for n in range(50)
    ] == [
        policy.want_gold(gold_rate=0.2, seed=3, secret="k", annotator_id=5, tasks_so_far=n)
        for n in range(50)
    ]


def test_validation_never_to_the_author_never_twice_only_with_room() -> None:
    edits = [
        EditCandidate(id=1, author_id=9, validations_count=0),
        EditCandidate(id=2, author_id=7, validations_count=1),
        EditCandidate(id=3, author_id=8, validations_count=2, active_leases=1),  # full at 3
        EditCandidate(id=4, author_id=8, validations_count=1, active_leases=1),
        EditCandidate(id=5, author_id=8, validations_count=0),
        EditCandidate(id=6, author_id=8, validations_count=3),
    ]
    order = policy.validation_order(
        edits, validator_id=9, validations_required=3, held_edit_ids=[5]
    )
    assert [e.id for e in order] == [4, 2]
    order = policy.validation_order(edits, validator_id=7, validations_required=3)
    assert [e.id for e in order] == [4, 1, 5]


def test_quota_picks_the_most_underfilled_cell_excluding_the_examples_label() -> None:
    filled = {("image", "yes"): 2, ("image", "no"): 0, ("text", "yes"): 1, ("text", "no"): 0}
    assert policy.quota_cell(modalities=["image", "text"], labels=["yes", "no"], filled=filled) == (
        "image",
        "no",
    )
    filled[("image", "no")] = 5
    assert policy.quota_cell(modalities=["image", "text"], labels=["yes", "no"], filled=filled) == (
        "text",
        "no",
    )
    assert policy.quota_cell(
        modalities=["image", "text"], labels=["yes", "no"], filled=filled, exclude_label="no"
    ) == (
        "text",
        "yes",
    )
    assert policy.quota_cell(modalities=[], labels=["yes"], filled={}) is None
    assert (
        policy.quota_cell(modalities=["text"], labels=["yes"], filled={}, exclude_label="yes")
        is None
    )


def test_quota_keeps_cells_balanced_over_a_stream_of_leases() -> None:
    rng = random.Random(0)
    mods, labels = ["image", "text"], ["yes", "no", "red", "blue"]
    filled: dict[tuple[str, str], int] = {}
    for _ in range(400):
        exclude = rng.choice(labels)  # each example has its own label, never a target
        cell = policy.quota_cell(
            modalities=mods, labels=labels, filled=filled, exclude_label=exclude
        )
        assert cell is not None and cell[1] != exclude
        filled[cell] = filled.get(cell, 0) + 1
    counts = [filled.get((m, label), 0) for m in mods for label in labels]
    assert sum(counts) == 400
    assert max(counts) - min(counts) <= 2  # 8 cells, 50 each when perfectly balanced
