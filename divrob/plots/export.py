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
from divrob.fileio import atomic_path
from divrob.plots.terminal import BAND_STYLES, TrendPanel, line_range

FORMATS = ("png", "svg", "pdf")
DENSE_POINTS = 2000  # above this many points in a group, a panel draws its lines over its points
_LEGEND_WIDTH_IN = 2.2  # a strip right of the panels, where the legend goes

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
        fig.savefig(tmp, format=fmt, metadata=_METADATA[fmt], bbox_inches="tight")
    return path


def export_trends(panel: TrendPanel, path, *, title: str = "", bands: str = "shade") -> Path:
    """Write the trend figure of one panel to `path`; its suffix (.png, .svg, .pdf) picks the format."""
    return export_panels({"": panel}, path, title=title, bands=bands)


def export_panels(panels: dict[str, TrendPanel], path, *, title: str = "", bands: str = "shade") -> Path:
    """One trend panel per entry of `panels`, side by side (three per row at most), with one
    legend outside the data, to the right of the panels.

    A group keeps its colour in every panel, so a reference drawn in each (scratch, full
    ImageNet) reads as the same line everywhere.
    """
    path = Path(path)
    fmt = _check_format(path)
    return _save(trend_figure(panels, title=title, bands=bands), path, fmt)


def trend_figure(panels: dict[str, TrendPanel], *, title: str = "", bands: str = "shade"):
    """The matplotlib Figure `export_panels` writes."""
    if bands not in BAND_STYLES:
        raise ValueError(f"bands {bands!r}: choose one of {', '.join(BAND_STYLES)}")
    from matplotlib.figure import Figure

    names = sorted({g for p in panels.values() for g in p.groups})
    colors = {g: f"C{i % 10}" for i, g in enumerate(names)}
    n = max(1, len(panels))
    cols = min(n, 3)
    rows = -(-n // cols)
    fig = Figure(figsize=(5.0 * cols + _LEGEND_WIDTH_IN, 4.5 * rows), dpi=150)
    handles: dict[str, object] = {}
    for k, (name, panel) in enumerate(panels.items()):
        ax = fig.add_subplot(rows, cols, k + 1)
        panel_title = name if len(panels) > 1 else title
        _trend_panel(ax, panel, colors, bands, panel_title, handles)
    if title and len(panels) > 1:
        fig.suptitle(title)
    # The legend sits right of the panels, never on the data.
    fig.tight_layout(rect=(0, 0, 1 - _LEGEND_WIDTH_IN / fig.get_figwidth(), 1))
    order = [g for g in names if g in handles] + [k for k in handles if k not in names]  # groups first
    fig.legend([handles[k] for k in order], order, loc="center left", bbox_to_anchor=(1 - _LEGEND_WIDTH_IN / fig.get_figwidth(), 0.5),
               fontsize=8, frameon=False)
    return fig


def _trend_panel(ax, panel: TrendPanel, colors, bands, title, handles) -> None:
    def t(v):
        return to_scale(v, panel.transform)

    (x_lo, x_hi), (y_lo, y_hi) = panel.ranges()
    # A cloud of thousands of points would hide every line: then the points get small, faint and
    # rasterised (an SVG or PDF stays small), and the lines, with bands, go on top of them.
    dense = max((len(p[0]) for p in panel.points.values()), default=0) > DENSE_POINTS
    over = 4 if dense else 0
    for g in panel.groups:
        color = colors[g]
        if g in panel.bands and bands != "none":
            b_grid, lo, hi = (np.asarray(v, dtype=np.float64) for v in panel.bands[g])
            if bands == "shade":
                ax.fill_between(t(b_grid), t(lo), t(hi), color=color, alpha=0.2, linewidth=0, zorder=1 + over)
            else:
                for edge in (lo, hi):
                    ax.plot(t(b_grid), t(edge), color=color, linewidth=0.8, linestyle=":", zorder=1 + over)
        grid = line_range(panel.points.get(g), panel.bands.get(g))
        if g in panel.trends and grid is not None:
            (line,) = ax.plot(t(grid), t(panel.trends[g].predict(grid)), color=color, linewidth=2, zorder=2 + over)
            if dense:  # a white edge keeps a line visible over a cloud of its own colour
                from matplotlib.patheffects import Normal, Stroke

                line.set_path_effects([Stroke(linewidth=3.5, foreground="white"), Normal()])
            handles.setdefault(g, line)
        if g in panel.points and len(panel.points[g][0]):
            pts = ax.scatter(t(panel.points[g][0]), t(panel.points[g][1]), color=color, s=3 if dense else 14,
                             alpha=0.15 if dense else 0.75, edgecolors="none", zorder=3, rasterized=dense)
            handles.setdefault(g, pts)
    for name, ref in panel.references.items():
        grid = np.linspace(x_lo, x_hi, 64)
        (line,) = ax.plot(t(grid), t(ref.predict(grid)), color="0.35", linestyle="-.", linewidth=1.5, zorder=2)
        handles.setdefault(f"{name} (reference)", line)
    d_lo, d_hi = max(x_lo, y_lo), min(x_hi, y_hi)  # y = x only where the axis ranges overlap
    if d_lo < d_hi:
        (diag,) = ax.plot(t([d_lo, d_hi]), t([d_lo, d_hi]), color="black", linestyle="--", linewidth=1, zorder=0)
        handles.setdefault("y = x", diag)
        if t(d_hi) - t(d_lo) >= 0.15 * (t(x_hi) - t(x_lo)):  # a stub in a corner: the legend names it
            ax.annotate("y = x", (float(t(d_hi)), float(t(d_hi))), xytext=(-4, -10), textcoords="offset points",
                        ha="right", fontsize=8, color="0.3")
    if bands != "none" and panel.bands and "95% band" not in handles:
        from matplotlib.patches import Patch

        handles["95% band"] = Patch(color="0.6", alpha=0.4) if bands == "shade" else \
            ax.plot([], [], color="0.4", linestyle=":")[0]

    x_ticks = metric_ticks(x_lo, x_hi, panel.transform, max_ticks=7)
    y_ticks = metric_ticks(y_lo, y_hi, panel.transform, max_ticks=7)
    ax.set_xticks(t(x_ticks), [format_tick(v) for v in x_ticks])
    ax.set_yticks(t(y_ticks), [format_tick(v) for v in y_ticks])
    ax.set_xlim(float(t(x_lo)), float(t(x_hi)))
    ax.set_ylim(float(t(y_lo)), float(t(y_hi)))
    ax.set_xlabel(f"ID {panel.metric} ({panel.transform} axis)")
    ax.set_ylabel(f"OOD {panel.metric} ({panel.transform} axis)")
    if title or panel.flags:
        note = f" (note: {', '.join(panel.flags)})" if panel.flags else ""
        ax.set_title(f"{title}{note}", fontsize=10)
    _style(ax)


def _style(ax) -> None:
    ax.grid(True, linewidth=0.5, alpha=0.4)
    ax.spines[["top", "right"]].set_visible(False)


def export_residuals(res, path, *, title: str = "", metric: str = "macro-F1") -> Path:
    """Residual (OOD minus the baseline trend's prediction, in metric units) against fine-tuning
    epoch, one line per architecture, with y = 0 dashed: the paper's Figure 3.

    `res` has columns arch, epoch, residual (`analysis.robustness.epoch_residuals`).
    """
    path = Path(path)
    fmt = _check_format(path)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4.0), dpi=150)
    ax = fig.add_subplot()
    ax.axhline(0.0, color="black", linestyle="--", linewidth=1, zorder=0, label="on the baseline trend")
    for i, (arch, sub) in enumerate(res.groupby("arch", sort=True)):
        ax.plot(sub["epoch"], sub["residual"], marker="o", markersize=3, linewidth=1.5,
                color=f"C{i % 10}", label=str(arch))
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_xlabel("fine-tuning epoch")
    ax.set_ylabel(f"residual (OOD {metric})")
    if title:
        ax.set_title(title, fontsize=10)
    _style(ax)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    return _save(fig, path, fmt)
