"""Linear trends of OOD vs ID metric on a transformed scale, their bootstrap bands, and
effective robustness (Taori et al. 2020; Miller et al. 2021).

A trend is the least-squares line of transform(OOD) on transform(ID). Bootstraps resample
points with replacement and refit in closed form, all resamples at once as (n_boot, n) arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Aliased: `transform` is also the name of every function's transform-name argument.
from divrob.analysis.transforms import inverse
from divrob.analysis.transforms import transform as to_scale

# Resamples are drawn and reduced in row chunks of about this many elements: memory stays
# bounded (10k points x 1k resamples at once would be ~200 MB) and each chunk stays in cache.
_CHUNK_ELEMENTS = 1 << 19


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
        x = to_scale(id_metric, self.transform)
        return inverse(self.slope * x + self.intercept, self.transform)


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
    name = f"group {group!r}: " if group else ""
    if x.size < 2:
        raise ValueError(f"{name}a trend needs at least 2 points with both metrics, got {x.size}")
    xt, yt = _transform_pair(x, y, transform)
    dx, dy = xt - xt.mean(), yt - yt.mean()
    sxx = float(dx @ dx)
    if sxx <= 1e-12 * max(float(xt @ xt), 1.0):
        raise ValueError(f"{name}all {x.size} points have the same ID metric; no line fits")
    slope = float(dx @ dy) / sxx
    intercept = float(yt.mean() - slope * xt.mean())
    ss_res = float(np.sum((dy - slope * dx) ** 2))
    ss_tot = float(dy @ dy)
    # sklearn's convention for a constant target: perfect fit scores 1, anything else 0.
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0)
    return Trend(str(group), slope, intercept, r2, int(x.size), transform)


def fit_trends(df, group_col: str = "group", id_col: str = "id_f1", ood_col: str = "ood_f1",
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


def _resampled_lines(xt: np.ndarray, yt: np.ndarray, n_boot: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form least squares on `n_boot` resamples (with replacement) of the points.

    Degenerate resamples (all resampled x equal) come back as NaN so callers can drop them
    while keeping rows aligned with other resamples drawn alongside.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    n = xt.size
    # Centring on the full-sample means first avoids cancellation in the sums below.
    mx0, my0 = xt.mean(), yt.mean()
    xc, yc = xt - mx0, yt - my0
    tol = 1e-12 * max(float(xc @ xc) / n, 1e-300)
    slopes = np.empty(int(n_boot))
    intercepts = np.empty(int(n_boot))
    rows = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, int(n_boot), rows):
        stop = min(start + rows, int(n_boot))
        idx = _draw(rng, n, stop - start)
        slopes[start:stop], intercepts[start:stop] = _fit_rows(xc[idx], yc[idx], tol, mx0, my0)
    return slopes, intercepts


def _draw(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    """An (n_boot, n) matrix of resample indices; int32 halves the memory traffic."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    dtype = np.int32 if n < 2**31 else np.int64
    return rng.integers(0, n, size=(int(n_boot), n), dtype=dtype)


def _fit_rows(xs: np.ndarray, ys: np.ndarray, tol: float, mx0: float, my0: float) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form least squares of every row of ys on the same row of xs (centred data, shifted
    back by mx0/my0); rows with no spread in x give NaN, so callers can drop them."""
    n = xs.shape[1]
    mx, my = xs.mean(axis=1), ys.mean(axis=1)
    sxx = np.einsum("ij,ij->i", xs, xs) / n - mx * mx
    sxy = np.einsum("ij,ij->i", xs, ys) / n - mx * my
    bad = sxx <= tol
    slope = np.where(bad, np.nan, sxy / np.where(bad, 1.0, sxx))
    return slope, my0 + my - slope * (mx0 + mx)


def bootstrap_lines(id_metric, ood_metric, transform: str = "probit", n_boot: int = 1000,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Slopes and intercepts (transformed scale) of lines fit to bootstrap resamples.

    Resamples whose ID values are all equal have no line and are dropped, so fewer than
    `n_boot` lines can come back (often with 2-3 points).
    """
    x, y = _paired(id_metric, ood_metric)
    if x.size < 2:
        raise ValueError(f"bootstrapping a trend needs at least 2 points, got {x.size}")
    xt, yt = _transform_pair(x, y, transform)
    slopes, intercepts = _resampled_lines(xt, yt, n_boot, np.random.default_rng(seed))
    ok = np.isfinite(slopes)
    return slopes[ok], intercepts[ok]


