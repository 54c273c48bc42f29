"""Assignment policy, DB-free (docs/architecture.md "Conventions"): which example, edit or quota cell comes next.

The assignment services run the same ordering in SQL (so PostgreSQL can lock the first free
row with SKIP LOCKED); these functions are the reference the services are tested against,
and what a command or benchmark uses to reason about a pool without a database.

Rules, in the order they apply to annotation leases:
1. Eligible: the annotator has never held the example (any status: done, skipped, expired)
   nor been given one of its edits to validate (validation is blind to the original), and
   the example still has a free slot, `completed + in_flight < redundancy`. An example
   whose slots are all taken by open leases is not leased again: handing it out anyway is
   exactly the over-assignment this engine exists to prevent; the slot comes back when a
   lease is submitted, skipped or expires.
2. Gold mixing: when this lease should be a gold check (`want_gold`), gold items first,
   else non-gold items first; the other kind is the fallback so the pool always drains.
3. Partly done (some slot taken) before fresh: finishes examples rather than spreading
   thin, so complete examples (and their edits for validation) appear early.
4. Rank order within: `rank` is fixed per pool row by `pool_ranks` for the campaign's task
   order (seeded random, stratified by label, models disagree most first, least confident
   first); the lease reads only `rank`, so both lease paths follow any order unchanged.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PoolItem:
    """A campaign pool row as the policy sees it."""

    id: int
    example_id: int
    rank: int
    completed: int
    in_flight: int
    is_gold: bool = False

    @property
    def load(self) -> int:
        return self.completed + self.in_flight


def has_room(item: PoolItem, *, redundancy: int) -> bool:
    return item.load < redundancy


def lease_sort_key(item: PoolItem, *, want_gold: bool | None) -> tuple[int, int, int, int]:
    """Smaller sorts first. `want_gold=None` means gold is not mixed in (rate 0): gold items
    are then ordinary pool items."""
    gold_mismatch = 0 if want_gold is None or item.is_gold == want_gold else 1
    fresh = 1 if item.load == 0 else 0
    return (gold_mismatch, fresh, item.rank, item.id)


def order_pool(
    items: Iterable[PoolItem],
    *,
    redundancy: int,
    held_example_ids: Iterable[int] = (),
    want_gold: bool | None = None,
) -> list[PoolItem]:
    """The eligible pool items in lease order (the first is leased next)."""
    held = set(held_example_ids)
    eligible = [i for i in items if i.example_id not in held and has_room(i, redundancy=redundancy)]
    return sorted(eligible, key=lambda i: lease_sort_key(i, want_gold=want_gold))


def _gold_digest(*, secret: str, seed: int, what: str) -> bytes:
    """Keyed with the campaign's secret: the seed alone (which managers choose and may share)
    must not let anyone work out which items are gold or when a gold check comes."""
    return hmac.new(secret.encode(), f"gold:{seed}:{what}".encode(), hashlib.sha256).digest()


def _phase(*, seed: int, secret: str, annotator_id: int) -> float:
    """A per-annotator offset in [0, 1), stable for (campaign seed, secret, annotator), so gold
    checks do not land at the same position in everybody's sequence."""
    digest = _gold_digest(secret=secret, seed=seed, what=f"phase:{annotator_id}")
    return int.from_bytes(digest[:8], "big") / 2**64


def is_gold_item(*, seed: int, secret: str, example_id: int, gold_fraction: float) -> bool:
    """Whether an example added to a campaign pool with `gold_fraction` becomes a gold item.
    Independent per example (adding examples in another order or batch changes nothing)."""
    if gold_fraction <= 0:
        return False
    digest = _gold_digest(secret=secret, seed=seed, what=f"item:{example_id}")
    return int.from_bytes(digest[:8], "big") / 2**64 < gold_fraction


def want_gold(
    *, gold_rate: float, seed: int, secret: str, annotator_id: int, tasks_so_far: int
) -> bool | None:
    """Whether the annotator's next annotation lease (0-based position `tasks_so_far` in
    their sequence) should be a gold check. None when the rate is 0 (no gold mixing).

    Evenly spread rather than independent coin flips: after n leases the annotator has had
    floor(n·rate + φ) - floor(φ) gold checks, so always within one of n·rate."""
    if gold_rate <= 0:
        return None
    if gold_rate >= 1:
        return True
    phi = _phase(seed=seed, secret=secret, annotator_id=annotator_id)
    n = tasks_so_far
    return math.floor((n + 1) * gold_rate + phi) > math.floor(n * gold_rate + phi)


def gold_preferences(*, want: bool | None, gold_only: bool = False) -> list[bool | None]:
    """The order in which a lease tries gold and non-gold pool rows (rule 2); both lease paths
    (the PostgreSQL statement and the ORM one) walk this list. `gold_only`: an annotator
    still in the screening gets gold items and nothing else, no fallback."""
    if gold_only:
        return [True]
    return [want, not want] if want is not None else [None]


def effective_task_cap(*, campaign_cap: int | None, member_cap: int | None) -> int | None:
    """The task cap that holds for one annotator: their own (a manager set it on their
    membership, above or below the campaign's), otherwise the campaign's; None: no cap."""
    return member_cap if member_cap is not None else campaign_cap


