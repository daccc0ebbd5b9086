"""Axis transforms for OOD-vs-ID plots: metrics in [0, 1] mapped to a scale where trends are lines.

Accuracy-like metrics of many models lie on straight lines after a probit (or logit) transform
(Miller et al., "Accuracy on the line"), so trends are fitted and drawn on that scale while
ticks stay labelled in metric units.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logit, ndtr, ndtri

from divrob.analysis import TRANSFORMS  # noqa: E402,F401 - the one list, re-exported

# Tick candidates in metric units, dense near 0 and 1 because probit/logit stretch there. The
# round ones are preferred; the in-between ones are used only when a narrow range needs them.
_ROUND_TICKS = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9,
    0.95, 0.98, 0.99, 0.995, 0.998, 0.999,
)
_FINE_TICKS = tuple(sorted(set(_ROUND_TICKS) | {
    0.03, 0.04, 0.06, 0.08, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.925, 0.97,
}))


def _check(name: str) -> None:
    if name not in TRANSFORMS:
        raise ValueError(f"unknown transform {name!r}; choose one of {', '.join(TRANSFORMS)}")


CLIP_EPS = 1e-4
"""Probit and logit clip metric values to [CLIP_EPS, 1 - CLIP_EPS] before transforming."""


def transform(x, name: str = "probit", eps: float = CLIP_EPS) -> np.ndarray:
    """Map metric values to the plotting scale.

    Probit and logit clip to [eps, 1 - eps] first: a model at 0 or 1 F1 would otherwise map
    to -inf/+inf and poison every least-squares fit it touches.
    """
    _check(name)
    x = np.asarray(x, dtype=np.float64)
    if name == "linear":
        return x.copy()
    x = np.clip(x, eps, 1.0 - eps)
    return ndtri(x) if name == "probit" else logit(x)


def clipped(x, name: str = "probit", eps: float = CLIP_EPS) -> int:
    """How many finite values `transform` would clip (metrics of exactly 0 or 1, say): reports
    say so, because a clipped point sits at an arbitrary place on the transformed axis."""
    if name == "linear":
        return 0
    x = np.asarray(x, dtype=np.float64)
    return int(np.count_nonzero((x < eps) | (x > 1.0 - eps)))


def inverse_slopes(y, name: str = "probit") -> tuple[np.ndarray, np.ndarray]:
    """First and second derivatives of `inverse` at plotting-scale values `y`: the terms of a
    second-order expansion of a trend's prediction when its line moves a little."""
    _check(name)
    y = np.asarray(y, dtype=np.float64)
    if name == "linear":
        return np.ones_like(y), np.zeros_like(y)
    if name == "probit":
        d1 = np.exp(-0.5 * y * y) / np.sqrt(2.0 * np.pi)
        return d1, -y * d1
    s = expit(y)
    d1 = s * (1.0 - s)
    return d1, d1 * (1.0 - 2.0 * s)


def inverse(y, name: str = "probit") -> np.ndarray:
    """Map plotting-scale values back to metric units."""
    _check(name)
    y = np.asarray(y, dtype=np.float64)
    if name == "linear":
        return y.copy()
    return ndtr(y) if name == "probit" else expit(y)


def metric_ticks(lo: float, hi: float, name: str = "probit", max_ticks: int = 7) -> np.ndarray:
    """Round metric values inside [lo, hi] to put ticks at, at most `max_ticks` of them.

    Candidates are thinned so ticks are roughly evenly spaced on the transformed axis, which
    is what the eye sees; a range too narrow for any of them gets plain linear ticks.
    """
    _check(name)
    lo, hi = float(min(lo, hi)), float(max(lo, hi))
    max_ticks = max(int(max_ticks), 2)
    if name != "linear":
        for pool in (_ROUND_TICKS, _FINE_TICKS):
            cands = np.array([c for c in pool if lo <= c <= hi])
            if len(cands) >= 3:
                return _thin(cands, transform(cands, name), max_ticks)
    step = _nice_step((hi - lo) / (max_ticks - 1) if hi > lo else 0.1)
    ticks = np.arange(np.ceil(lo / step) * step, hi + step * 1e-9, step)
    return np.round(ticks, 10)


def _thin(cands: np.ndarray, t: np.ndarray, max_ticks: int) -> np.ndarray:
    """Greedily keep candidates at least 1/(max_ticks - 1) of the span apart on the axis."""
    min_gap = (t[-1] - t[0]) / (max_ticks - 1) * 0.9
    keep = [0]
    for i in range(1, len(cands)):
        if t[i] - t[keep[-1]] >= min_gap:
            keep.append(i)
    return cands[keep]


def _nice_step(raw: float) -> float:
    mag = 10 ** np.floor(np.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw:
            return float(m * mag)
    return float(10 * mag)


def format_tick(value: float) -> str:
    """Short metric label: 0.05, 0.1, 0.25 — no trailing zeros."""
    return f"{value:.3f}".rstrip("0").rstrip(".") if value != 0 else "0"


def padded_range(values, name: str = "probit", pad: float = 0.05) -> tuple[float, float]:
    """Metric-unit range covering `values` plus `pad` of its width on the transformed scale."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return (0.0, 1.0)
    t = transform(v, name)
    lo, hi = float(t.min()), float(t.max())
    width = hi - lo if hi > lo else 0.5
    lo, hi = inverse([lo - pad * width, hi + pad * width], name)
    return float(lo), float(hi)
