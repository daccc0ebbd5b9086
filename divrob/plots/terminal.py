"""OOD-vs-ID trend plots drawn as text with plotext: one renderer for `divrob plot trends`,
`divrob demo` and the TUI's Trends screen.

`draw_trends` draws one panel onto any plotext figure (a fresh `_figure_class` here, the
textual-plotext widget's figure in the TUI). Everything is drawn on the transformed scale
(probit by default) so trends are straight; only the tick labels are in metric units. The legend
is never drawn over the data: `render_trends` prints it under the plot, and the TUI's
effective-robustness table (coloured group names) serves as its legend. plotext is imported
inside the functions so commands that never plot do not pay for it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

import numpy as np

from divrob.analysis import ID_COL, OOD_COL
from divrob.analysis.transforms import format_tick, metric_ticks, padded_range
from divrob.analysis.transforms import transform as to_scale
from divrob.analysis.trends import Trend
from divrob.plots import PALETTE

REFERENCE_COLOR = "gray"
BAND_STYLES = ("none", "lines", "shade")
_WIDTH_RANGE = (40, 240)
_HEIGHT_RANGE = (12, 80)
_FACET_MIN_WIDTH = 70  # panels go side by side when each can be at least this wide
_DIAGONAL_LABEL_COLS = 12  # "y = x", right-aligned, plus the y-axis ticks' margin
MAX_DRAWN = 2000  # points per group drawn: a terminal shows no more (80x24 cells of 2x4 dots)
_MARKS = {"point": "•", "trend": "─", "band": "·", "shade": "░", "reference": "━", "diagonal": "╱"}


def x_title(metric: str = "macro-F1") -> str:
    return f"ID {metric} →"


def y_title(metric: str = "macro-F1") -> str:
    return f"↑ OOD {metric}"  # plotext writes it at the bottom left, under the y axis


def terminal_size(width: int | None = None, height: int | None = None) -> tuple[int, int]:
    """Plot size in characters: the given one or the terminal's, clamped to a drawable range.

    The default height leaves two lines so the shell prompt does not scroll the title away.
    """
    cols, lines = shutil.get_terminal_size((100, 30))
    width = cols if width is None else int(width)
    height = lines - 2 if height is None else int(height)
    return (min(max(width, _WIDTH_RANGE[0]), _WIDTH_RANGE[1]),
            min(max(height, _HEIGHT_RANGE[0]), _HEIGHT_RANGE[1]))


def group_points(df, group_col: str = "group", id_col: str = ID_COL,
                 ood_col: str = OOD_COL) -> dict[str, tuple[np.ndarray, np.ndarray]]:
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


@dataclass(frozen=True)
class TrendPanel:
    """What one panel shows, all in metric units: points, fitted trends and bands per group,
    and external reference lines drawn across the panel."""

    transform: str
    points: dict[str, tuple[np.ndarray, np.ndarray]]
    trends: dict[str, Trend] = field(default_factory=dict)
    bands: dict[str, tuple] = field(default_factory=dict)
    references: dict[str, Trend] = field(default_factory=dict)
    flags: tuple[str, ...] = ()  # caveats worth a word in the title ("clipped", "extrapolated")
    metric: str = "macro-F1"  # what the axes measure (the downstream task's metric)

    @property
    def groups(self) -> list[str]:
        return sorted(set(self.points) | set(self.trends) | set(self.bands))

    def thinned(self, limit: int = MAX_DRAWN) -> "TrendPanel":
        """The panel with at most `limit` points per group, evenly spread and the extremes kept
        (so the axes do not change): a 100,000-run study draws in a blink (it took 7 s to build
        a figure of 1.2M points). The fits and bands were made from every point."""
        from dataclasses import replace

        out = {}
        for g, (x, y) in self.points.items():
            if len(x) > limit:
                keep = np.unique(np.concatenate([np.linspace(0, len(x) - 1, limit).astype(int),
                                                 [x.argmin(), x.argmax(), y.argmin(), y.argmax()]]))
                x, y = x[keep], y[keep]
            out[g] = (x, y)
        return replace(self, points=out)

    def ranges(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Padded (x, y) metric-unit ranges covering every point and band edge (reference lines
        are drawn across these ranges, not fitted into them)."""
        xs = [p[0] for p in self.points.values()] + [np.asarray(b[0], float) for b in self.bands.values()]
        ys = [p[1] for p in self.points.values()]
        ys += [np.asarray(v, float) for b in self.bands.values() for v in b[1:]]
        return (padded_range(np.concatenate(xs) if xs else [], self.transform),
                padded_range(np.concatenate(ys) if ys else [], self.transform))


