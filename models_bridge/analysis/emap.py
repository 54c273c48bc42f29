"""EMAP (Hessel & Lee 2020) as plain numpy arithmetic (docs/analysis.md "EMAP").

For N examples (a_i, b_i) of two modalities A and B and a model f with C logits,
grid[i, j] = f(a_i, b_j) and

    emap_i = mean_j f(a_i, b_j) + mean_j f(a_j, b_i) - mean_{j,k} f(a_j, b_k).

Every path (the whole grid, row blocks streamed or spread over workers, the background
pool for one new pair) reduces to the same three sums: row sums, column sums and the
grand total. A row block of the grid (rows `start:stop`, every column) contributes its rows'
sums, its share of every column's sum and its share of the total; blocks add up, so the
N²·C grid is never held in memory. Torch-free and DB-free on purpose."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "BlockAccumulator",
    "BlockPartial",
    "EmapSums",
    "accuracy_table",
    "block_partial",
    "combine",
    "emap_background",
    "emap_from_grid",
    "interaction_scores",
    "row_blocks",
]


def emap_from_grid(grid: np.ndarray) -> np.ndarray:
    """(N, N, C) logits, grid[i, j] = f(a_i, b_j) → (N, C) EMAP logits."""
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim != 3 or g.shape[0] != g.shape[1]:
        raise ValueError(f"grid must have shape (N, N, C), not {g.shape}")
    return g.mean(axis=1) + g.mean(axis=0) - g.mean(axis=(0, 1))


@dataclass
class BlockPartial:
    """What rows `start:stop` of the grid contribute: their row sums (stop-start, C), their
    share of each column's sum (N, C), of the total (C,), and the diagonal f(a_i, b_i) of
    those rows (stop-start, C), which is the model's own output on the real pairs."""

    start: int
    stop: int
    row_sums: np.ndarray
    col_sums: np.ndarray
    total: np.ndarray
    diag: np.ndarray

    @classmethod
    def from_bytes(cls, *, start: int, stop: int, n: int, c: int, data: bytes) -> BlockPartial:
        """Inverse of `packed`: one buffer of row_sums | col_sums | total | diag."""
        arr = np.frombuffer(data, dtype=np.float64)
        r = stop - start
        sizes = [r * c, n * c, c, r * c]
        if arr.size != sum(sizes):
            raise ValueError(f"a partial of {arr.size} numbers, expected {sum(sizes)}")
        parts = np.split(arr, np.cumsum(sizes)[:-1])
        return cls(
            start=start,
            stop=stop,
            row_sums=parts[0].reshape(r, c),
            col_sums=parts[1].reshape(n, c),
            total=parts[2].copy(),
            diag=parts[3].reshape(r, c),
        )

    def packed(self) -> bytes:
        return (
            np.concatenate(
                [
                    self.row_sums.ravel(),
                    self.col_sums.ravel(),
                    self.total.ravel(),
                    self.diag.ravel(),
                ]
            )
            .astype(np.float64)
            .tobytes()
        )


class BlockAccumulator:
    """Builds a BlockPartial from chunks of the block's rows, so a block of R rows needs
    only one chunk of (r, N, C) logits in memory at a time."""

    def __init__(self, *, start: int, stop: int, n: int, c: int) -> None:
        self.start, self.stop, self.n, self.c = start, stop, n, c
        self.row_sums = np.zeros((stop - start, c))
        self.col_sums = np.zeros((n, c))
        self.total = np.zeros(c)
        self.diag = np.zeros((stop - start, c))

    def add(self, first_row: int, chunk: np.ndarray) -> None:
        """`chunk` (r, N, C): grid rows first_row .. first_row+r-1, every column."""
        ch = np.asarray(chunk, dtype=np.float64)
        r = ch.shape[0]
        lo = first_row - self.start
        self.row_sums[lo : lo + r] += ch.sum(axis=1)
        self.col_sums += ch.sum(axis=0)
        self.total += ch.sum(axis=(0, 1))
        rows = np.arange(r)
        self.diag[lo : lo + r] = ch[rows, first_row + rows]

    def partial(self) -> BlockPartial:
        return BlockPartial(
            self.start, self.stop, self.row_sums, self.col_sums, self.total, self.diag
        )