SCREENING_OFF = "off"
SCREENING_PENDING = "pending"
SCREENING_PASSED = "passed"
SCREENING_FAILED = "failed"


def screening_status(*, answers: Sequence[bool], items: int, pass_mark: float) -> str:
    """Where an annotator stands in a campaign's screening: `answers` are whether their first
    gold items were answered correctly, oldest first (only the first `items` count). Failed as
    soon as the pass mark is out of reach, so nobody labels screening items in vain."""
    if items <= 0:
        return SCREENING_OFF
    # The smallest number right that reaches the mark (the epsilon keeps 0.8 * 5 at 4).
    needed = math.ceil(pass_mark * items - 1e-9)
    counted = list(answers)[:items]
    right = sum(1 for a in counted if a)
    if right >= needed and len(counted) == items:
        return SCREENING_PASSED
    if right + (items - len(counted)) < needed:
        return SCREENING_FAILED
    return SCREENING_PENDING if len(counted) < items else SCREENING_FAILED


@dataclass(frozen=True)
class EditCandidate:
    """A counterfactual edit as validation selection sees it."""

    id: int
    author_id: int
    validations_count: int
    active_leases: int = 0
    example_id: int = 0


def validation_order(
    edits: Iterable[EditCandidate],
    *,
    validator_id: int,
    validations_required: int,
    held_edit_ids: Iterable[int] = (),
    seen_example_ids: Iterable[int] = (),
) -> list[EditCandidate]:
    """Edits this validator may be given, in order. Blindness: never an edit of an example
    they were ever given to annotate (`seen_example_ids`, which covers the edit's author and
    everyone else who labelled the original), never their own edit, never one they already
    held; only edits with a free validation slot (`validations_count + active leases <
    validations_required`). Closest to complete first, then oldest, so edits reach a
    verdict instead of all sitting half-validated."""
    held = set(held_edit_ids)
    seen = set(seen_example_ids)
    eligible = [
        e
        for e in edits
        if e.author_id != validator_id
        and e.example_id not in seen
        and e.id not in held
        and e.validations_count + e.active_leases < validations_required
    ]
    return sorted(eligible, key=lambda e: (-(e.validations_count + e.active_leases), e.id))


Cell = tuple[str, str]


def quota_cells(
    *, modalities: Sequence[str], labels: Sequence[str], exclude_label: str | None = None
) -> list[Cell]:
    """All (modality edited x target label) cells, in campaign order, without the target
    label the edit may not have (the example's own label: an edit must change it)."""
    return [(m, label) for m in modalities for label in labels if label != exclude_label]


def quota_cell(
    *,
    modalities: Sequence[str],
    labels: Sequence[str],
    filled: Mapping[Cell, int],
    exclude_label: str | None = None,
) -> Cell | None:
    """The most under-filled cell: fewest edits (done + leased) so far; ties go to the first
    cell in campaign order (modalities as listed, then the label space order), which with
    counts that include open leases makes consecutive leases walk the cells round-robin.
    None when there is no cell (no editable modality, or no label other than the excluded)."""
    cells = quota_cells(modalities=modalities, labels=labels, exclude_label=exclude_label)
    if not cells:
        return None
    order = {cell: i for i, cell in enumerate(cells)}
    return min(cells, key=lambda c: (filled.get(c, 0), order[c]))


def validators_short(
    *, annotators: int, validator_eligible: int, redundancy: int, validations_required: int
) -> int:
    """How many validators an edit will lack, at worst, given the team (0: enough).

    Every example is labelled by min(redundancy, annotators) distinct annotators (its edits'
    authors among them), and none of them may validate its edits (validation is blind), so
    an edit can be validated by at most `validator_eligible - min(redundancy, annotators)`
    people, where `validator_eligible` counts the distinct members with the annotator or
    validator role. It needs `validations_required` of them."""
    blocked = min(redundancy, annotators)
    return max(0, validations_required - (validator_eligible - blocked))


SHOWN = "shown"
HIDDEN = "hidden"
RANDOMISED = "randomised"


def effective_arm(*, campaign_policy: str, member_arm: str | None) -> str:
    """The feedback arm a person is in, "shown" or "hidden": the one rule every path (task
    payload, live scoring, the "me" view) applies. The campaign's policy decides when it is
    shown or hidden for everyone; a randomised campaign uses the arm stored on the person's
    membership at invitation (`invitation_arm`). Someone without a working membership (staff
    looking in) sees feedback."""
    if campaign_policy == SHOWN:
        return SHOWN
    if campaign_policy == HIDDEN:
        return HIDDEN
    return HIDDEN if member_arm == HIDDEN else SHOWN


def invitation_arm(*, seed: int, campaign_id: int, user_id: int, shown: int, hidden: int) -> str:
    """The arm stored on a new member's membership (used when the campaign is, or becomes,
    randomised): the less filled arm, so the arms stay balanced (within one person); on a tie
    a coin seeded per campaign and person, so the order of invitation does not decide."""
    if shown != hidden:
        return SHOWN if shown < hidden else HIDDEN
    digest = hashlib.sha256(f"arm:{seed}:{campaign_id}:{user_id}".encode()).digest()
    return SHOWN if digest[0] % 2 == 0 else HIDDEN


