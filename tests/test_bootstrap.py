"""The run-level (cluster) bootstrap: the per-run-sums shortcut against refitting the drawn runs
with numpy, its coverage on simulated studies whose epochs are strongly correlated within a run,
and the large-study shortcuts against the exact computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtr, ndtri
from scipy.stats import t as student

from divrob.analysis import bootstrap as boot
from divrob.analysis.bootstrap import (
    BaselineLines,
    Sample,
    bootstrap_groups,
    expanded_tail,
    fit_sample,
    resample,
    resample_counts,
)
from divrob.analysis.comparison import compare
from divrob.analysis.robustness import analyse
from divrob.analysis.trends import bootstrap_band, effective_robustness_ci, effective_robustness_diff_ci

SLOPE, INTERCEPT = 0.9, -0.5  # the true line, in probit space
EPOCHS = 12


def study(rng, runs: int, *, shift: float = 0.0, run_sd: float = 0.15, scale=ndtr):
    """One group of `runs` runs x 12 epochs. Each run has its own offset from the true line
    (run_sd, shared by all its epochs) and tiny per-epoch noise, so a run's epochs are nearly
    one observation: the case where resampling points goes wrong."""
    x0 = rng.normal(-1.0, 0.3, runs)
    xt = x0[:, None] + 0.08 * np.arange(EPOCHS)[None, :] + 0.02 * rng.normal(size=(runs, EPOCHS))
    yt = SLOPE * xt + INTERCEPT + shift + run_sd * rng.normal(size=(runs, 1)) + 0.02 * rng.normal(size=(runs, EPOCHS))
    return scale(xt).ravel(), scale(yt).ravel(), np.repeat(np.arange(runs), EPOCHS)


# ---- the shortcut is exact ---------------------------------------------------------------------

def test_count_matrix_lines_equal_numpy_fits_of_the_drawn_runs():
    rng = np.random.default_rng(0)
    x, y, runs = study(rng, 7)
    sample = Sample.of(x, y, "probit", runs)
    draws = resample(sample, 50, np.random.default_rng(5))
    counts = resample_counts(np.random.default_rng(5), sample.n_units, 50)  # the same draws
    assert counts.shape == (50, 7) and np.all(counts.sum(axis=1) == 7)
    for b in range(50):
        # The reference: repeat every drawn run's epochs as often as it was drawn, refit.
        reps = counts[b][sample.unit].astype(int)
        xs, ys = np.repeat(sample.xt, reps), np.repeat(sample.yt, reps)
        slope, intercept = np.polyfit(xs, ys, 1)
        assert draws.slopes[b] == pytest.approx(slope, rel=1e-9, abs=1e-12)
        assert draws.intercepts[b] == pytest.approx(intercept, rel=1e-9, abs=1e-12)


def test_exact_effective_robustness_draws_equal_a_direct_computation():
    rng = np.random.default_rng(1)
    bx, by, bu = study(rng, 6)
    gx, gy, gu = study(rng, 5, shift=0.2)
    base, group = Sample.of(bx, by, "probit", bu), Sample.of(gx, gy, "probit", gu)
    draws = bootstrap_groups({"g": group}, 40, seed=3, baseline=base)
    base_draws = resample(base, 40, boot.stream(3, "baseline"))
    counts = resample_counts(boot.stream(3, "g"), group.n_units, 40)
    for b in range(40):
        w = counts[b][group.unit]
        pred = ndtr(base_draws.slopes[b] * group.xt + base_draws.intercepts[b])
        assert draws["g"].er[b] == pytest.approx(np.sum(w * (group.ood - pred)) / w.sum(), abs=1e-12)


def test_a_groups_interval_does_not_depend_on_the_other_groups():
    rng = np.random.default_rng(2)
    frames = []
    for name, shift in (("scratch", 0.0), ("a", 0.2), ("b", 0.4)):
        x, y, u = study(rng, 6, shift=shift)
        frames.append(pd.DataFrame({"distribution": name, "run_id": [f"{name}{i}" for i in u],
                                    "id_score": x, "ood_score": y}))
    points = pd.concat(frames, ignore_index=True)
    every = analyse(points, n_boot=300)
    fewer = analyse(points[points.distribution != "b"], n_boot=300)
    assert every.groups["a"].er == fewer.groups["a"].er
    assert np.array_equal(every.groups["a"].band[1], fewer.groups["a"].band[1])


# ---- coverage: the point of resampling runs ------------------------------------------------------

def _coverage(draw_and_check, studies: int = 300) -> dict[str, float]:
    rng = np.random.default_rng(2024)
    hits = {"runs": 0, "points": 0}
    for i in range(studies):
        for unit, ok in draw_and_check(rng, i).items():
            hits[unit] += ok
    return {k: v / studies for k, v in hits.items()}


def test_run_level_band_covers_the_true_line_at_least_90_percent():
    at = np.array([ndtr(-0.6)])
    truth = ndtr(SLOPE * -0.6 + INTERCEPT)

    def one(rng, i):
        x, y, runs = study(rng, 6)
        out = {}
        for unit, labels in (("runs", runs), ("points", None)):
            lo, hi = bootstrap_band(x, y, at, n_boot=1000, seed=i, units=labels)
            out[unit] = bool(lo[0] <= truth <= hi[0])
        return out

    cov = _coverage(one)
    assert cov["runs"] >= 0.90, f"run-level band coverage {cov['runs']:.3f}, point bootstrap {cov['points']:.3f}"
    assert cov["points"] < cov["runs"], cov


@pytest.mark.slow
def test_run_level_effective_robustness_covers_the_true_shift_at_least_90_percent():
    # On the linear scale a group shifted by 0.04 F1 has effective robustness 0.04 exactly.
    def linear(v):
        return 0.35 + 0.1 * v

    def one(rng, i):
        bx, by, bu = study(rng, 6, scale=linear)
        gx, gy, gu = study(rng, 6, shift=0.4, scale=linear)  # 0.4 before scaling = 0.04 F1
        out = {}
        for unit, kw in (("runs", {"units": gu, "baseline_units": bu}), ("points", {})):
            _, lo, hi = effective_robustness_ci(gx, gy, bx, by, "linear", n_boot=1000, seed=i, **kw)
            out[unit] = bool(lo <= 0.04 <= hi)
        return out

    cov = _coverage(one)
    assert cov["runs"] >= 0.90, f"run-level ER coverage {cov['runs']:.3f}, point bootstrap {cov['points']:.3f}"


@pytest.mark.slow
def test_run_level_difference_covers_zero_for_equal_groups_at_least_90_percent():
    def one(rng, i):
        bx, by, bu = study(rng, 6)
        ax_, ay, au = study(rng, 6, shift=0.2)
        cx, cy, cu = study(rng, 6, shift=0.2)
        out = {}
        for unit, kw in (("runs", {"a_units": au, "b_units": cu, "baseline_units": bu}), ("points", {})):
            _, lo, hi = effective_robustness_diff_ci(ax_, ay, cx, cy, bx, by, n_boot=1000, seed=i, **kw)
            out[unit] = bool(lo <= 0.0 <= hi)
        return out

    cov = _coverage(one)
    assert cov["runs"] >= 0.90, f"run-level compare coverage {cov['runs']:.3f}, point bootstrap {cov['points']:.3f}"


def test_expanded_tail_is_hesterbergs_and_plain_for_many_units():
    assert expanded_tail(0.95, None) == pytest.approx(0.025)
    assert expanded_tail(0.95, 100_000) == pytest.approx(0.025, abs=1e-4)
    n = 6
    assert expanded_tail(0.95, n) == pytest.approx(ndtr(-np.sqrt(n / (n - 1)) * student.ppf(0.975, n - 1)))
    assert expanded_tail(0.95, 6) < expanded_tail(0.95, 20) < 0.025


# ---- the large-study shortcuts against the exact computation --------------------------------------

def test_expanded_effective_robustness_matches_the_exact_draws(monkeypatch):
    rng = np.random.default_rng(3)
    bx, by, bu = study(rng, 40)
    gx, gy, gu = study(rng, 40, shift=0.2)
    base, group = Sample.of(bx, by, "probit", bu), Sample.of(gx, gy, "probit", gu)
    exact = bootstrap_groups({"g": group}, 400, 0, baseline=base)["g"]
    monkeypatch.setattr(boot, "EXACT_ER_ELEMENTS", 0)
    expanded = bootstrap_groups({"g": group}, 400, 0, baseline=base)["g"]
    assert not exact.approximate and expanded.approximate
    np.testing.assert_allclose(expanded.er, exact.er, atol=5e-4)


def test_normal_limit_of_the_resampled_sums_matches_multinomial_resampling(monkeypatch):
    rng = np.random.default_rng(4)
    bx, by, bu = study(rng, 2000, run_sd=0.1)
    gx, gy, gu = study(rng, 2000, shift=0.1, run_sd=0.1)
    base, group = Sample.of(bx, by, "probit", bu), Sample.of(gx, gy, "probit", gu)
    exact = bootstrap_groups({"g": group}, 1000, 0, baseline=base)["g"]
    monkeypatch.setattr(boot, "EXACT_UNITS_MAX", 0)
    normal = bootstrap_groups({"g": group}, 1000, 0, baseline=base)["g"]
    assert normal.approximate
    for a, b in ((exact.slopes, normal.slopes), (exact.er, normal.er)):
        assert np.mean(b) == pytest.approx(np.mean(a), abs=0.1 * np.std(a))
        assert np.std(b) == pytest.approx(np.std(a), rel=0.1)


def test_a_fixed_reference_line_is_exact_and_takes_its_own_transform():
    rng = np.random.default_rng(5)
    gx, gy, gu = study(rng, 8, shift=0.2)
    group = Sample.of(gx, gy, "logit", gu)  # the study read on logit axes ...
    draws = bootstrap_groups({"g": group}, 200, 0, baseline=(SLOPE, INTERCEPT, "probit"))["g"]
    residual = gy - ndtr(SLOPE * ndtri(gx) + INTERCEPT)
    counts = resample_counts(boot.stream(0, "g"), group.n_units, 200)
    w = counts[:, group.unit]
    np.testing.assert_allclose(draws.er, (w * residual).sum(1) / w.sum(1), atol=1e-12)  # ... the line on probit
    assert not draws.approximate


def test_bad_arguments_say_what_is_wrong():
    with pytest.raises(ValueError, match="n_boot"):
        resample(Sample.of([0.2, 0.3], [0.1, 0.2], "probit"), 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="units label"):
        Sample.of([0.2, 0.3], [0.1, 0.2], "probit", units=["a"])
    with pytest.raises(ValueError, match="at least 1 point"):
        resample(Sample.of([np.nan], [0.1], "probit"), 10, np.random.default_rng(0))


def test_fit_sample_is_least_squares():
    rng = np.random.default_rng(6)
    x, y, u = study(rng, 5)
    s = Sample.of(x, y, "probit", u)
    assert fit_sample(s) == pytest.approx(tuple(np.polyfit(s.xt, s.yt, 1)))
    assert isinstance(BaselineLines(*fit_sample(s)).predict(s), np.ndarray)


# ---- verdicts need runs --------------------------------------------------------------------------

def _points(runs_per_group: int, shifts=(("scratch", 0.0), ("a", 0.5), ("b", 0.0))) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    frames = []
    for name, shift in shifts:
        x, y, u = study(rng, runs_per_group, shift=shift, run_sd=0.02)
        frames.append(pd.DataFrame({"distribution": name, "run_id": [f"{name}{i}" for i in u],
                                    "id_score": x, "ood_score": y}))
    return pd.concat(frames, ignore_index=True)


def test_fewer_than_three_runs_give_no_verdict_even_when_the_interval_excludes_zero():
    few = analyse(_points(2), n_boot=500)
    assert few.groups["a"].er[1] > 0  # the interval alone would say "above"
    assert few.groups["a"].verdict == "too few runs"
    c = compare(_points(2), "a", "b", n_boot=500)
    assert c.verdict == "too few runs" and "too few runs to tell" in c.sentence().lower()
    assert "more effectively robust" not in c.sentence()
    enough = analyse(_points(3), n_boot=500)
    assert enough.groups["a"].verdict == "above" and enough.groups["scratch"].verdict == "baseline"
    c = compare(_points(3), "a", "b", n_boot=500)
    assert c.verdict == "a" and "a is more effectively robust than b" in c.sentence()
