"""Group values as labels, and the order groups are listed and coloured in: plain Python, so a
screen that draws before pandas is loaded (analysis.glance) names and orders groups exactly as
the full analysis does."""

from __future__ import annotations

import numpy as np


def group_label(value) -> str:
    """A group value as text: 5000.0 → '5000' (sweep values come back from JSON as floats)."""
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return str(value)


def group_order(names) -> list[str]:
    """Numbers in numeric order (5000 before 25000), then text in alphabetical order."""
    def key(name: str):
        try:
            return (0, float(name), "")
        except ValueError:
            return (1, 0.0, name)
    return sorted(names, key=key)