# --- task order -------------------------------------------------------------------------------

TASK_ORDERS = ("random", "stratified", "disagreement", "uncertainty")
# Orders that read the campaign models' stored scores; an example without them goes last.
SCORED_ORDERS = ("disagreement", "uncertainty")


@dataclass(frozen=True)
class RankInput:
    """A pool example as task ordering sees it: its gold label (None when unlabelled) and,
    per campaign model with a stored score for it, (predicted label, probabilities over the
    dataset's labels)."""

    example_id: int
    label: str | None = None
    predictions: tuple[tuple[str, Mapping[str, float]], ...] = ()


def _seeded_order(ids: Sequence[int], *, seed: int, salt: str = "") -> dict[int, int]:
    """example id → position in a seeded shuffle of `ids` (taken in id order first, so the
    result depends on the set, not on the order it was given in)."""
    ordered = sorted(ids)
    random.Random(f"{seed}:{salt}" if salt else seed).shuffle(ordered)
    return {ex: i for i, ex in enumerate(ordered)}


def disagreement(predictions: Sequence[tuple[str, Mapping[str, float]]]) -> float | None:
    """How much the models disagree on one input, in [0, 1]: 1 - the share of the most common
    predicted label, plus (as a tie-break within the same vote split, scaled into the next
    vote step) the mean pairwise total-variation distance of the probabilities. None for
    fewer than two models (disagreement needs two opinions)."""
    n = len(predictions)
    if n < 2:
        return None
    votes: dict[str, int] = {}
    for label, _ in predictions:
        votes[label] = votes.get(label, 0) + 1
    vote = 1 - max(votes.values()) / n
    pairs = [(a, b) for i, (_, a) in enumerate(predictions) for (_, b) in predictions[i + 1 :]]
    tv = sum(
        0.5 * sum(abs(float(a.get(k, 0.0)) - float(b.get(k, 0.0))) for k in set(a) | set(b))
        for a, b in pairs
    ) / len(pairs)
    return vote + min(max(tv, 0.0), 1.0) / (n + 1)


def confidence(predictions: Sequence[tuple[str, Mapping[str, float]]]) -> float | None:
    """Mean over the models of the probability each gave its own prediction; None unscored."""
    if not predictions:
        return None
    return sum(float(p.get(label, 0.0)) for label, p in predictions) / len(predictions)


def pool_ranks(items: Sequence[RankInput], *, order: str, seed: int) -> dict[int, int]:
    """example id → rank (0 first) for the whole pool under `order` (one of TASK_ORDERS).

    random: a seeded shuffle. stratified: each label's examples shuffled, then interleaved in
    proportion, so any prefix of the pool holds the labels in the pool's proportions (within
    one per label); unlabelled examples form their own stratum. disagreement / uncertainty:
    most disagreement (policy.disagreement) / lowest confidence (policy.confidence) first;
    examples the scores do not cover (no stored score, or fewer than two models for
    disagreement) go last, in seeded random order. Ties break by the seeded shuffle."""
    if order not in TASK_ORDERS:
        raise ValueError(f"task order must be one of {TASK_ORDERS}, got {order!r}")
    ids = [i.example_id for i in items]
    shuffle = _seeded_order(ids, seed=seed)
    keyed: list[tuple[tuple[float, ...], int]]
    if order == "random":
        keyed = [((float(shuffle[ex]),), ex) for ex in ids]
    elif order == "stratified":
        strata: dict[str, list[int]] = {}
        for item in items:
            strata.setdefault(item.label or "", []).append(item.example_id)
        label_pos = _seeded_order(list(range(len(strata))), seed=seed, salt="strata")
        keyed = []
        for s_index, (label, members) in enumerate(sorted(strata.items())):
            inner = _seeded_order(members, seed=seed, salt=f"stratum:{label}")
            n = len(members)
            for ex in members:
                keyed.append((((inner[ex] + 0.5) / n, float(label_pos[s_index])), ex))
    else:
        measure = disagreement if order == "disagreement" else confidence
        sign = -1.0 if order == "disagreement" else 1.0
        keyed = []
        for item in items:
            value = measure(item.predictions)
            unscored = 1.0 if value is None else 0.0
            keyed.append(
                (
                    (
                        unscored,
                        0.0 if value is None else sign * value,
                        float(shuffle[item.example_id]),
                    ),
                    item.example_id,
                )
            )
    keyed.sort()
    return {ex: rank for rank, (_, ex) in enumerate(keyed)}


def unscored_count(items: Sequence[RankInput], *, order: str) -> int:
    """How many pool examples `order` cannot rank by scores (they go last); 0 for the orders
    that read no scores."""
    if order == "disagreement":
        return sum(1 for i in items if disagreement(i.predictions) is None)
    if order == "uncertainty":
        return sum(1 for i in items if confidence(i.predictions) is None)
    return 0
