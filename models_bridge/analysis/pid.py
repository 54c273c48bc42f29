"""Partial information decomposition of a discrete joint P(x1, x2, y) (docs/analysis_pid.md).

The decomposition is the one of Bertschinger, Rauh, Olbrich, Jost and Ay (2014), as used by
Liang et al. (2023) to quantify multimodal interactions: over the set

    Δ_P = {Q on X1 x X2 x Y : Q(x1, y) = P(x1, y), Q(x2, y) = P(x2, y)}

minimise I_Q(X1, X2; Y), a convex program. With Q* its optimum (I(X1;Y), I(X2;Y) are the
same under every Q in Δ_P):

    U1 = I_Q*(X1; Y | X2) = I_Q*(X1, X2; Y) - I(X2; Y)
    U2 = I_Q*(X2; Y | X1) = I_Q*(X1, X2; Y) - I(X1; Y)
    R  = I(X1; Y) - U1     = I(X1; Y) + I(X2; Y) - I_Q*(X1, X2; Y)
    S  = I_P(X1, X2; Y) - I_Q*(X1, X2; Y)

so R + U1 + U2 + S = I_P(X1, X2; Y), R + U1 = I(X1; Y), R + U2 = I(X2; Y). All in bits.

Pure: numpy and cvxpy (the Clarabel conic solver); no torch, no database."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["PIDError", "PIDInputError", "PIDSolverError", "mutual_information", "pid_from_joint"]

# How far from 1 a joint may sum (float noise of counts / total) before it is refused.
SUM_TOLERANCE = 1e-6


class PIDError(ValueError):
    """Base of the PID errors; `code` is the rule's name (used in API errors and job logs)."""

    code = "pid_error"


class PIDInputError(PIDError):
    code = "pid_joint_invalid"


class PIDSolverError(PIDError):
    code = "pid_solver_failed"


def _check_joint(p: Any) -> np.ndarray:
    try:
        arr = np.asarray(p, dtype=np.float64)
    except (TypeError, ValueError):
        raise PIDInputError("the joint distribution must be an array of numbers") from None
    if arr.ndim != 3 or 0 in arr.shape:
        raise PIDInputError(
            f"the joint distribution must have shape (|X1|, |X2|, |Y|) with no empty axis, got {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise PIDInputError("the joint distribution has non-finite entries")
    if (arr < 0).any():
        raise PIDInputError(f"the joint distribution has negative entries (min {arr.min():.3g})")
    total = float(arr.sum())
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise PIDInputError(f"the joint distribution sums to {total:.9g}, not 1")
    return arr / total


def _entropy(p: np.ndarray) -> float:
    flat = p[p > 0]
    return float(-(flat * np.log2(flat)).sum())


def mutual_information(p: np.ndarray, a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """I(A; B) in bits of the joint `p`, A and B given as tuples of axes."""
    axes = tuple(range(p.ndim))
    pa = p.sum(axis=tuple(i for i in axes if i not in a))
    pb = p.sum(axis=tuple(i for i in axes if i not in b))
    pab = p.sum(axis=tuple(i for i in axes if i not in a + b))
    return max(0.0, _entropy(pa) + _entropy(pb) - _entropy(pab))


def _min_synergy_joint(p: np.ndarray) -> np.ndarray:
    """argmin over Δ_P of I_Q(X1, X2; Y) (Bertschinger et al. 2014, §5).

    With Q's Y-marginal fixed by the constraints, I_Q(X1,X2;Y) = Σ q log(q / q(x1,x2)) + H(Y);
    Σ rel_entr(q, q(x1,x2)) is jointly convex in q. Only cells where both P(x1,y) and
    P(x2,y) are positive can carry mass under Q, so the program has one variable per such
    cell (the others are 0), which keeps it small for sparse joints."""
    import cvxpy as cp
    import scipy.sparse as sp

    n1, n2, ny = p.shape
    p1y, p2y = p.sum(axis=1), p.sum(axis=0)
    support = (p1y[:, None, :] > 0) & (p2y[None, :, :] > 0)
    cells = np.argwhere(support)  # (m, 3) of (x1, x2, y)
    m = len(cells)
    rows = np.arange(m)
    # Each cell's (x1, x2) group: q(x1, x2) = G q, broadcast back to the cells.
    group = cells[:, 0] * n2 + cells[:, 1]
    g = sp.csr_matrix((np.ones(m), (group, rows)), shape=(n1 * n2, m))
    spread = (g.T @ g).tocsr()  # (m, m): cell → sum over its group
    a1_index = cells[:, 0] * ny + cells[:, 2]
    a2_index = cells[:, 1] * ny + cells[:, 2]
    a1 = sp.csr_matrix((np.ones(m), (a1_index, rows)), shape=(n1 * ny, m))
    a2 = sp.csr_matrix((np.ones(m), (a2_index, rows)), shape=(n2 * ny, m))

    q = cp.Variable(m, nonneg=True)
    objective = cp.Minimize(cp.sum(cp.rel_entr(q, spread @ q)))
    constraints = [a1 @ q == p1y.reshape(-1), a2 @ q == p2y.reshape(-1)]
    problem = cp.Problem(objective, constraints)
    try:
        problem.solve(solver=cp.CLARABEL)
    except cp.SolverError as exc:
        raise PIDSolverError(f"the PID program could not be solved: {exc}") from None
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or q.value is None:
        raise PIDSolverError(f"the PID program ended with status {problem.status!r}")
    out = np.zeros_like(p)
    out[cells[:, 0], cells[:, 1], cells[:, 2]] = np.clip(q.value, 0.0, None)
    return out / out.sum()


def pid_from_joint(p: Any) -> dict[str, float]:
    """Redundancy, the two uniquenesses and synergy (bits) of the joint `p` (|X1|, |X2|, |Y|).

    Raises PIDInputError for a joint that is not a distribution of that shape and
    PIDSolverError when the convex program fails. Also returns the informations the terms
    add up to (`mi_x1_y`, `mi_x2_y`, `mi_x1x2_y`) and the minimum `mi_x1x2_y_min` over Δ_P."""
    joint = _check_joint(p)
    i1 = mutual_information(joint, (0,), (2,))
    i2 = mutual_information(joint, (1,), (2,))
    i12 = mutual_information(joint, (0, 1), (2,))
    q = _min_synergy_joint(joint)
    # The optimum can only be ≤ P's value; the solver's tolerance may put it a hair above.
    iq = min(mutual_information(q, (0, 1), (2,)), i12)
    return {
        "redundancy": i1 + i2 - iq,
        "unique_1": iq - i2,
        "unique_2": iq - i1,
        "synergy": i12 - iq,
        "mi_x1_y": i1,
        "mi_x2_y": i2,
        "mi_x1x2_y": i12,
        "mi_x1x2_y_min": iq,
    }


def joint_from_codes(x1: Any, x2: Any, y: Any, *, sizes: tuple[int, int, int]) -> np.ndarray:
    """The empirical joint of three integer code sequences of equal length."""
    a, b, c = (np.asarray(v, dtype=np.int64) for v in (x1, x2, y))
    if not (len(a) == len(b) == len(c)) or len(a) == 0:
        raise PIDInputError("the three code sequences must be non-empty and of equal length")
    for codes, size, name in ((a, sizes[0], "x1"), (b, sizes[1], "x2"), (c, sizes[2], "y")):
        if codes.min() < 0 or codes.max() >= size:
            raise PIDInputError(f"{name} codes must lie in [0, {size})")
    counts = np.zeros(sizes, dtype=np.float64)
    np.add.at(counts, (a, b, c), 1.0)
    return counts / counts.sum()
