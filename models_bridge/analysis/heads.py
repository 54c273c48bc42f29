"""Head importance and the pruning curve of an attention model (docs/analysis.md, "Attention
heads"): the arithmetic only, torch-free. models_bridge/analysis/heads_method.py runs the
model under the masks these functions name and hands the accuracies back.

- importance of head h = accuracy with every head on - accuracy with head h alone masked;
- pruning order = heads by importance, least important first (ties: lower index first);
- pruning curve = accuracy after removing the first k heads of that order, k = 0 … heads.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def single_head_masks(heads: int) -> np.ndarray:
    """(heads, heads) float32: row h keeps every head but h."""
    if heads < 1:
        raise ValueError("a model needs at least one head")
    return (1.0 - np.eye(heads)).astype(np.float32)


def head_importance(base: float, masked: Sequence[float]) -> list[float]:
    """Accuracy drop of each head: `base` (all heads on) - `masked[h]` (head h masked)."""
    return [float(base) - float(a) for a in masked]


def pruning_order(importance: Sequence[float]) -> list[int]:
    """Head indices, least important first; equal importance keeps the lower index first."""
    return sorted(range(len(importance)), key=lambda h: (float(importance[h]), h))


def pruning_masks(order: Sequence[int], heads: int) -> np.ndarray:
    """(heads + 1, heads) float32: row k has the first k heads of `order` removed (row 0 is
    the full model, the last row has every head removed)."""
    if sorted(order) != list(range(heads)):
        raise ValueError(f"order {list(order)} is not a permutation of {heads} heads")
    masks = np.ones((heads + 1, heads), dtype=np.float32)
    for k in range(1, heads + 1):
        masks[k:, order[k - 1]] = 0.0
    return masks


def accuracy(predicted: Sequence[str], gold: Sequence[str | None]) -> float | None:
    """Share of the examples with a gold label that `predicted` gets right (None if none)."""
    idx = [i for i, g in enumerate(gold) if g is not None]
    if not idx:
        return None
    return sum(1 for i in idx if predicted[i] == gold[i]) / len(idx)


def accuracy_by_group(
    predicted: Sequence[str], gold: Sequence[str | None], groups: Sequence[str | None]
) -> dict[str, float | None]:
    """accuracy within each group value (examples whose group is None are left out)."""
    names = sorted({g for g in groups if g is not None})
    out: dict[str, float | None] = {}
    for name in names:
        idx = [i for i, g in enumerate(groups) if g == name]
        out[name] = accuracy([predicted[i] for i in idx], [gold[i] for i in idx])
    return out