def _percentiles(values: np.ndarray, level: float, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(values, [tail, 100.0 - tail], axis=axis)
    return lo, hi


def bootstrap_band(id_metric, ood_metric, grid, transform: str = "probit", n_boot: int = 1000,
                   seed: int = 0, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise percentile band of the bootstrapped lines over `grid`, all in metric units."""
    slopes, intercepts = bootstrap_lines(id_metric, ood_metric, transform, n_boot, seed)
    if slopes.size == 0:
        raise ValueError("every bootstrap resample had a single ID value; no band can be drawn")
    g = _transform_1d(grid, transform)
    lines = slopes[:, None] * g[None, :] + intercepts[:, None]
    # Percentiles commute with the monotone inverse, so take them on the cheap linear scale.
    lo, hi = _percentiles(lines, level)
    return inverse(lo, transform), inverse(hi, transform)


def _transform_1d(values, name: str) -> np.ndarray:
    return np.atleast_1d(to_scale(values, name)).ravel()


def effective_robustness(id_metric, ood_metric, baseline: Trend) -> np.ndarray:
    """OOD metric minus what the baseline trend predicts from the ID metric (metric units)."""
    ood = np.asarray(ood_metric, dtype=np.float64)
    return ood - baseline.predict(id_metric)


def effective_robustness_ci(id_metric, ood_metric, baseline_id, baseline_ood,
                            transform: str = "probit", n_boot: int = 1000, seed: int = 0,
                            level: float = 0.95,
                            is_baseline: bool = False) -> tuple[float, float, float]:
    """Mean effective robustness of a group against a baseline fit, with a bootstrap CI.

    Each resample redraws the group's points and the baseline's points and refits the baseline,
    so the interval carries the uncertainty of both; the point estimate uses all the data.
    `is_baseline`: the group is the baseline itself (same points), so one draw serves both.
    """
    x, y = _paired(id_metric, ood_metric)
    bx, by = _paired(baseline_id, baseline_ood)
    if x.size < 1:
        raise ValueError("effective robustness needs at least 1 point in the group")
    baseline = fit_trend(bx, by, transform, group="baseline")
    mean = float(np.mean(effective_robustness(x, y, baseline)))
    boot = _er_boot_means([(x, y)], bx, by, transform, n_boot, seed, (is_baseline,))[:, 0]
    lo, hi = _percentiles(boot, level)
    return mean, float(lo), float(hi)


def effective_robustness_diff_ci(a_id, a_ood, b_id, b_ood, baseline_id, baseline_ood,
                                 transform: str = "probit", n_boot: int = 1000, seed: int = 0,
                                 level: float = 0.95, a_is_baseline: bool = False,
                                 b_is_baseline: bool = False) -> tuple[float, float, float]:
    """Mean effective robustness of group A minus that of group B, with a bootstrap CI.

    Both are measured against one baseline fit. Every resample redraws A, B and the baseline
    and refits the baseline once for both groups, so the shared baseline uncertainty partly
    cancels in the difference instead of being counted twice. A group that *is* the baseline
    reuses the baseline's resample (its points cannot be drawn twice independently).
    """
    a, b = _paired(a_id, a_ood), _paired(b_id, b_ood)
    bx, by = _paired(baseline_id, baseline_ood)
    if a[0].size < 1 or b[0].size < 1:
        raise ValueError("comparing effective robustness needs at least 1 point in each group")
    baseline = fit_trend(bx, by, transform, group="baseline")
    diff = float(np.mean(effective_robustness(*a, baseline))
                 - np.mean(effective_robustness(*b, baseline)))
    boot = _er_boot_means([a, b], bx, by, transform, n_boot, seed,
                          shares_baseline=(a_is_baseline, b_is_baseline))
    lo, hi = _percentiles(boot[:, 0] - boot[:, 1], level)
    return diff, float(lo), float(hi)


def _er_boot_means(groups, bx, by, transform: str, n_boot: int, seed: int,
                   shares_baseline=None) -> np.ndarray:
    """(resamples, groups) bootstrap means of effective robustness; degenerate baseline
    resamples (a single ID value, so no line) are dropped."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    shares = tuple(shares_baseline or (False,) * len(groups))
    for (gx, _), shared in zip(groups, shares):
        if shared and gx.size != np.size(bx):
            raise ValueError("a group marked as the baseline must hold the baseline's points")
    # Independent streams: one for the baseline, one per group; row i of each is draw i.
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(1 + len(groups))]
    bxt, byt = _transform_pair(bx, by, transform)
    gxt = [to_scale(gx, transform) for gx, _ in groups]
    n = bxt.size
    mx0, my0 = bxt.mean(), byt.mean()
    xc, yc = bxt - mx0, byt - my0
    tol = 1e-12 * max(float(xc @ xc) / n, 1e-300)
    widest = max([n] + [g.size for g in gxt])
    rows = max(1, _CHUNK_ELEMENTS // widest)
    out = np.empty((int(n_boot), len(groups)))
    for start in range(0, int(n_boot), rows):
        stop = min(start + rows, int(n_boot))
        b_idx = _draw(rngs[0], n, stop - start)
        slope, intercept = _fit_rows(xc[b_idx], yc[b_idx], tol, mx0, my0)
        for k, ((_, gy), gt) in enumerate(zip(groups, gxt)):
            # A group that is the baseline must reuse the baseline's draw: its points are the
            # same points, and resampling them independently would double their weight.
            idx = b_idx if shares[k] else _draw(rngs[1 + k], gt.size, stop - start)
            pred = inverse(slope[:, None] * gt[idx] + intercept[:, None], transform)
            out[start:stop, k] = np.mean(gy[idx] - pred, axis=1)
    out = out[np.isfinite(out).all(axis=1)]
    if out.shape[0] == 0:
        raise ValueError("every baseline resample had a single ID value; no interval can be drawn")
    return out
