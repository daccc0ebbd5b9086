"""Trends: OOD vs ID macro-F1 per group with its fitted trend and bootstrap band (textual-plotext),
group-by / baseline / transform choices, groups toggled on and off, the effective-robustness
table beside the plot, and export to a figure. Reloads when new epochs reach the store."""

from __future__ import annotations

import time

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Footer, Select, SelectionList
from textual.widgets.selection_list import Selection
from textual_plotext import PlotextPlot

from divrob.analysis import TRANSFORMS
from divrob.plots import PALETTE, RICH_COLORS
from divrob.tui.components.base import Done, StoreScreen
from divrob.tui.components.nav_bar import NavBar
from divrob.tui.components.path_prompt import PathPrompt
from divrob.tui.components.progress_panel import ProgressPanel
from divrob.tui.components.tables import fill_table, fit_name


def signed(x: float) -> str:
    """+0.072 → '+.072': the effective-robustness table fits beside the plot at 80 columns."""
    return f"{x:+.3f}".replace("0.", ".", 1)


ALL = "*all*"


NAME_WIDTH = 13  # a group's name in the effective-robustness table (beside the plot at 80 columns)
def draw_facets(plt, panels: dict, shown: list[str], colors: dict[str, str], size=None,
                bands: str = "lines") -> None:
    """One panel per facet value side by side on the widget's figure, each titled by its value."""
    from dataclasses import replace

    from divrob.plots.terminal import draw_trends as draw

    width, height = (size.width, size.height) if size else (80, 24)
    plt.subplots(1, len(panels))
    for k, (name, panel) in enumerate(panels.items(), 1):
        keep = [g for g in panel.groups if g in shown]
        panel = replace(panel, points={g: v for g, v in panel.points.items() if g in keep},
                        trends={g: v for g, v in panel.trends.items() if g in keep},
                        bands={g: v for g, v in panel.bands.items() if g in keep})
        draw(plt.subplot(1, k), panel, colors=colors, bands=bands, title=name,
             width=width // len(panels), height=height)


def draw_trends(plt, analysis, shown: list[str], colors: dict[str, str], size=None, bands: str = "lines") -> None:
    """The trend plot of the shown groups on `plt` (a textual-plotext figure), drawn by the
    renderer of `divrob plot trends`; `size` (the widget's) says how many ticks fit."""
    from divrob.plots.terminal import draw_trends as draw
    from divrob.plots.terminal import panel_of

    width, height = (size.width, size.height) if size else (None, None)
    draw(plt, panel_of(analysis, shown), colors=colors, bands=bands,
         title=f"OOD vs ID ({analysis.transform})", width=width, height=height)


class TrendsScreen(StoreScreen):
    MODE = "trends"
    DEFAULT_CSS = """
    TrendsScreen #plot { width: 1fr; }
    TrendsScreen #side { width: 34; }
    TrendsScreen #side Select { margin-bottom: 0; }
    TrendsScreen #groups { height: auto; max-height: 7; border-top: solid $primary; }
    TrendsScreen #er { height: 1fr; border-top: solid $primary; }
    """
    BINDINGS = [
        Binding("t", "cycle_transform", "Transform"),
        Binding("g", "focus('#group-by')", "Group by"),
        Binding("b", "focus('#baseline')", "Baseline"),
        Binding("v", "focus('#groups')", "Groups"),
        Binding("d", "cycle_bands", "Bands"),
        Binding("f", "cycle_facet", "Facets"),
        Binding("x", "export", "Export"),
    ]

    class Analysed(Message):
        def __init__(self, value, final: bool = True) -> None:
            self.key, self.analysis = value
            self.final = final  # False: trends without bands or intervals yet
            super().__init__()

    def __init__(self) -> None:
        super().__init__()
        self.analysis = None
        self.analysed_key = None
        self.requested_key = None
        self.group_colors: dict[str, str] = {}
        self.hidden: dict[str, set[str]] = {}  # per group-by: the groups the user switched off
        self.bands = "lines"
        self.said = ""  # what the plot area says instead of a plot
        self.glance = None  # the first study's trends by distribution, drawn until the analysis comes
        self.painted_trends: float | None = None  # perf_counter() when trend lines first reached the screen
        self.fitting = False  # the trends are drawn; bands and intervals are still being resampled
        self.facet: str | None = None  # a field: one panel per value, side by side
        self.facets: dict | None = None  # panel name -> TrendPanel of the shown facet

    def compose(self) -> ComposeResult:
        yield NavBar(self.MODE)
        with Horizontal():
            yield PlotextPlot(id="plot")
            with Vertical(id="side"):
                yield Select([], prompt="study", id="study", compact=True)
                yield Select([], prompt="group by", id="group-by", compact=True)
                yield Select([], prompt="baseline", id="baseline", compact=True)
                yield Select([(f"transform: {t}", t) for t in TRANSFORMS], value="probit", id="transform",
                             compact=True, allow_blank=False)
                yield SelectionList[str](id="groups")
                yield DataTable(id="er", cursor_type="row", show_cursor=False)
        yield ProgressPanel()
        yield Footer()

    @on(StoreScreen.StudiesLoaded)
    def _studies(self, m: StoreScreen.StudiesLoaded) -> None:
        """The first list picks a study; a later one (a study launched meanwhile) keeps the choice."""
        first = self.studies is None
        self.stamp, self.studies = m.stamp, m.studies
        select = self.query_one("#study", Select)
        keep = select.value
        with self.prevent(Select.Changed):
            select.set_options([(s, s) for s in m.studies] + ([("all studies", ALL)] if len(m.studies) > 1 else []))
            if m.studies:
                select.value = keep if not first and (keep in m.studies or keep == ALL and len(m.studies) > 1) \
                    else m.studies[0]
        if not m.studies:
            self.say("no results yet: launch a study (Recipes 1 → Study 2); its trends appear here")
            return
        self._load_points()

    class FirstLoaded(Message):
        def __init__(self, value) -> None:
            self.studies, self.stamp, self.glance = value
            super().__init__()

    def load_studies(self) -> None:
        """The first time, the first study's trends at a glance come in the same worker: on a big
        study they are drawn well before every point is loaded and resampled."""
        if self.studies is not None:
            super().load_studies()
            return

        self.in_worker(self.adapter.first_glance, self.FirstLoaded, group="studies", context="reading studies")

    @on(FirstLoaded)
    def _first(self, m: FirstLoaded) -> None:
        if m.glance is not None and self.analysis is None:
            self.glance = m.glance
            self.draw_glance()
            # the full load (which starts with the list) holds the interpreter for a second or
            # two: let the glance reach the terminal first
            self.call_after_refresh(self._studies, StoreScreen.StudiesLoaded((m.studies, m.stamp)))
        else:
            self._studies(StoreScreen.StudiesLoaded((m.studies, m.stamp)))

    def draw_glance(self) -> None:
        """The glance's points and lines (every distribution, probit), and a word that the bands
        and intervals are on their way."""
        from rich.text import Text

        from divrob.plots.terminal import TrendPanel
        from divrob.plots.terminal import draw_trends as draw

        g = self.glance
        if not g.points:
            return
        self.group_colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(g.points)}
        plot = self.query_one("#plot", PlotextPlot)
        plot.plt.clear_figure()
        draw(plot.plt, TrendPanel(g.transform, g.points, g.trends, metric=g.metric),
             colors=self.group_colors, bands=self.bands, title=f"OOD vs ID ({g.transform})",
             width=plot.size.width, height=plot.size.height)
        plot.refresh()
        if g.trends:
            self.call_after_refresh(self._painted)
        rows = [(Text(fit_name(name, NAME_WIDTH), style=RICH_COLORS.get(self.group_colors[name], "")), "…", "")
                for name in g.points]
        rows.append((Text(f"reading {g.n:,} points…", style="dim"), "", ""))
        fill_table(self.query_one("#er", DataTable), ("group", "ER", "95% CI"), rows)

    def say(self, text: str) -> None:
        """Say something in place of the plot (an empty state, an error)."""
        self.said = text
        plot = self.query_one("#plot", PlotextPlot)
        plot.plt.clear_data()
        plot.plt.title(text)
        plot.refresh()

    @on(Select.Changed, "#study")
    def _load_points(self) -> None:
        study = self.query_one("#study", Select).value
        if study is Select.NULL:
            return
        self.in_worker(lambda: self.adapter.points(None if study == ALL else study, for_analysis=True), self.PointsLoaded,
                       group="points", context="reading results")

    def failed(self, group: str, error: BaseException) -> None:
        if group in ("points", "analyse", "studies"):
            self.requested_key = None
            if self.analysis is None:
                self.say("could not draw the trends (see the error)")

    @on(StoreScreen.PointsLoaded)
    def _points(self, m: StoreScreen.PointsLoaded) -> None:
        self.points = m.points
        self.analysed_key = None  # new data: the same choices must be fitted again
        fields = self.adapter.group_fields(m.points)
        gb = self.query_one("#group-by", Select)
        keep = gb.value if gb.value in fields else "distribution"
        with self.prevent(Select.Changed):
            gb.set_options([(f"group by: {f}", f) for f in fields])
            gb.value = keep
        self._baseline_options()
        self.analyse()

    def _baseline_options(self) -> None:
        from divrob.analysis.report import group_label, group_order

        gb = self.query_one("#group-by", Select).value
        pts = self.points
        names = set()
        if gb in pts.columns:
            names |= {group_label(v) for v in pts[gb].dropna().unique()}
        if "distribution" in pts.columns:
            names |= set(map(str, pts["distribution"].unique()))
        bl = self.query_one("#baseline", Select)
        keep = bl.value if bl.value in names else ("scratch" if "scratch" in names else None)
        with self.prevent(Select.Changed):
            bl.set_options([(f"baseline: {n}", n) for n in group_order(names)])
            if keep is None:  # no scratch group: no baseline until the user picks one
                bl.clear()
            else:
                bl.value = keep

    @on(Select.Changed, "#group-by")
    def _group_by_changed(self) -> None:
        if self.points is not None:
            self._baseline_options()
            self.analyse()

    @on(Select.Changed, "#baseline,#transform")
    def _choice_changed(self) -> None:
        self.analyse()

    def analyse(self) -> None:
        if self.points is None:
            return
        gb = self.query_one("#group-by", Select).value
        bl = self.query_one("#baseline", Select).value
        tf = self.query_one("#transform", Select).value
        if gb is Select.NULL:
            return
        key = (gb, None if bl is Select.NULL else bl, tf)
        if key == self.analysed_key or key == self.requested_key:
            return
        self.requested_key = key
        points = self.points
        reporter = self.reporter()

        def fit():
            from textual.worker import get_current_worker

            task = reporter.task(f"fitting trends by {key[0]} ({key[2]})")
            try:
                # the trends first (no resampling: quick on a big study), then bands and intervals
                quick = self.adapter.analyse(points, key[0], None, key[2], with_bands=False)
                if not get_current_worker().is_cancelled:
                    self.post_message(self.Analysed((key, quick), final=False))
                return key, self.adapter.analyse(points, *key)
            finally:
                task.close()

        self.in_worker(fit, self.Analysed, group="analyse", context="fitting trends")

    @on(Analysed)
    def _analysed(self, m: Analysed) -> None:
        if not m.final and self.requested_key != m.key:
            return  # a newer choice is being fitted
        self.analysis = m.analysis
        self.fitting = not m.final
        if m.final:
            self.analysed_key, self.requested_key = m.key, None
        groups = list(m.analysis.groups)
        self.group_colors = {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(groups)}
        gl = self.query_one("#groups", SelectionList)
        hidden = self.hidden.setdefault(m.key[0], set())  # what the user switched off under this group-by
        with self.prevent(SelectionList.SelectedChanged):
            gl.clear_options()
            gl.add_options([Selection(g, g, g not in hidden) for g in groups])
        if m.final and self.facet is not None:
            self._fit_facets()  # the facets follow the new choices
        else:
            self.redraw()
        if m.analysis.trends:
            self.call_after_refresh(self._painted)

    def _painted(self) -> None:
        if self.painted_trends is None:
            self.painted_trends = time.perf_counter()

    @on(SelectionList.SelectedChanged, "#groups")
    def _toggled(self) -> None:
        if self.analysis is not None:
            on_ = set(self.query_one("#groups", SelectionList).selected)
            self.hidden[self.analysis.group_by] = {g for g in self.analysis.groups if g not in on_}
        self.redraw()

    def shown_groups(self) -> list[str]:
        gl = self.query_one("#groups", SelectionList)
        on_ = set(gl.selected)
        return [g for g in self.analysis.groups if g in on_] if self.analysis else []

    def redraw(self) -> None:
        if self.analysis is None:
            return
        from rich.text import Text

        shown = self.shown_groups()
        plot = self.query_one("#plot", PlotextPlot)
        plot.plt.clear_figure()
        if shown and self.facet and self.facets:
            self.said = ""
            draw_facets(plot.plt, self.facets, shown, self.group_colors, plot.size, self.bands)
            plot.refresh()
        elif shown:
            self.said = ""
            draw_trends(plot.plt, self.analysis, shown, self.group_colors, plot.size, self.bands)
            plot.refresh()
        elif self.analysis.groups:
            self.say("every group is switched off: v, then space, shows one")
        else:
            self.say("no epochs with both scores to plot yet")
        a = self.analysis
        rows = []
        for g, r in a.groups.items():
            if g not in shown:
                continue
            name = Text(fit_name(g, NAME_WIDTH), style=RICH_COLORS.get(self.group_colors.get(g, ""), ""))
            if r.er is None:
                rows.append((name, "-", "-"))
                continue
            mean, lo, hi = r.er
            if g == a.baseline:
                ci = Text("baseline", style="dim")
            else:
                verdict = {"above": "green", "below": "red", "spans 0": "yellow"}.get(r.verdict, "dim")
                ci = Text(f"{signed(lo)}…{signed(hi)}", style=verdict)
            rows.append((name, signed(mean), ci))
        if self.fitting:
            rows.append((Text("resampling…", style="dim"), "", ""))
        elif a.baseline is None:
            rows.append((Text("no baseline", style="dim"), "-", "-"))
        fill_table(self.query_one("#er", DataTable), ("group", "ER", "95% CI"), rows)

    def facet_choices(self) -> list[str | None]:
        """No facets, then each field (not the group-by) with 2 to 4 values."""
        if self.points is None or self.analysis is None:
            return [None]
        from divrob.analysis.report import NO_AXIS

        out: list[str | None] = [None]
        for f in self.adapter.group_fields(self.points):
            values = set(self.points[f].dropna().unique()) - {"", NO_AXIS}
            if f != self.analysis.group_by and 2 <= len(values) <= 4:
                out.append(f)
        return out

    def action_cycle_facet(self) -> None:
        choices = self.facet_choices()
        self.facet = choices[(choices.index(self.facet) + 1) % len(choices)] if self.facet in choices else None
        self.notify(f"facets: {self.facet or 'none'}", timeout=2)
        self._fit_facets()

    def _fit_facets(self) -> None:
        self.facets = None
        if self.facet is None or self.analysis is None or self.facet == self.analysis.group_by:
            self.facet = None
            self.redraw()
            return
        points, key, facet = self.points, (self.analysis.group_by, self.analysis.baseline, self.analysis.transform), self.facet

        def fit():
            from divrob.analysis.report import facet_panels
            from divrob.plots.terminal import panel_of

            return facet, {name: panel_of(self.adapter.analyse(sub, *key)) for name, sub in
                           facet_panels(points, facet, key[0]).items()}

        self.in_worker(fit, lambda v: Done("facets", v), group="facets", context=f"fitting facets by {facet}")

    def action_cycle_bands(self) -> None:
        from divrob.plots.terminal import BAND_STYLES

        self.bands = BAND_STYLES[(BAND_STYLES.index(self.bands) + 1) % len(BAND_STYLES)]
        self.notify(f"bands: {self.bands}", timeout=2)
        self.redraw()

    def action_cycle_transform(self) -> None:
        select = self.query_one("#transform", Select)
        select.value = TRANSFORMS[(TRANSFORMS.index(select.value) + 1) % len(TRANSFORMS)]

    def action_focus(self, selector: str) -> None:
        widget = self.query_one(selector)
        widget.focus()
        if isinstance(widget, SelectionList) and widget.highlighted is None and widget.option_count:
            widget.highlighted = 0

    @work(group="export-prompt")
    async def action_export(self) -> None:
        if self.analysis is None:
            self.notify("nothing to export yet", severity="warning")
            return
        value = self.query_one("#study", Select).value
        study = "all" if value == ALL else str(value)
        path = await self.app.push_screen_wait(PathPrompt(
            "Export the trend figure (shown groups) to:", f"figures/{study}-trends.png",
            ".png, .svg or .pdf · relative to the workspace"))
        if not path:
            return
        analysis, shown = self.analysis, self.shown_groups()
        self.in_worker(lambda: self.adapter.export_figure(analysis, shown, path, study),
                       lambda p: Done("exported", p), group="export", context="exporting the figure")

    @on(Done)
    def _done(self, m: Done) -> None:
        if m.what == "exported":
            self.notify(f"written to {m.value}", title="export")
        elif m.what == "facets" and m.value[0] == self.facet:
            self.facets = m.value[1]
            self.redraw()
        elif m.what == "stamp":
            self.stamp_changed(m.value)  # reads the studies again, then the points
