"""The pure arithmetic of the heads analysis (models_bridge/analysis/heads.py): no Django, no
torch."""

from __future__ import annotations

import numpy as np
import pytest

from models_bridge.analysis.heads import (
    accuracy,
    accuracy_by_group,
    head_importance,
    pruning_masks,
    pruning_order,
    single_head_masks,
)


def test_single_head_masks_remove_one_head_each():
    m = single_head_masks(3)
    assert m.dtype == np.float32
    np.testing.assert_array_equal(m, [[0, 1, 1], [1, 0, 1], [1, 1, 0]])
    with pytest.raises(ValueError):
        single_head_masks(0)


def test_importance_is_the_accuracy_drop():
    assert head_importance(0.9, [0.9, 0.5, 0.95]) == pytest.approx([0.0, 0.4, -0.05])


def test_pruning_order_least_important_first_ties_by_index():
    assert pruning_order([0.3, -0.1, 0.0, 0.0]) == [1, 2, 3, 0]
    assert pruning_order([0.0, 0.0, 0.0]) == [0, 1, 2]


def test_pruning_masks_remove_heads_cumulatively():
    masks = pruning_masks([2, 0, 1], 3)
    np.testing.assert_array_equal(masks, [[1, 1, 1], [1, 1, 0], [0, 1, 0], [0, 0, 0]])
    with pytest.raises(ValueError):
        pruning_masks([0, 0, 1], 3)
    with pytest.raises(ValueError):
        pruning_masks([0, 1], 3)


def test_accuracy_skips_examples_without_gold():
    assert accuracy(["a", "b", "c"], ["a", None, "x"]) == 0.5
    assert accuracy(["a"], [None]) is None


def test_accuracy_by_group():
    pred = ["yes", "no", "red", "red"]
    gold = ["yes", "yes", "red", "blue"]
    groups = ["yes_no", "yes_no", "colour", None]
    assert accuracy_by_group(pred, gold, groups) == {"colour": 1.0, "yes_no": 0.5}
