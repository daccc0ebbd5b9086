"""Integer apportionment: split a whole number in proportion to weights, deterministically."""

from __future__ import annotations

import numpy as np


def largest_remainder(total: int, weights) -> np.ndarray:
    """Non-negative integers summing to `total` in proportion to `weights` (Hamilton's method:
    floors first, then one more to the largest fractional remainders; ties go to the earlier
    weight). No randomness, so the same inputs always give the same split."""
    weights = np.asarray(weights, dtype=np.float64)
    raw = total * weights / weights.sum()
    out = np.floor(raw).astype(np.int64)
    out[np.argsort(-(raw - out), kind="stable")[: int(total - out.sum())]] += 1
    return out
