"""EMAP arithmetic (models_bridge/analysis/emap.py): pure numpy, no database."""

from __future__ import annotations

import numpy as np
import pytest

from models_bridge.analysis.emap import (
    block_partial,
    combine,
    emap_background,
    emap_from_grid,
    row_blocks,
)


def additive_grid(n: int, c: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ga, gb = rng.normal(size=(n, c)), rng.normal(size=(n, c))
    return ga[:, None, :] + gb[None, :, :], ga, gb


def test_additive_grid_is_reproduced_exactly() -> None:
    grid, ga, gb = additive_grid(37, 5)
    emap = emap_from_grid(grid)
    np.testing.assert_allclose(emap, ga + gb, atol=1e-6)
    np.testing.assert_allclose(emap, grid[np.arange(37), np.arange(37)], atol=1e-6)


def test_definition_on_a_random_grid() -> None:
    rng = np.random.default_rng(3)
    grid = rng.normal(size=(6, 6, 3))
    want = np.stack(
        [grid[i].mean(axis=0) + grid[:, i].mean(axis=0) - grid.mean(axis=(0, 1)) for i in range(6)]
    )
    np.testing.assert_allclose(emap_from_grid(grid), want, atol=1e-12)


def test_swapping_the_modalities_changes_nothing() -> None:
    grid = np.random.default_rng(1).normal(size=(9, 9, 4))
    np.testing.assert_allclose(
        emap_from_grid(grid), emap_from_grid(grid.transpose(1, 0, 2)), atol=1e-12
    )


@pytest.mark.parametrize("block_rows", [1, 4, 7, 50])
def test_row_block_partials_combine_to_the_grid_result(block_rows: int) -> None:
    grid = np.random.default_rng(2).normal(size=(23, 23, 3))
    parts = [block_partial(grid[s:e], start=s) for s, e in row_blocks(23, block_rows)]
    sums = combine(reversed(parts), n=23)  # order of arrival does not matter
    np.testing.assert_allclose(sums.emap, emap_from_grid(grid), atol=1e-12)
    np.testing.assert_allclose(sums.logits, grid[np.arange(23), np.arange(23)])


def test_partials_survive_their_byte_form() -> None:
    grid = np.random.default_rng(4).normal(size=(8, 8, 2))
    p = block_partial(grid[3:6], start=3)
    q = type(p).from_bytes(start=3, stop=6, n=8, c=2, data=p.packed())
    np.testing.assert_array_equal(q.col_sums, p.col_sums)
    np.testing.assert_array_equal(q.diag, p.diag)


def test_blocks_that_miss_a_row_are_refused() -> None:
    grid = np.zeros((5, 5, 2))
    with pytest.raises(ValueError, match="tile"):
        combine([block_partial(grid[0:2], start=0), block_partial(grid[3:5], start=3)], n=5)


def test_background_pool_equals_the_grid_for_the_pool_plus_the_pair_on_additive() -> None:
    grid, ga, gb = additive_grid(12, 3, seed=5)
    pool = grid[:11, :11]
    new = 11
    got = emap_background(
        with_pool_b=grid[new, :11], with_pool_a=grid[:11, new], pool_grand_mean=pool.mean((0, 1))
    )
    np.testing.assert_allclose(got, ga[new] + gb[new], atol=1e-6)
