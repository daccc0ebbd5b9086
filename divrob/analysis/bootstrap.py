"""The bootstrap behind every interval divrob prints: resample whole runs (a cluster bootstrap),
or single points on request, and refit the trend in closed form.

The fine-tuning epochs of one run are repeated measurements of one model, so a study's 72 points
may really be 6 independent runs. A run-level resample draws a group's R runs with replacement and
keeps every epoch of each run drawn. A resample is held as counts (how often each run was drawn),
and everything a trend needs is a sum over points, so the per-run sums S (R x k) give all
resamples at once: counts (B x R) @ S. A bootstrap over R runs thus costs O(B·R) however many
epochs each run has. The point bootstrap is the same code with every point its own unit.

Two shortcuts keep very large studies fast, both said in `Draws.approximate`:
- above `EXACT_UNITS_MAX` units the resampled sums are drawn from their normal limit, with the
  exact mean and covariance of the multinomial resampling (R·mean, R·cov of the per-unit sums);
- above `EXACT_ER_ELEMENTS` resampled points, a group's effective robustness under a resampled
  baseline line uses a second-order expansion of the prediction around the baseline's fit
  (per-unit sums again) instead of evaluating every point under every resampled line.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from divrob.analysis.transforms import inverse, inverse_slopes
from divrob.analysis.transforms import transform as to_scale

# Above these sizes the shortcuts take over; both agree with the exact draws to well within
# an interval's width there (tests/test_bootstrap.py), and 100,000 runs then take a second.
EXACT_UNITS_MAX = 2_000
EXACT_ER_ELEMENTS = 1 << 22
# Count matrices are drawn in row chunks of about this many elements: memory stays bounded and
# each chunk stays in cache.
_CHUNK_ELEMENTS = 1 << 20


def stream(seed: int, key: str) -> np.random.Generator:
    """The random stream of one named sample: a group's draws depend on the seed and its name
    only, so filtering other groups out never changes its interval, and a group that is also
    the baseline is drawn once for both roles."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(zlib.crc32(key.encode()),)))


@dataclass(frozen=True)
class Sample:
    """One group's points on the transformed scale, each tagged with its resampling unit."""

    xt: np.ndarray  # transformed ID metric
    yt: np.ndarray  # transformed OOD metric
    ood: np.ndarray  # OOD metric in metric units (effective robustness is measured in these)
    unit: np.ndarray  # unit index (0 .. n_units - 1) of every point
    n_units: int
    transform: str

    @classmethod
    def of(cls, id_metric, ood_metric, transform: str, units=None) -> "Sample":
        """Points with both metrics finite; `units` labels each point's run (None: every point is
        its own unit, the point bootstrap)."""
        x = np.asarray(id_metric, dtype=np.float64).ravel()
        y = np.asarray(ood_metric, dtype=np.float64).ravel()
        if x.shape != y.shape:
            raise ValueError(f"ID and OOD metrics differ in length: {x.size} vs {y.size}")
        ok = np.isfinite(x) & np.isfinite(y)
        if units is None:
            codes = np.arange(int(ok.sum()))
        else:
            labels = np.asarray(units).ravel()
            if labels.shape != x.shape:
                raise ValueError(f"units label {labels.size} points, the metrics {x.size}")
            # Sorted codes: a unit's draws do not depend on the order its rows came in.
            import pandas as pd  # here: trends drawn before pandas loads (analysis.glance) need no units

            codes = pd.factorize(labels[ok], sort=True)[0]
        n_units = int(codes.max()) + 1 if codes.size else 0
        return cls(to_scale(x[ok], transform), to_scale(y[ok], transform), y[ok], codes.astype(np.intp),
                   n_units, transform)

    @property
    def n(self) -> int:
        return int(self.xt.size)

    def per_unit(self, *columns: np.ndarray) -> np.ndarray:
        """(n_units, len(columns)) sums of each per-point column over the points of each unit."""
        return np.stack([np.bincount(self.unit, weights=c, minlength=self.n_units) for c in columns], axis=1)

    def ols_sums(self) -> tuple[np.ndarray, float, float]:
        """Per-unit [n, Σx, Σy, Σxx, Σxy] of the points centred on the sample's means (centring
        first avoids cancellation), and those means."""
        cx, cy = float(self.xt.mean()), float(self.yt.mean())
        x, y = self.xt - cx, self.yt - cy
        return self.per_unit(np.ones_like(x), x, y, x * x, x * y), cx, cy