def panel_of(analysis, shown: list[str] | None = None) -> TrendPanel:
    """The panel of an `analysis.robustness.Analysis`, limited to the `shown` groups."""
    keep = set(analysis.groups) if shown is None else set(shown)
    df = analysis.df[analysis.df["group"].isin(keep)]
    return TrendPanel(analysis.transform, group_points(df),
                      {g: t for g, t in analysis.trends.items() if g in keep},
                      {g: b for g, b in analysis.bands.items() if g in keep},
                      dict(analysis.references), tuple(analysis.flags()), analysis.metric)


def group_colors(names, given: dict[str, str] | None = None) -> dict[str, str]:
    """A colour per group, in order; `given` keeps a group's colour across several plots."""
    return {**{g: PALETTE[i % len(PALETTE)] for i, g in enumerate(names)}, **(given or {})}


def draw_trends(fig, panel: TrendPanel, *, colors: dict[str, str] | None = None,
                bands: str = "lines", title: str = "", width: int | None = None,
                height: int | None = None) -> None:
    """Draw `panel` onto the plotext figure `fig` (whose size the caller sets; `width`/`height`
    only say how many ticks fit). Back to front: shaded bands, y = x, band edges, trends,
    reference lines, points, so the data stay on top."""
    if bands not in BAND_STYLES:
        raise ValueError(f"bands {bands!r}: choose one of {', '.join(BAND_STYLES)}")
    width, height = width or 80, height or 24
    panel = panel.thinned()
    fig.clear_data()
    colors = group_colors(panel.groups, colors)
    if title or panel.flags:
        fig.title(_fitted_title(title, panel.flags, width))
    fig.xlabel(x_title(panel.metric))
    fig.ylabel(y_title(panel.metric))
    (x_lo, x_hi), (y_lo, y_hi) = panel.ranges()
    tf = panel.transform

    def t(v):
        return np.asarray(to_scale(v, tf), dtype=np.float64)

    if bands == "shade":
        for g in panel.groups:
            if g in panel.bands:
                _shade(fig, t, panel.bands[g], colors[g], (x_lo, x_hi), (y_lo, y_hi), width, height)
    d_lo, d_hi = max(x_lo, y_lo), min(x_hi, y_hi)  # y = x only where the axis ranges overlap
    if d_lo < d_hi:
        diag = np.linspace(d_lo, d_hi, 64)
        fig.plot(list(t(diag)), list(t(diag)), color=REFERENCE_COLOR, marker="braille")
    if bands == "lines":
        for g in panel.groups:
            if g in panel.bands:
                grid, lo, hi = (np.asarray(v, dtype=np.float64) for v in panel.bands[g])
                for edge in (lo, hi):
                    fig.plot(list(t(grid)), list(t(edge)), color=colors[g], marker=_MARKS["band"])
    for g in panel.groups:
        grid = line_range(panel.points.get(g), panel.bands.get(g))
        if g in panel.trends and grid is not None:
            fig.plot(list(t(grid)), list(t(panel.trends[g].predict(grid))), color=colors[g], marker="braille")
    for ref in panel.references.values():
        grid = np.linspace(x_lo, x_hi, 64)
        y = ref.predict(grid)
        ok = (y >= y_lo) & (y <= y_hi)
        if ok.sum() >= 2:
            fig.plot(list(t(grid[ok])), list(t(y[ok])), color=REFERENCE_COLOR, marker=_MARKS["reference"])
    for g in panel.groups:
        pts = panel.points.get(g)
        if pts is not None and len(pts[0]):
            fig.scatter(list(t(pts[0])), list(t(pts[1])), color=colors[g], marker=_MARKS["point"])
    # Labelled where it leaves the panel at the top right: above the data, which lies below
    # y = x wherever OOD is harder than ID. Where it leaves too close to the left edge for the
    # words to fit (a study far below y = x), the legend alone names it: cut, it read "x".
    room = (float(t(d_hi)) - float(t(x_lo))) / max(float(t(x_hi)) - float(t(x_lo)), 1e-12) * width
    if d_lo < d_hi and room >= _DIAGONAL_LABEL_COLS:
        fig.text("y = x", float(t(d_hi)), float(t(d_hi)), color=REFERENCE_COLOR, alignment="right")
    x_ticks = metric_ticks(x_lo, x_hi, tf, max_ticks=max(2, width // 12))
    y_ticks = metric_ticks(y_lo, y_hi, tf, max_ticks=max(2, height // 4))
    fig.xticks(list(t(x_ticks)), [format_tick(v) for v in x_ticks])
    fig.yticks(list(t(y_ticks)), [format_tick(v) for v in y_ticks])
    fig.xlim(float(t(x_lo)), float(t(x_hi)))
    fig.ylim(float(t(y_lo)), float(t(y_hi)))


def _fitted_title(title: str, flags, width: int) -> str:
    """The title, with the caveat words, short enough for plotext to draw: it silently drops a
    title that does not fit centred over the canvas. The caveats win over the title."""
    room = max(width - 12, 8)
    note = f"note: {', '.join(flags)}" if flags else ""
    for text in (" · ".join(s for s in (title, note) if s), note or title):
        if len(text) <= room:
            return text
    text = note or title
    return text[: room - 1] + "…"


def _shade(fig, t, band, color, x_range, y_range, width, height) -> None:
    """Fill a band with light-shade cells, about one per character cell of the canvas."""
    grid, lo, hi = (np.asarray(v, dtype=np.float64) for v in band)
    tx, tlo, thi = t(grid), t(lo), t(hi)
    (x0, x1), (y0, y1) = (t(list(x_range)), t(list(y_range)))
    dx = (x1 - x0) / max(width - 10, 10)
    dy = (y1 - y0) / max(height - 5, 5)
    xs, ys = [], []
    for x in np.arange(tx.min(), tx.max() + dx / 2, dx):
        a, b = np.interp(x, tx, tlo), np.interp(x, tx, thi)
        for y in np.arange(a, b + dy / 2, dy):
            xs.append(float(x))
            ys.append(float(min(y, b)))
    if xs:
        fig.scatter(xs, ys, color=color, marker=_MARKS["shade"])


def legend_entries(panels, colors: dict[str, str], bands: str = "lines") -> list[tuple[str, str, str]]:
    """(mark, label, colour) per legend entry of the panels: groups, reference lines, then what
    the line styles mean."""
    panels = list(panels)
    groups = sorted({g for p in panels for g in p.groups}, key=lambda g: list(colors).index(g) if g in colors else 0)
    out = [(_MARKS["point"], g, colors.get(g, PALETTE[0])) for g in groups]
    refs = sorted({n for p in panels for n in p.references})
    out += [(_MARKS["reference"], f"{n} (reference)", REFERENCE_COLOR) for n in refs]
    out.append((_MARKS["trend"], "trend", ""))
    if bands != "none":
        out.append((_MARKS["shade" if bands == "shade" else "band"], "95% band", ""))
    out.append((_MARKS["diagonal"], "y = x", REFERENCE_COLOR))
    return out


def legend_text(entries, width: int) -> str:
    """The legend as lines no wider than `width`, entries never split across lines."""
    import plotext as plt

    lines, current, used = [], [], 0
    for mark, label, color in entries:
        room = max(width - 2, 8)
        label = label if len(label) + 2 <= room else label[: room - 3] + "…"
        piece = f"{mark} {label}"
        extra = len(piece) + (2 if current else 0)
        if current and used + extra > width:
            lines.append("  ".join(current))
            current, used = [], 0
            extra = len(piece)
        current.append(plt.colorize(mark, color) + " " + label if color else piece)
        used += extra
    if current:
        lines.append("  ".join(current))
    return "\n".join(lines)


def render_trends(panels: dict[str, TrendPanel] | TrendPanel, *, width: int | None = None,
                  height: int | None = None, title: str = "", bands: str = "lines",
                  colors: dict[str, str] | None = None, legend: bool = True) -> str:
    """The trend plot (one panel, or facets side by side where the width allows, else stacked)
    as text with ANSI colours, with its legend underneath. `height` is per row of panels."""
    width, height = terminal_size(width, height)
    if isinstance(panels, TrendPanel):
        panels = {"": panels}
    names = sorted({g for p in panels.values() for g in p.groups})
    colors = group_colors(names, colors)
    n = max(1, len(panels))
    cols = max(1, min(n, width // _FACET_MIN_WIDTH))
    blocks = [_centred(title, width)] if title and len(panels) > 1 else []
    items = list(panels.items())
    for start in range(0, len(items), cols):
        row = items[start:start + cols]
        fig = _new_figure(width, height)
        if len(row) > 1:
            fig.subplots(1, len(row))
        for k, (name, panel) in enumerate(row, 1):
            target = fig.subplot(1, k) if len(row) > 1 else fig
            label = name if len(panels) > 1 else title
            draw_trends(target, panel, colors=colors, bands=bands, title=label,
                        width=width // len(row), height=height)
        blocks.append(fig.build())
    if legend:
        blocks.append(legend_text(legend_entries(panels.values(), colors, bands), width))
    return "\n".join(blocks)


def _new_figure(width: int, height: int):
    """A plotext figure of exactly this size, with no background fill (the user's terminal
    colours stay). plotext caps a figure at the terminal's size unless told not to."""
    from plotext._figure import _figure_class

    fig = _figure_class()
    fig._limit_size(False, False)
    fig.theme("clear")
    fig.plot_size(width, height)
    return fig


def _centred(text: str, width: int) -> str:
    text = text if len(text) <= width else text[: width - 1] + "…"
    return text.center(width).rstrip()


def render_residuals(res, *, width: int | None = None, height: int | None = None,
                     title: str = "", metric: str = "macro-F1") -> str:
    """Residual vs fine-tuning epoch, one line per architecture, y = 0 in gray (Figure 3), with
    its legend underneath.

    `res` has columns arch, epoch, residual (`analysis.robustness.epoch_residuals`).
    """
    width, height = terminal_size(width, height)
    fig = _new_figure(width, height)
    entries = []
    if len(res):
        e_lo, e_hi = float(res["epoch"].min()), float(res["epoch"].max())
        fig.plot([e_lo, e_hi], [0.0, 0.0], color=REFERENCE_COLOR, marker="braille")
        for i, (arch, sub) in enumerate(res.groupby("arch", sort=True)):
            color = PALETTE[i % len(PALETTE)]
            fig.plot(sub["epoch"].tolist(), sub["residual"].tolist(), color=color, marker="braille")
            fig.scatter(sub["epoch"].tolist(), sub["residual"].tolist(), color=color, marker=_MARKS["point"])
            entries.append((_MARKS["point"], str(arch), color))
        epochs = sorted(set(int(e) for e in res["epoch"]))
        step = max(1, len(epochs) // max(2, width // 8))
        fig.xticks(epochs[::step], [str(e) for e in epochs[::step]])
    entries.append((_MARKS["trend"], "y = 0: on the baseline trend", REFERENCE_COLOR))
    fig.xlabel("fine-tuning epoch →")
    fig.ylabel(f"↑ residual (OOD {metric})")
    if title:
        fig.title(title)
    return fig.build() + "\n" + legend_text(entries, width)
