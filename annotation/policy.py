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
4. Seeded random order within: `rank` is a seeded shuffle fixed when the pool was built.
"""

from __future__ import annotations

import hashlib
import hmac
import math
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
