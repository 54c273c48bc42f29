"""The balanced design of perturbation tasks (docs/perturbation.md), DB-free.

A study's examples are its columns (`position` 0..N-1), its participants its rows (`slot`
0, 1, 2 … in the order they start). Participant `slot` sees the example at `position` at level
`(position + slot) mod L` of an L-rung ladder: a cyclic Latin square. So

- each participant sees each base example at most once, at one level (the lease enforces the
  once; this function gives the one level);
- within a participant, the levels rotate across examples: any L consecutive positions cover
  every level once, so nobody sees mostly easy or mostly hard rungs;
- across participants, any L consecutive slots see a given example at every level once, so
  every (example, level) cell gets its share: with P participants, ⌊P/L⌋ or ⌈P/L⌉ labels.

Gold items are always shown at level 0 (the identity) and keep measuring attention."""

from __future__ import annotations


def perturbation_level(*, slot: int, position: int, n_levels: int, is_gold: bool) -> int:
    """The ladder index participant `slot` sees the example at `position` at."""
    if n_levels < 1:
        raise ValueError("a ladder has at least one level")
    if is_gold:
        return 0
    return (position + slot) % n_levels