def block_partial(grid_rows: np.ndarray, *, start: int) -> BlockPartial:
    """The partial of grid rows start..start+len-1 given whole (R, N, C)."""
    g = np.asarray(grid_rows, dtype=np.float64)
    acc = BlockAccumulator(start=start, stop=start + g.shape[0], n=g.shape[1], c=g.shape[2])
    acc.add(start, g)
    return acc.partial()


@dataclass
class EmapSums:
    """The combined sums of all blocks: f on the real pairs and its EMAP."""

    logits: np.ndarray  # (N, C): f(a_i, b_i)
    emap: np.ndarray  # (N, C)


def combine(partials: Iterable[BlockPartial], *, n: int) -> EmapSums:
    """Blocks covering rows 0..n-1 exactly once (in any order) → f and EMAP(f)."""
    parts = sorted(partials, key=lambda p: p.start)
    covered = [(p.start, p.stop) for p in parts]
    expect = 0
    for start, stop in covered:
        if start != expect:
            raise ValueError(f"row blocks do not tile 0..{n}: {covered}")
        expect = stop
    if expect != n or not parts:
        raise ValueError(f"row blocks do not tile 0..{n}: {covered}")
    row_sums = np.concatenate([p.row_sums for p in parts])
    col_sums = np.sum([p.col_sums for p in parts], axis=0)
    total = np.sum([p.total for p in parts], axis=0)
    logits = np.concatenate([p.diag for p in parts])
    return EmapSums(logits=logits, emap=row_sums / n + col_sums / n - total / (n * n))


def row_blocks(n: int, block_rows: int) -> list[tuple[int, int]]:
    """Row ranges [start, stop) of at most `block_rows` rows covering 0..n-1."""
    size = max(1, int(block_rows))
    return [(s, min(n, s + size)) for s in range(0, n, size)]


def emap_background(
    *, with_pool_b: np.ndarray, with_pool_a: np.ndarray, pool_grand_mean: np.ndarray
) -> np.ndarray:
    """EMAP of one new pair (a, b) against a background pool of M examples: `with_pool_b`
    (M, C) = f(a, b_j), `with_pool_a` (M, C) = f(a_j, b), `pool_grand_mean` (C,) =
    mean_{j,k} f(a_j, b_k) over the pool (cached: it does not depend on the new pair).
    2M model calls per pair instead of (N+1)²."""
    return (
        np.asarray(with_pool_b, dtype=np.float64).mean(axis=0)
        + np.asarray(with_pool_a, dtype=np.float64).mean(axis=0)
        - np.asarray(pool_grand_mean, dtype=np.float64)
    )


def interaction_scores(logits: np.ndarray, emap: np.ndarray) -> np.ndarray:
    """Per example ‖f(x) - EMAP f(x)‖₂ over the logits."""
    return np.linalg.norm(np.asarray(logits) - np.asarray(emap), axis=-1)


def accuracy_table(
    *,
    gold: Sequence[str | None],
    predicted: Sequence[str],
    predicted_emap: Sequence[str],
    groups: Mapping[str, Sequence[str | None]],
) -> dict[str, Any]:
    """Accuracy of f and of EMAP(f) overall and per value of each grouping (label, question
    type), over the examples with a gold label."""

    def acc(idx: list[int]) -> dict[str, Any]:
        n = len(idx)
        if n == 0:
            return {"n": 0, "model": None, "emap": None}
        m = sum(1 for i in idx if predicted[i] == gold[i]) / n
        e = sum(1 for i in idx if predicted_emap[i] == gold[i]) / n
        return {"n": n, "model": m, "emap": e, "gap": m - e}

    labelled = [i for i, g in enumerate(gold) if g is not None]
    out: dict[str, Any] = {"overall": acc(labelled)}
    for name, values in groups.items():
        keys = sorted({str(values[i]) for i in labelled if values[i] is not None})
        out[f"by_{name}"] = {
            k: acc([i for i in labelled if values[i] is not None and str(values[i]) == k])
            for k in keys
        }
    return out
