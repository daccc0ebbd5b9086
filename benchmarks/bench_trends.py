"""Speed of a trend fit plus its bootstrap band on synthetic probit-linear data.

    python benchmarks/bench_trends.py [--points 10000] [--epochs 12] [--boot 1000] [--grid 100] [--repeat 5]

The points are runs of `--epochs` epochs each. Prints the best-of-`repeat` time of each step,
resampling runs (the default of every command) and single points; the last line is
`seconds: X` for fit + run-level band together (target: <= 0.2 s for 10,000 points and 1,000
resamples on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import ndtr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from divrob.analysis.trends import (  # noqa: E402
    bootstrap_band,
    effective_robustness_ci,
    effective_robustness_diff_ci,
    fit_trend,
)


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--boot", type=int, default=1_000)
    parser.add_argument("--grid", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    xt = rng.uniform(-1.5, 0.3, args.points)
    x = ndtr(xt)
    y = ndtr(0.8 * xt - 0.3 + 0.1 * rng.normal(size=args.points))
    grid = np.linspace(x.min(), x.max(), args.grid)

    runs = np.arange(args.points) // args.epochs

    def fit_and_band():
        fit_trend(x, y)
        bootstrap_band(x, y, grid, n_boot=args.boot, units=runs)

    fit_and_band()  # warm-up: first-call imports and allocations are not what we measure
    t_fit = best_of(args.repeat, lambda: fit_trend(x, y))
    t_band = best_of(args.repeat, lambda: bootstrap_band(x, y, grid, n_boot=args.boot, units=runs))
    t_band_pts = best_of(args.repeat, lambda: bootstrap_band(x, y, grid, n_boot=args.boot))
    t_both = best_of(args.repeat, fit_and_band)
    half = args.points // 2
    t_er = best_of(args.repeat, lambda: effective_robustness_ci(
        x[:half], y[:half], x[half:], y[half:], n_boot=args.boot, units=runs[:half], baseline_units=runs[half:]))

    third = args.points // 3
    t_diff = best_of(args.repeat, lambda: effective_robustness_diff_ci(
        x[:third], y[:third], x[third:2 * third], y[third:2 * third], x[2 * third:], y[2 * third:],
        n_boot=args.boot, a_units=runs[:third], b_units=runs[third:2 * third], baseline_units=runs[2 * third:]))

    print(f"points: {args.points} ({args.points // args.epochs} runs of {args.epochs} epochs)  "
          f"resamples: {args.boot}  grid: {args.grid}  best of {args.repeat}")
    print(f"fit_trend:                    {t_fit * 1e3:8.2f} ms")
    print(f"bootstrap_band (runs):        {t_band * 1e3:8.2f} ms")
    print(f"bootstrap_band (points):      {t_band_pts * 1e3:8.2f} ms")
    print(f"effective_robustness_ci:      {t_er * 1e3:8.2f} ms  ({half} group + {half} baseline points, runs)")
    print(f"effective_robustness_diff_ci: {t_diff * 1e3:8.2f} ms  ({third} + {third} points, "
          f"{args.points - 2 * third} baseline; divrob compare)")
    print(f"seconds: {t_both:.4f}")


if __name__ == "__main__":
    main()
