"""Linear trends of OOD vs ID metric on a transformed scale, their bootstrap bands, and
effective robustness (Taori et al. 2020; Miller et al. 2021).

A trend is the least-squares line of transform(OOD) on transform(ID). The bootstrap helpers here
take plain arrays (plus, optionally, each point's run) and resample through `bootstrap`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from divrob.analysis import ID_COL, N_BOOT, OOD_COL
from divrob.analysis.bootstrap import Sample, bootstrap_groups, percentile_interval, resample, stream

# Aliased: `transform` is also the name of every function's transform-name argument.
from divrob.analysis.transforms import inverse
from divrob.analysis.transforms import transform as to_scale


@dataclass(frozen=True)
class Trend:
    group: str
    slope: float
    intercept: float
    r2: float
    n: int
    transform: str

    def predict(self, id_metric) -> np.ndarray:
        """Expected OOD metric (metric units) at the given ID metric values."""
        return self.predict_scaled(to_scale(id_metric, self.transform))

    def predict_scaled(self, xt) -> np.ndarray:
        """Expected OOD metric (metric units) at ID values already on the trend's scale."""
        return inverse(self.slope * np.asarray(xt, dtype=np.float64) + self.intercept, self.transform)


def _paired(id_metric, ood_metric) -> tuple[np.ndarray, np.ndarray]:
    """Paired 1-d float arrays with non-finite pairs dropped (a missing eval is not a point)."""
    x = np.asarray(id_metric, dtype=np.float64).ravel()
    y = np.asarray(ood_metric, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"ID and OOD metrics differ in length: {x.size} vs {y.size}")
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def fit_trend(id_metric, ood_metric, transform: str = "probit", group: str = "") -> Trend:
    """Least-squares line of transformed OOD on transformed ID."""
    x, y = _paired(id_metric, ood_metric)
    return fit_scaled(*_transform_pair(x, y, transform), transform, group)


def fit_scaled(xt: np.ndarray, yt: np.ndarray, transform: str, group: str = "") -> Trend:
    """`fit_trend` of points already on the transformed scale (finite, paired)."""
    name = f"group {group!r}: " if group else ""
    if xt.size < 2:
        raise ValueError(f"{name}a trend needs at least 2 points with both metrics, got {xt.size}")
    dx, dy = xt - xt.mean(), yt - yt.mean()
    # einsum, not `@`: a BLAS dot product of one vector costs 100x more on a busy machine
    # (thread hand-off), and a single fit needs no threads.
    sxx = float(np.einsum("i,i->", dx, dx))
    if sxx <= 1e-12 * max(float(np.einsum("i,i->", xt, xt)), 1.0):
        raise ValueError(f"{name}all {xt.size} points have the same ID metric; no line fits")
    slope = float(np.einsum("i,i->", dx, dy)) / sxx
    intercept = float(yt.mean() - slope * xt.mean())
    res = dy - slope * dx
    ss_res = float(np.einsum("i,i->", res, res))
    ss_tot = float(np.einsum("i,i->", dy, dy))
    # sklearn's convention for a constant target: perfect fit scores 1, anything else 0.
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0)
    return Trend(str(group), slope, intercept, r2, int(xt.size), transform)


def fit_trends(df, group_col: str = "group", id_col: str = ID_COL, ood_col: str = OOD_COL,
               transform: str = "probit") -> dict[str, Trend]:
    """One trend per group, in sorted group order; groups that cannot be fit are left out."""
    to_scale([], transform)  # a bad transform name must raise, not skip every group
    trends: dict[str, Trend] = {}
    groups = {str(g): sub for g, sub in df.groupby(group_col, sort=False)}
    for g in sorted(groups):
        sub = groups[g]
        try:
            trends[g] = fit_trend(sub[id_col].to_numpy(), sub[ood_col].to_numpy(), transform, g)
        except ValueError:
            continue
    return trends


def _transform_pair(x, y, name: str) -> tuple[np.ndarray, np.ndarray]:
    return to_scale(x, name), to_scale(y, name)


def _sample(id_metric, ood_metric, transform: str, units, what: str, least: int = 2) -> Sample:
    s = Sample.of(id_metric, ood_metric, transform, units)
    if s.n < least:
        raise ValueError(f"{what} needs at least {least} point{'s' if least > 1 else ''} with both metrics, got {s.n}")
    return s


def bootstrap_lines(id_metric, ood_metric, transform: str = "probit", n_boot: int = N_BOOT,
                    seed: int = 0, units=None) -> tuple[np.ndarray, np.ndarray]:
    """Slopes and intercepts (transformed scale) of lines fit to bootstrap resamples.

    `units` labels each point's run: whole runs are resampled. None resamples single points.
    Resamples whose ID values are all equal have no line and are dropped, so fewer than
    `n_boot` lines can come back (often with 2-3 points).
    """
    sample = _sample(id_metric, ood_metric, transform, units, "bootstrapping a trend")
    return resample(sample, n_boot, stream(seed, "lines")).lines()