@dataclass(frozen=True)
class BaselineLines:
    """The baseline trend effective robustness is measured against: its fit on all the data, and
    one refit per resample (None for an external reference line, which has no sampling error)."""

    slope: float
    intercept: float
    slopes: np.ndarray | None = None
    intercepts: np.ndarray | None = None
    transform: str | None = None  # a reference line's own scale, when not the samples'
    n_units: int | None = None  # units the resampled lines were drawn from (None: fixed line)

    def predict(self, sample: "Sample") -> np.ndarray:
        """The fitted line's OOD metric at the sample's ID values (metric units)."""
        x = sample.xt
        if self.transform is not None and self.transform != sample.transform:
            x = to_scale(inverse(x, sample.transform), self.transform)
        return inverse(self.slope * x + self.intercept, self.transform or sample.transform)

    def rows(self, start: int, stop: int) -> tuple[np.ndarray | float, np.ndarray | float]:
        if self.slopes is None:
            return self.slope, self.intercept
        return self.slopes[start:stop], self.intercepts[start:stop]


@dataclass(frozen=True)
class Draws:
    """One sample's bootstrap: the refitted line of every resample (NaN where a resample has a
    single ID value) and, against a baseline, its mean effective robustness (NaN where the
    baseline resample had no line)."""

    slopes: np.ndarray
    intercepts: np.ndarray
    er: np.ndarray | None
    approximate: bool  # a shortcut of the module docstring was taken
    n_units: int  # units of the sample: what the lines' interval is expanded for
    er_units: int | None  # fewest units behind `er` (the sample's or the moving baseline's)

    def lines(self) -> tuple[np.ndarray, np.ndarray]:
        ok = np.isfinite(self.slopes)
        return self.slopes[ok], self.intercepts[ok]

    def as_baseline(self, slope: float, intercept: float) -> BaselineLines:
        return BaselineLines(slope, intercept, self.slopes, self.intercepts, n_units=self.n_units)


def lines_from_sums(sums: np.ndarray, cx: float, cy: float, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares slope and intercept from rows of [n, Σx, Σy, Σxx, Σxy] (centred on cx, cy);
    rows whose x variance is at most `tol` get NaN."""
    n, sx, sy, sxx, sxy = (sums[:, k] for k in range(5))
    with np.errstate(invalid="ignore", divide="ignore"):
        mx, my = sx / n, sy / n
        vxx = sxx / n - mx * mx
        vxy = sxy / n - mx * my
        bad = ~(vxx > tol)
        slope = np.where(bad, np.nan, vxy / np.where(bad, 1.0, vxx))
    return slope, cy + my - slope * (cx + mx)


def fit_sample(sample: Sample) -> tuple[float, float]:
    """The least-squares line of the whole sample (what every resample is compared with)."""
    sums, cx, cy = sample.ols_sums()
    slope, intercept = lines_from_sums(sums.sum(axis=0, keepdims=True), cx, cy, _tol(sums))
    return float(slope[0]), float(intercept[0])


def _tol(sums: np.ndarray) -> float:
    n, sxx = sums[:, 0].sum(), sums[:, 3].sum()
    return 1e-12 * max(float(sxx / max(n, 1.0)), 1e-300)


def resample(sample: Sample, n_boot: int, rng: np.random.Generator, *,
             baseline: BaselineLines | None = None, is_baseline: bool = False) -> Draws:
    """Refit the sample's line on `n_boot` resamples of its units; with a `baseline` (or when the
    sample *is* the baseline, whose own resampled lines then serve) also its mean effective
    robustness in each resample."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if sample.n < 1:
        raise ValueError("a bootstrap needs at least 1 point with both metrics")
    ols, cx, cy = sample.ols_sums()
    tol = _tol(ols)
    if is_baseline:
        baseline = BaselineLines(*fit_sample(sample), n_units=sample.n_units)
    want_er = baseline is not None
    # A fixed (external) line does not move: each point's residual is fixed, and a resample's
    # effective robustness is a weighted mean of them, exact at any size.
    fixed = want_er and not is_baseline and baseline.slopes is None
    exact_counts = sample.n_units <= EXACT_UNITS_MAX
    exact_er = exact_counts and n_boot * sample.n <= EXACT_ER_ELEMENTS
    stats = ols
    if fixed:
        stats = np.hstack([ols, sample.per_unit(sample.ood - baseline.predict(sample))])
    elif want_er and not exact_er:
        stats = np.hstack([ols, _expansion_sums(sample, baseline)])
    slopes = np.empty(int(n_boot))
    intercepts = np.empty(int(n_boot))
    er = np.empty(int(n_boot)) if want_er else None
    width = sample.n if want_er and exact_er and not fixed else sample.n_units
    for start, stop, counts, sums in _resampled_sums(stats, n_boot, rng, exact_counts, width):
        slopes[start:stop], intercepts[start:stop] = lines_from_sums(sums[:, :5], cx, cy, tol)
        if not want_er:
            continue
        if fixed:
            er[start:stop] = sums[:, 5] / sums[:, 0]
            continue
        if is_baseline:
            b_slope, b_icept = slopes[start:stop], intercepts[start:stop]
        else:
            b_slope, b_icept = baseline.rows(start, stop)
        if exact_er:
            er[start:stop] = _exact_er(sample, counts, b_slope, b_icept)
        else:
            er[start:stop] = _expanded_er(sums, baseline, b_slope, b_icept)
    moving = want_er and not fixed
    er_units = None
    if want_er:
        er_units = min(sample.n_units, baseline.n_units or sample.n_units)
    return Draws(slopes, intercepts, er, not exact_counts or (moving and not exact_er), sample.n_units, er_units)


