"""Krippendorff's alpha benchmark (issue #8): annotation.agreement.krippendorff_alpha beside
the `krippendorff` package (0.9.0) on the same 100,000 units x 5 raters (4 categories, 20 %
missing), nominal, ordinal and interval, in the same run. Goal: no slower than the package.

Prints per level: both times (best of --repeats), the ratio package / ours (>= 1 means ours
is no slower) and that the two values agree to 1e-9; then the time of ours on the same data
given as Python lists with None (the interface's documented form, the package has no such
input). Bounded: a fixed size and --repeats runs.

    .venv/bin/python benchmarks/bench_agreement.py [--units 100000] [--raters 5] [--repeats 3]"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import krippendorff
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from annotation.agreement import krippendorff_alpha


def best(fn, repeats: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    times, value = [], float("nan")
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return min(times), value


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--units", type=int, default=100_000)
    ap.add_argument("--raters", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, size=args.units)
    data = np.where(
        rng.random((args.raters, args.units)) < 0.7,
        truth,
        rng.integers(0, 4, size=(args.raters, args.units)),
    ).astype(float)
    data[rng.random(data.shape) < 0.2] = np.nan
    print(f"krippendorff_alpha: {args.units:,} units x {args.raters} raters, 20% missing")
    ok = True
    for level in ("nominal", "ordinal", "interval"):
        t_pkg, v_pkg = best(
            lambda level=level: krippendorff.alpha(
                reliability_data=data, level_of_measurement=level
            ),
            args.repeats,
        )
        t_ours, v_ours = best(
            lambda level=level: krippendorff_alpha(data, level=level), args.repeats
        )
        same = math.isclose(v_pkg, v_ours, abs_tol=1e-9)
        ratio = t_pkg / t_ours
        ok &= same and ratio >= 1.0
        print(
            f"  {level:8s} package {t_pkg * 1000:8.1f} ms   ours {t_ours * 1000:8.1f} ms   "
            f"ratio {ratio:5.1f}x   alpha {v_ours:.6f} ({'same' if same else 'DIFFERENT'})"
        )
    rows = [[None if math.isnan(v) else int(v) for v in row] for row in data]
    t_lists, _ = best(lambda: krippendorff_alpha(rows, level="nominal"), args.repeats)
    print(f"  nominal from Python lists with None: {t_lists * 1000:.1f} ms")
    print("goal (no slower than the package, same value):", "met" if ok else "MISSED")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