def band_of_lines(slopes: np.ndarray, intercepts: np.ndarray, grid, transform: str,
                  level: float = 0.95, n_units: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise percentile band of lines over `grid` (metric units in and out), expanded for
    few units (`bootstrap.percentile_interval`)."""
    if slopes.size == 0:
        raise ValueError("every bootstrap resample had a single ID value; no band can be drawn")
    g = np.atleast_1d(to_scale(grid, transform)).ravel()
    # Percentiles commute with the monotone inverse, so take them on the cheap linear scale.
    lo, hi = percentile_interval(slopes[:, None] * g[None, :] + intercepts[:, None], level, n_units)
    return inverse(lo, transform), inverse(hi, transform)


def bootstrap_band(id_metric, ood_metric, grid, transform: str = "probit", n_boot: int = N_BOOT,
                   seed: int = 0, level: float = 0.95, units=None) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise percentile band of the bootstrapped lines over `grid`, all in metric units."""
    sample = _sample(id_metric, ood_metric, transform, units, "bootstrapping a trend")
    draws = resample(sample, n_boot, stream(seed, "lines"))
    return band_of_lines(*draws.lines(), grid, transform, level, draws.n_units)


def effective_robustness(id_metric, ood_metric, baseline: Trend) -> np.ndarray:
    """OOD metric minus what the baseline trend predicts from the ID metric (metric units)."""
    ood = np.asarray(ood_metric, dtype=np.float64)
    return ood - baseline.predict(id_metric)


def effective_robustness_ci(id_metric, ood_metric, baseline_id, baseline_ood,
                            transform: str = "probit", n_boot: int = N_BOOT, seed: int = 0,
                            level: float = 0.95, is_baseline: bool = False, units=None,
                            baseline_units=None) -> tuple[float, float, float]:
    """Mean effective robustness of a group against a baseline fit, with a bootstrap CI.

    Each resample redraws the group's units and the baseline's units and refits the baseline,
    so the interval carries the uncertainty of both; the point estimate uses all the data.
    `units` / `baseline_units` label each point's run (None: points are resampled singly).
    `is_baseline`: the group is the baseline itself (same points), so one draw serves both.
    """
    group = _sample(id_metric, ood_metric, transform, units, "effective robustness", least=1)
    base = _sample(baseline_id, baseline_ood, transform, baseline_units, "the baseline trend")
    baseline = fit_trend(baseline_id, baseline_ood, transform, group="baseline")
    mean = float(np.mean(group.ood - baseline.predict_scaled(group.xt)))
    if is_baseline:
        _check_shared(group, base)
        draws = bootstrap_groups({"group": base}, n_boot, seed, baseline_group="group")
    else:
        draws = bootstrap_groups({"group": group}, n_boot, seed, baseline=base)
    lo, hi = _interval(draws["group"].er, level, draws["group"].er_units)
    return mean, lo, hi


def effective_robustness_diff_ci(a_id, a_ood, b_id, b_ood, baseline_id, baseline_ood,
                                 transform: str = "probit", n_boot: int = N_BOOT, seed: int = 0,
                                 level: float = 0.95, a_is_baseline: bool = False,
                                 b_is_baseline: bool = False, a_units=None, b_units=None,
                                 baseline_units=None) -> tuple[float, float, float]:
    """Mean effective robustness of group A minus that of group B, with a bootstrap CI.

    Both are measured against one baseline fit. Every resample redraws A, B and the baseline
    and refits the baseline once for both groups, so the shared baseline uncertainty partly
    cancels in the difference instead of being counted twice. A group that *is* the baseline
    reuses the baseline's resample (its points cannot be drawn twice independently).
    """
    a = _sample(a_id, a_ood, transform, a_units, "comparing effective robustness", least=1)
    b = _sample(b_id, b_ood, transform, b_units, "comparing effective robustness", least=1)
    base = _sample(baseline_id, baseline_ood, transform, baseline_units, "the baseline trend")
    baseline = fit_trend(baseline_id, baseline_ood, transform, group="baseline")
    diff = float(np.mean(a.ood - baseline.predict_scaled(a.xt)) - np.mean(b.ood - baseline.predict_scaled(b.xt)))
    shared = "a" if a_is_baseline else ("b" if b_is_baseline else None)
    if shared:
        _check_shared({"a": a, "b": b}[shared], base)
        samples = {"a": base, "b": b} if shared == "a" else {"a": a, "b": base}
        draws = bootstrap_groups(samples, n_boot, seed, baseline_group=shared)
    else:
        draws = bootstrap_groups({"a": a, "b": b}, n_boot, seed, baseline=base)
    lo, hi = _interval(draws["a"].er - draws["b"].er, level,
                       min(draws["a"].er_units, draws["b"].er_units))
    return diff, lo, hi


def _check_shared(group: Sample, base: Sample) -> None:
    if group.n != base.n:
        raise ValueError("a group marked as the baseline must hold the baseline's points")


def _interval(values: np.ndarray, level: float, n_units: int | None) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("every baseline resample had a single ID value; no interval can be drawn")
    lo, hi = percentile_interval(values, level, n_units)
    return float(lo), float(hi)
