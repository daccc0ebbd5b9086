"""Trend fits, bootstrap bands and effective robustness on synthetic data with a known truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtr

from divrob.analysis.transforms import TRANSFORMS, clipped, inverse, inverse_slopes, metric_ticks, transform
from divrob.analysis.trends import (
    Trend,
    bootstrap_band,
    bootstrap_lines,
    effective_robustness,
    effective_robustness_ci,
    effective_robustness_diff_ci,
    fit_trend,
    fit_trends,
)

SLOPE, INTERCEPT = 0.8, -0.3  # the true line, in probit space


def synthetic(n: int, rng: np.random.Generator, noise: float = 0.05, shift: float = 0.0):
    """(ID, OOD) metric pairs whose probits lie on the true line plus Gaussian noise;
    `shift` is added to OOD afterwards, in metric units."""
    xt = rng.uniform(-1.5, 0.3, n)  # ID F1 from about 0.07 to 0.62, like iWildCam
    yt = SLOPE * xt + INTERCEPT + noise * rng.normal(size=n)
    return ndtr(xt), ndtr(yt) + shift


def true_ood(id_metric):
    return ndtr(SLOPE * transform(id_metric) + INTERCEPT)


# ---- transforms -------------------------------------------------------------------------

@pytest.mark.parametrize("name", TRANSFORMS)
def test_transform_inverse_round_trip(name):
    x = np.linspace(0.01, 0.99, 41)
    np.testing.assert_allclose(inverse(transform(x, name), name), x, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["probit", "logit"])
def test_transform_clips_zero_and_one(name):
    y = transform([0.0, 1.0], name, eps=1e-4)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(inverse(y, name), [1e-4, 1 - 1e-4])


@pytest.mark.parametrize("name", TRANSFORMS)
def test_inverse_slopes_are_the_derivatives_of_inverse(name):
    y = np.linspace(-2.5, 2.5, 11)
    h = 1e-4
    d1, d2 = inverse_slopes(y, name)
    np.testing.assert_allclose(d1, (inverse(y + h, name) - inverse(y - h, name)) / (2 * h), atol=1e-7)
    second = (inverse(y + h, name) - 2 * inverse(y, name) + inverse(y - h, name)) / h**2
    np.testing.assert_allclose(d2, second, atol=1e-5)


def test_clipped_counts_what_the_transform_moves():
    values = [0.0, 1.0, 0.5, 0.99995, np.nan]
    assert clipped(values, "probit") == 3 and clipped(values, "logit") == 3
    assert clipped(values, "linear") == 0


def test_probit_matches_known_values():
    np.testing.assert_allclose(transform([0.5, 0.975]), [0.0, 1.959963984540054])


def test_bad_transform_name_raises_listing_valid_ones():
    with pytest.raises(ValueError, match="probit.*logit.*linear"):
        transform([0.5], "sqrt")
    with pytest.raises(ValueError, match="probit"):
        inverse([0.5], "sqrt")


def test_metric_ticks_are_round_and_in_range():
    ticks = metric_ticks(0.04, 0.7, "probit", max_ticks=6)
    assert 3 <= len(ticks) <= 6
    assert np.all((ticks >= 0.04) & (ticks <= 0.7))
    assert set(ticks) <= {0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6}


# ---- fitting ----------------------------------------------------------------------------

def test_fit_recovers_known_line():
    x, y = synthetic(400, np.random.default_rng(0))
    trend = fit_trend(x, y, group="imagenet")
    assert trend.slope == pytest.approx(SLOPE, abs=0.03)
    assert trend.intercept == pytest.approx(INTERCEPT, abs=0.03)
    assert 0.9 < trend.r2 < 1.0
    assert (trend.n, trend.group, trend.transform) == (400, "imagenet", "probit")
    grid = np.array([0.1, 0.3, 0.5])
    np.testing.assert_allclose(trend.predict(grid), true_ood(grid), atol=0.01)


def test_fit_is_exact_on_noise_free_points_and_r2_drops_with_noise():
    x, y = synthetic(50, np.random.default_rng(1), noise=0.0)
    exact = fit_trend(x, y)
    assert (exact.slope, exact.intercept, exact.r2) == pytest.approx((SLOPE, INTERCEPT, 1.0))
    noisy = fit_trend(*synthetic(50, np.random.default_rng(1), noise=0.5))
    assert noisy.r2 < 0.7


def test_fit_on_logit_scale_differs_from_probit():
    x, y = synthetic(100, np.random.default_rng(2))
    assert fit_trend(x, y, "logit").slope != pytest.approx(fit_trend(x, y, "probit").slope)


def test_fit_rejects_too_few_points_and_constant_id():
    with pytest.raises(ValueError, match="at least 2 points"):
        fit_trend([0.3], [0.2], group="tiny")
    with pytest.raises(ValueError, match="same ID metric"):
        fit_trend([0.3, 0.3, 0.3], [0.1, 0.2, 0.25])
    with pytest.raises(ValueError, match="differ in length"):
        fit_trend([0.3, 0.4], [0.2])


def test_fit_ignores_pairs_with_a_missing_metric():
    trend = fit_trend([0.1, 0.2, np.nan, 0.4], [0.05, 0.1, 0.2, np.nan])
    assert trend.n == 2


def test_fit_trends_per_group_sorted_and_skips_unfittable():
    rng = np.random.default_rng(3)
    frames = []
    for g in ["scratch", "imagenet"]:
        x, y = synthetic(30, rng)
        frames.append(pd.DataFrame({"group": g, "id_score": x, "ood_score": y}))
    frames.append(pd.DataFrame({"group": ["lonely"], "id_score": [0.3], "ood_score": [0.2]}))
    trends = fit_trends(pd.concat(frames))
    assert list(trends) == ["imagenet", "scratch"]
    assert all(isinstance(t, Trend) and t.n == 30 for t in trends.values())
    with pytest.raises(ValueError, match="unknown transform"):
        fit_trends(pd.concat(frames), transform="sqrt")


# ---- bootstrap ----------------------------------------------------------------------------

def test_bootstrap_lines_centre_on_the_fit_and_are_reproducible():
    x, y = synthetic(200, np.random.default_rng(4))
    slopes, intercepts = bootstrap_lines(x, y, n_boot=500, seed=7)
    assert slopes.shape == intercepts.shape == (500,)
    fit = fit_trend(x, y)
    assert np.mean(slopes) == pytest.approx(fit.slope, abs=0.01)
    # The bootstrap spread of the slope should match its textbook standard error.
    xt = transform(x)
    resid = transform(y) - (fit.slope * xt + fit.intercept)
    se = np.sqrt(np.sum(resid**2) / (len(x) - 2) / np.sum((xt - xt.mean()) ** 2))
    assert np.std(slopes) == pytest.approx(se, rel=0.2)
    again, _ = bootstrap_lines(x, y, n_boot=500, seed=7)
    np.testing.assert_array_equal(slopes, again)
    other, _ = bootstrap_lines(x, y, n_boot=500, seed=8)
    assert not np.array_equal(slopes, other)


def test_bootstrap_drops_degenerate_resamples():
    # With two points, about half of the resamples pick the same point twice.
    slopes, intercepts = bootstrap_lines([0.2, 0.4], [0.1, 0.3], n_boot=400)
    assert 100 < len(slopes) < 300
    assert np.all(np.isfinite(slopes)) and np.all(np.isfinite(intercepts))


def test_band_contains_fit_and_narrows_with_more_points():
    rng = np.random.default_rng(5)
    grid = np.linspace(0.1, 0.5, 9)
    widths = []
    for n in (20, 500):
        x, y = synthetic(n, rng)
        lo, hi = bootstrap_band(x, y, grid, n_boot=400)
        fit = fit_trend(x, y).predict(grid)
        assert np.all(lo <= fit) and np.all(fit <= hi)
        widths.append(np.mean(hi - lo))
    assert widths[1] < widths[0] / 2


def test_band_covers_true_line_about_95_percent_of_the_time():
    rng = np.random.default_rng(6)
    at = np.array([0.3])
    truth = true_ood(at)[0]
    hits = 0
    draws = 200
    for i in range(draws):
        x, y = synthetic(30, rng, noise=0.1)
        lo, hi = bootstrap_band(x, y, at, n_boot=300, seed=i)
        hits += bool(lo[0] <= truth <= hi[0])
    assert 0.88 <= hits / draws <= 0.99


def test_band_level_controls_width():
    x, y = synthetic(60, np.random.default_rng(7))
    grid = np.array([0.2, 0.4])
    lo95, hi95 = bootstrap_band(x, y, grid, level=0.95)
    lo50, hi50 = bootstrap_band(x, y, grid, level=0.5)
    assert np.all(hi50 - lo50 < hi95 - lo95)
    with pytest.raises(ValueError, match="level"):
        bootstrap_band(x, y, grid, level=95)


# ---- effective robustness ---------------------------------------------------------------

def test_effective_robustness_measures_a_known_shift():
    rng = np.random.default_rng(8)
    baseline = fit_trend(*synthetic(300, rng, noise=0.0))
    x, y = synthetic(100, rng, noise=0.0, shift=0.05)
    er = effective_robustness(x, y, baseline)
    assert er.shape == (100,)
    np.testing.assert_allclose(er, 0.05, atol=1e-9)
    np.testing.assert_allclose(effective_robustness(x, y - 0.1, baseline), -0.05, atol=1e-9)


def test_effective_robustness_ci_excludes_zero_for_a_clear_shift():
    rng = np.random.default_rng(9)
    bx, by = synthetic(80, rng)
    x, y = synthetic(40, rng, shift=0.05)
    mean, lo, hi = effective_robustness_ci(x, y, bx, by, n_boot=500)
    assert mean == pytest.approx(0.05, abs=0.01)
    assert 0 < lo < mean < hi


def test_effective_robustness_ci_includes_zero_without_a_shift():
    rng = np.random.default_rng(10)
    bx, by = synthetic(80, rng)
    x, y = synthetic(40, rng)
    mean, lo, hi = effective_robustness_ci(x, y, bx, by, n_boot=500)
    assert abs(mean) < 0.01
    assert lo < 0 < hi


def test_effective_robustness_ci_counts_baseline_uncertainty():
    # Same group, baseline fitted on few vs many points: fewer baseline points, wider CI.
    rng = np.random.default_rng(11)
    x, y = synthetic(40, rng, shift=0.03)
    bx, by = synthetic(1000, rng)
    _, lo_few, hi_few = effective_robustness_ci(x, y, bx[:15], by[:15], n_boot=500)
    _, lo_many, hi_many = effective_robustness_ci(x, y, bx, by, n_boot=500)
    assert hi_few - lo_few > 1.3 * (hi_many - lo_many)


# ---- difference of two groups (divrob compare) -------------------------------------------

def test_diff_ci_measures_a_known_difference_and_excludes_zero():
    rng = np.random.default_rng(12)
    bx, by = synthetic(80, rng)
    ax_, ay = synthetic(40, rng, shift=0.06)
    cx, cy = synthetic(40, rng, shift=0.02)
    diff, lo, hi = effective_robustness_diff_ci(ax_, ay, cx, cy, bx, by, n_boot=1000)
    assert diff == pytest.approx(0.04, abs=0.01)
    assert 0 < lo < diff < hi
    # Swapping the groups flips the sign and the interval.
    d2, lo2, hi2 = effective_robustness_diff_ci(cx, cy, ax_, ay, bx, by, n_boot=1000)
    assert (d2, lo2, hi2) == pytest.approx((-diff, -hi, -lo), abs=0.004)


def test_diff_ci_includes_zero_about_95_percent_of_the_time_without_a_difference():
    rng = np.random.default_rng(13)
    hits, draws = 0, 120
    for i in range(draws):
        bx, by = synthetic(40, rng, noise=0.1)
        ax_, ay = synthetic(20, rng, noise=0.1, shift=0.03)
        cx, cy = synthetic(20, rng, noise=0.1, shift=0.03)
        _, lo, hi = effective_robustness_diff_ci(ax_, ay, cx, cy, bx, by, n_boot=300, seed=i)
        hits += bool(lo <= 0 <= hi)
    assert 0.88 <= hits / draws <= 1.0


def test_diff_ci_against_the_baseline_itself_equals_plain_er_ci_sign():
    rng = np.random.default_rng(14)
    bx, by = synthetic(60, rng)
    x, y = synthetic(30, rng, shift=0.05)
    diff, lo, hi = effective_robustness_diff_ci(x, y, bx, by, bx, by, n_boot=500, b_is_baseline=True)
    assert diff == pytest.approx(0.05, abs=0.01) and 0 < lo < hi
    with pytest.raises(ValueError, match="baseline's points"):
        effective_robustness_diff_ci(x, y, x, y, bx, by, b_is_baseline=True)


def test_er_ci_of_the_baseline_against_itself_is_near_zero():
    bx, by = synthetic(60, np.random.default_rng(15))
    mean, lo, hi = effective_robustness_ci(bx, by, bx, by, n_boot=500, is_baseline=True)
    assert abs(mean) < 0.005 and hi - lo < 0.01


def test_er_ci_is_reproducible_with_a_seed():
    rng = np.random.default_rng(16)
    bx, by = synthetic(60, rng)
    x, y = synthetic(30, rng, shift=0.02)
    assert effective_robustness_ci(x, y, bx, by, seed=3) == effective_robustness_ci(x, y, bx, by, seed=3)
    assert effective_robustness_ci(x, y, bx, by, seed=3) != effective_robustness_ci(x, y, bx, by, seed=4)
