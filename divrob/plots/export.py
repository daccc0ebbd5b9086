"""Publication-style OOD-vs-ID trend figures (PNG, SVG, PDF) with matplotlib.

Uses `matplotlib.figure.Figure` directly rather than pyplot: no global figure state, no GUI
backend, safe from worker threads. matplotlib is imported inside the function because the
terminal commands never need it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from divrob.analysis.transforms import format_tick, metric_ticks
from divrob.analysis.transforms import transform as to_scale
from divrob.analysis.trends import Trend
from divrob.fileio import atomic_path
from divrob.plots.terminal import axis_ranges, group_points, line_range

FORMATS = ("png", "svg", "pdf")

# Dropping timestamps keeps SVG/PDF bytes stable when the data are, so re-exports do not churn.
_METADATA = {"png": {}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}


def _check_format(path: Path) -> str:
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"cannot export a figure to {path.name!r}: the file name must end in "
                         f"{', '.join('.' + f for f in FORMATS)}")
    return fmt


def _save(fig, path: Path, fmt: str) -> Path:
    from matplotlib import rc_context

    # A fixed salt makes SVG element ids deterministic instead of random per save.
    with atomic_path(path) as tmp, rc_context({"svg.hashsalt": "divrob"}):
        # The temporary name ends in .tmp, so the format must be given explicitly.
        fig.savefig(tmp, format=fmt, metadata=_METADATA[fmt])
    return path


def export_trends(df, trends: dict[str, Trend], path, *, group_col: str = "group",
                  id_col: str = "id_f1", ood_col: str = "ood_f1", transform: str = "probit",
                  bands: dict[str, tuple] | None = None, title: str = "") -> Path:
    """Write the trend figure to `path`; its suffix (.png, .svg, .pdf) picks the format."""
    return export_panels({"": (df, trends, bands or {})}, path, group_col=group_col,
                         id_col=id_col, ood_col=ood_col, transform=transform, title=title)


def export_panels(panels: dict[str, tuple], path, *, group_col: str = "group",
                  id_col: str = "id_f1", ood_col: str = "ood_f1", transform: str = "probit",
                  title: str = "") -> Path:
    """One trend panel per entry of `panels` (name -> (rows, trends, bands)), side by side.

    A group keeps its colour in every panel, so a reference drawn in each (scratch, full
    ImageNet) reads as the same line everywhere.
    """
    path = Path(path)
    fmt = _check_format(path)
    from matplotlib.figure import Figure

    names = sorted({g for df, trends, bands in panels.values()
                    for g in set(group_points(df, group_col, id_col, ood_col)) | set(trends) | set(bands)})
    colors = {g: f"C{i % 10}" for i, g in enumerate(names)}
    n = max(1, len(panels))
    cols = min(n, 3)
    rows = -(-n // cols)
    fig = Figure(figsize=(5.5 * cols, 4.5 * rows), dpi=150)
    for k, (name, (df, trends, bands)) in enumerate(panels.items()):
        ax = fig.add_subplot(rows, cols, k + 1)
        panel_title = name if len(panels) > 1 else title
        _trend_panel(ax, df, trends, bands or {}, colors, group_col, id_col, ood_col, transform,
                     panel_title)
    if title and len(panels) > 1:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path, fmt)


def _trend_panel(ax, df, trends, bands, colors, group_col, id_col, ood_col, transform, title):
    points = group_points(df, group_col, id_col, ood_col)
    groups = sorted(set(points) | set(trends) | set(bands))

    def t(v):
        return to_scale(v, transform)

    (x_lo, x_hi), (y_lo, y_hi) = axis_ranges(points, bands, transform)
    for g in groups:
        color = colors[g]
        label = g
        if g in bands:
            b_grid, lo, hi = (np.asarray(v, dtype=np.float64) for v in bands[g])
            ax.fill_between(t(b_grid), t(lo), t(hi), color=color, alpha=0.2, linewidth=0, zorder=1)
        grid = line_range(points.get(g), bands.get(g))
        if g in trends and grid is not None:
            ax.plot(t(grid), t(trends[g].predict(grid)), color=color, linewidth=2, label=label,
                    zorder=2)
            label = None  # one legend entry per group
        if g in points and len(points[g][0]):
            ax.scatter(t(points[g][0]), t(points[g][1]), color=color, s=14, alpha=0.75,
                       edgecolors="none", label=label, zorder=3)

    d_lo, d_hi = max(x_lo, y_lo), min(x_hi, y_hi)  # y = x only where the axis ranges overlap
    if d_lo < d_hi:
        ax.plot(t([d_lo, d_hi]), t([d_lo, d_hi]), color="black", linestyle="--", linewidth=1,
                label="y = x", zorder=0)

    x_ticks = metric_ticks(x_lo, x_hi, transform, max_ticks=7)
    y_ticks = metric_ticks(y_lo, y_hi, transform, max_ticks=7)
    ax.set_xticks(t(x_ticks), [format_tick(v) for v in x_ticks])
    ax.set_yticks(t(y_ticks), [format_tick(v) for v in y_ticks])
    ax.set_xlim(float(t(x_lo)), float(t(x_hi)))
    ax.set_ylim(float(t(y_lo)), float(t(y_hi)))
    ax.set_xlabel("ID macro-F1")
    ax.set_ylabel("OOD macro-F1")
    if title:
        ax.set_title(title)
    _style(ax)


def _style(ax) -> None:
    ax.grid(True, linewidth=0.5, alpha=0.4)
    ax.spines[["top", "right"]].set_visible(False)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize=8, frameon=False)


def export_residuals(res, path, *, title: str = "") -> Path:
    """Residual (OOD minus the baseline trend's prediction, F1 units) against fine-tuning
    epoch, one line per architecture, with y = 0 dashed: the paper's Figure 3.

    `res` has columns arch, epoch, residual (`analysis.robustness.epoch_residuals`).
    """
    path = Path(path)
    fmt = _check_format(path)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4.0), dpi=150)
    ax = fig.add_subplot()
    ax.axhline(0.0, color="black", linestyle="--", linewidth=1, zorder=0)
    for i, (arch, sub) in enumerate(res.groupby("arch", sort=True)):
        ax.plot(sub["epoch"], sub["residual"], marker="o", markersize=3, linewidth=1.5,
                color=f"C{i % 10}", label=str(arch))
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_xlabel("fine-tuning epoch")
    ax.set_ylabel("residual (OOD macro-F1)")
    if title:
        ax.set_title(title, fontsize=10)
    _style(ax)
    fig.tight_layout()
    return _save(fig, path, fmt)
