"""OOD-vs-ID trend plots drawn as text with plotext, for terminals and SSH sessions.

Everything is drawn on the transformed scale (probit by default) so trends are straight; only
the tick labels are in metric units. plotext is imported inside the function so commands that
never plot do not pay for it.
"""

from __future__ import annotations

import shutil

import numpy as np

from divrob.analysis.transforms import format_tick, metric_ticks, padded_range
from divrob.analysis.transforms import transform as to_scale
from divrob.analysis.trends import Trend

# plotext colour names that stay readable on both dark and light terminals.
PALETTE = ("blue", "orange", "green", "magenta", "cyan", "red", "yellow", "white")

_WIDTH_RANGE = (40, 240)
_HEIGHT_RANGE = (12, 80)


def terminal_size(width: int | None = None, height: int | None = None) -> tuple[int, int]:
    """Plot size in characters: the given one or the terminal's, clamped to a drawable range.

    The default height leaves two lines so the shell prompt does not scroll the title away.
    """
    cols, lines = shutil.get_terminal_size((100, 30))
    width = cols if width is None else int(width)
    height = lines - 2 if height is None else int(height)
    return (min(max(width, _WIDTH_RANGE[0]), _WIDTH_RANGE[1]),
            min(max(height, _HEIGHT_RANGE[0]), _HEIGHT_RANGE[1]))


def group_points(df, group_col: str, id_col: str,
                 ood_col: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(ID, OOD) arrays per group name, keeping only rows where both metrics are finite."""
    out = {}
    for g, sub in df.groupby(group_col, sort=False):
        x = sub[id_col].to_numpy(dtype=np.float64)
        y = sub[ood_col].to_numpy(dtype=np.float64)
        ok = np.isfinite(x) & np.isfinite(y)
        out[str(g)] = (x[ok], y[ok])
    return out


def line_range(points: tuple[np.ndarray, np.ndarray] | None, band=None) -> np.ndarray | None:
    """ID values to draw a trend over: the group's own ID range, else its band's grid."""
    if points is not None and len(points[0]):
        return np.linspace(points[0].min(), points[0].max(), 64)
    if band is not None:
        return np.asarray(band[0], dtype=np.float64)
    return None


def axis_ranges(points: dict, bands: dict, transform: str) -> tuple[tuple[float, float], ...]:
    """Padded (x, y) metric-unit ranges covering every point and band edge."""
    xs = [p[0] for p in points.values()] + [np.asarray(b[0], float) for b in bands.values()]
    ys = [p[1] for p in points.values()]
    ys += [np.asarray(v, float) for b in bands.values() for v in b[1:]]
    return (padded_range(np.concatenate(xs) if xs else [], transform),
            padded_range(np.concatenate(ys) if ys else [], transform))


def render_trends(df, trends: dict[str, Trend], *, group_col: str = "group", id_col: str = "id_f1",
                  ood_col: str = "ood_f1", transform: str = "probit",
                  bands: dict[str, tuple] | None = None, width: int | None = None,
                  height: int | None = None, title: str = "",
                  colors: dict[str, str] | None = None) -> str:
    """The trend plot as a string of `height` lines (with ANSI colours) for printing.

    `colors` (group -> plotext colour) keeps a group's colour across several plots.
    """
    import plotext as plt

    width, height = terminal_size(width, height)
    bands = bands or {}
    points = group_points(df, group_col, id_col, ood_col)
    groups = sorted(set(points) | set(trends) | set(bands))

    (x_lo, x_hi), (y_lo, y_hi) = axis_ranges(points, bands, transform)

    def t(v):
        return to_scale(v, transform)

    plt.clear_figure()
    plt.limitsize(False, False)  # plotext would otherwise cap the size at the terminal's
    plt.theme("clear")  # no background fill: respects the user's terminal colours
    plt.plotsize(width, height)
    colors = {**{g: PALETTE[i % len(PALETTE)] for i, g in enumerate(groups)}, **(colors or {})}

    # Later series overwrite earlier ones, so draw back to front: diagonal, bands, lines, points.
    d_lo, d_hi = max(x_lo, y_lo), min(x_hi, y_hi)  # y = x only where the axis ranges overlap
    if d_lo < d_hi:
        diag = np.linspace(d_lo, d_hi, 64)
        plt.plot(t(diag), t(diag), color="gray", marker="braille", label="y = x")
    for g in groups:
        if g in bands:
            b_grid, lo, hi = (np.asarray(v, dtype=np.float64) for v in bands[g])
            # A sparse dotted edge: a solid one would bury the fitted lines.
            step = max(1, len(b_grid) // max(8, width // 6))
            for edge in (lo, hi):
                plt.scatter(t(b_grid[::step]), t(edge[::step]), color=colors[g], marker="braille")
    has_points = {g for g in groups if g in points and len(points[g][0])}
    for g in groups:
        grid = line_range(points.get(g), bands.get(g))
        if g in trends and grid is not None:
            label = None if g in has_points else g  # one legend entry per group
            plt.plot(t(grid), t(trends[g].predict(grid)), color=colors[g], marker="braille",
                     label=label)
    for g in sorted(has_points):
        plt.scatter(t(points[g][0]), t(points[g][1]), color=colors[g], marker="dot", label=g)

    x_ticks = metric_ticks(x_lo, x_hi, transform, max_ticks=max(2, width // 12))
    y_ticks = metric_ticks(y_lo, y_hi, transform, max_ticks=max(2, height // 4))
    plt.xticks(list(t(x_ticks)), [format_tick(v) for v in x_ticks])
    plt.yticks(list(t(y_ticks)), [format_tick(v) for v in y_ticks])
    plt.xlim(float(t(x_lo)), float(t(x_hi)))
    plt.ylim(float(t(y_lo)), float(t(y_hi)))
    plt.xlabel("ID macro-F1")
    plt.ylabel("OOD macro-F1")
    if title:
        plt.title(title)
    return plt.build()


def render_residuals(res, *, width: int | None = None, height: int | None = None,
                     title: str = "") -> str:
    """Residual vs fine-tuning epoch, one line per architecture, y = 0 in gray (Figure 3).

    `res` has columns arch, epoch, residual (`analysis.robustness.epoch_residuals`).
    """
    import plotext as plt

    width, height = terminal_size(width, height)
    plt.clear_figure()
    plt.limitsize(False, False)
    plt.theme("clear")
    plt.plotsize(width, height)
    if len(res):
        e_lo, e_hi = float(res["epoch"].min()), float(res["epoch"].max())
        plt.plot([e_lo, e_hi], [0.0, 0.0], color="gray", marker="braille", label="y = 0")
        for i, (arch, sub) in enumerate(res.groupby("arch", sort=True)):
            plt.plot(sub["epoch"].tolist(), sub["residual"].tolist(), color=PALETTE[i % len(PALETTE)],
                     marker="braille", label=str(arch))
            plt.scatter(sub["epoch"].tolist(), sub["residual"].tolist(),
                        color=PALETTE[i % len(PALETTE)], marker="dot")
        epochs = sorted(set(int(e) for e in res["epoch"]))
        step = max(1, len(epochs) // max(2, width // 8))
        plt.xticks(epochs[::step], [str(e) for e in epochs[::step]])
    plt.xlabel("fine-tuning epoch")
    plt.ylabel("residual (OOD F1)")
    if title:
        plt.title(title)
    return plt.build()