def _resampled_sums(stats: np.ndarray, n_boot: int, rng: np.random.Generator, exact: bool,
                    width: int) -> Iterator[tuple[int, int, np.ndarray | None, np.ndarray]]:
    """(start, stop, counts, counts @ stats) per chunk of resamples; counts is None when the sums
    come from their normal limit."""
    n_units = stats.shape[0]
    rows = max(1, _CHUNK_ELEMENTS // max(width, 1))
    if not exact:
        mean = n_units * stats.mean(axis=0)
        cov = n_units * np.cov(stats, rowvar=False, ddof=0).reshape(stats.shape[1], stats.shape[1])
        vals, vecs = np.linalg.eigh(cov)
        root = vecs * np.sqrt(np.clip(vals, 0.0, None))
    for start in range(0, int(n_boot), rows):
        stop = min(start + rows, int(n_boot))
        if not exact:
            z = rng.standard_normal((stop - start, stats.shape[1]))
            yield start, stop, None, mean + z @ root.T
            continue
        counts = resample_counts(rng, n_units, stop - start)
        yield start, stop, counts, counts @ stats


def resample_counts(rng: np.random.Generator, n_units: int, n_boot: int) -> np.ndarray:
    """(n_boot, n_units) float counts: row b says how often each unit was drawn in resample b
    (n_units draws with replacement, so every row sums to n_units)."""
    dtype = np.int32 if n_units * n_boot < 2**31 else np.int64
    idx = rng.integers(0, n_units, size=(n_boot, n_units), dtype=dtype)
    idx += (np.arange(n_boot, dtype=dtype) * n_units)[:, None]
    return np.bincount(idx.ravel(), minlength=n_boot * n_units).reshape(n_boot, n_units).astype(np.float64)


def _exact_er(sample: Sample, counts: np.ndarray, b_slope, b_icept) -> np.ndarray:
    """Mean of OOD minus the resampled baseline's prediction over each resample's points."""
    w = counts[:, sample.unit]
    b_slope = np.asarray(b_slope, dtype=np.float64).reshape(-1, 1)
    b_icept = np.asarray(b_icept, dtype=np.float64).reshape(-1, 1)
    pred = inverse(b_slope * sample.xt[None, :] + b_icept, sample.transform)
    with np.errstate(invalid="ignore"):
        return np.einsum("ij,ij->i", w, sample.ood[None, :] - pred) / w.sum(axis=1)


def _expansion_sums(sample: Sample, baseline: BaselineLines) -> np.ndarray:
    """Per-unit sums for the second-order expansion of Σ inverse(a·x + b) around the baseline's
    fit (a0, b0): [Σ(ood - inverse(u0)), Σd1, Σd1·x, Σd2, Σd2·x, Σd2·x²] with u0 = a0·x + b0."""
    x = sample.xt
    u0 = baseline.slope * x + baseline.intercept
    d1, d2 = inverse_slopes(u0, sample.transform)
    return sample.per_unit(sample.ood - inverse(u0, sample.transform), d1, d1 * x, d2, d2 * x, d2 * x * x)


def _expanded_er(sums: np.ndarray, baseline: BaselineLines, b_slope, b_icept) -> np.ndarray:
    r0, g0, g1, h0, h1, h2 = (sums[:, 5 + k] for k in range(6))
    da = np.asarray(b_slope, dtype=np.float64) - baseline.slope
    db = np.asarray(b_icept, dtype=np.float64) - baseline.intercept
    shift = da * g1 + db * g0 + 0.5 * (da * da * h2 + 2.0 * da * db * h1 + db * db * h0)
    return (r0 - shift) / sums[:, 0]


def percentile_interval(values: np.ndarray, level: float, n_units: int | None = None,
                        axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval (NaN draws left out), expanded for few units.

    With few independent units a plain percentile interval is too narrow: the bootstrap's
    spread lacks the factor (n-1)/n and its tails are normal where Student's t belongs. The
    expanded percentile interval (Hesterberg 2015, "What teachers should know about the
    bootstrap", §4.2) takes the percentiles at tail Φ(-sqrt(n/(n-1)) · t(n-1, 1-α/2)) instead
    of α/2; with many units it is the plain interval. `n_units` None: no expansion.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    tail = expanded_tail(level, n_units) * 100.0
    values = np.asarray(values, dtype=np.float64)
    # nanpercentile works column by column in Python; the plain one is vectorised.
    pick = np.nanpercentile if np.isnan(values).any() else np.percentile
    lo, hi = pick(values, [tail, 100.0 - tail], axis=axis)
    return lo, hi


def expanded_tail(level: float, n_units: int | None) -> float:
    """The lower-tail probability at which the (expanded) percentile interval is read."""
    plain = (1.0 - level) / 2.0
    if n_units is None or n_units < 2:
        return plain
    from scipy.special import ndtr, stdtrit  # not scipy.stats: slow to import for one quantile

    n = float(n_units)
    return float(ndtr(-np.sqrt(n / (n - 1.0)) * stdtrit(n - 1.0, 1.0 - plain)))


def bootstrap_groups(samples: dict[str, Sample], n_boot: int, seed: int, *,
                     baseline: "Sample | tuple | None" = None,
                     baseline_group: str | None = None, baseline_key: str = "baseline") -> dict[str, Draws]:
    """Every sample's draws, with its effective robustness against one baseline resampled once.

    The baseline is the sample named `baseline_group` (its own draws then serve as the baseline
    lines: its points cannot be drawn twice independently), or a separate `baseline` sample
    (drawn from the stream `baseline_key`), or a fixed (slope, intercept[, transform]) line, or
    None (no effective robustness). Resampling the baseline once for all groups lets its
    uncertainty cancel where two groups are compared instead of being counted twice.
    """
    out: dict[str, Draws] = {}
    lines = None
    if baseline_group is not None:
        own = samples[baseline_group]
        out[baseline_group] = resample(own, n_boot, stream(seed, baseline_group), is_baseline=True)
        lines = out[baseline_group].as_baseline(*fit_sample(own))
    elif isinstance(baseline, Sample):
        lines = resample(baseline, n_boot, stream(seed, baseline_key)).as_baseline(*fit_sample(baseline))
    elif baseline is not None:
        lines = BaselineLines(float(baseline[0]), float(baseline[1]), transform=baseline[2] if len(baseline) > 2 else None)
    for name, s in samples.items():
        if name not in out:
            out[name] = resample(s, n_boot, stream(seed, name), baseline=lines)
    return out
