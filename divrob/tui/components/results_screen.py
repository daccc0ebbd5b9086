"""Results: a table over the store, filtered with the --where language, sorted by any column,
per run (last epoch) or per fine-tuning epoch; export to CSV or Parquet.

First paint is cheap: a study's first page of runs comes straight from the store (one query, no
pandas, no epoch rows loaded); every epoch is read only when a filter, a sort, the per-epoch
view or an export needs them (a 100,000-run study paints in about a second)."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Footer, Input, Select, Static

from divrob.states import STATE_STYLE
from divrob.tui.components.base import Done, StoreScreen
from divrob.tui.components.nav_bar import NavBar
from divrob.tui.components.path_prompt import PathPrompt
from divrob.tui.components.progress_panel import ProgressPanel
from divrob.tui.components.tables import fill_table

ALL = "*all*"
MAX_ROWS = 2000  # a DataTable of every epoch of a big study would be slow to fill; export has them all


def cell(v) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) >= 1 else f"{v:.3f}"
    return str(v)


class ResultsScreen(StoreScreen):
    MODE = "results"
    DEFAULT_CSS = """
    ResultsScreen #filters { height: 1; }
    ResultsScreen #study { width: 26; }
    ResultsScreen #where { width: 1fr; }
    ResultsScreen #results-status { height: 1; padding: 0 1; color: $text-muted; }
    ResultsScreen #table { height: 1fr; }
    """
    BINDINGS = [
        Binding("slash", "focus_where", "Filter"),
        Binding("s", "sort", "Sort by column"),
        Binding("e", "toggle_epochs", "Runs/epochs"),
        Binding("x", "export", "Export"),
        Binding("escape", "focus_table", "Table", show=False),
        Binding("m", "mark", "Mark for diff", show=False),
        Binding("d", "diff", "Diff marked", show=False),
    ]

    class PageLoaded(Message):
        def __init__(self, value) -> None:
            self.study, (self.rows, self.n, self.split, self.metric) = value
            super().__init__()

    def __init__(self) -> None:
        super().__init__()
        self.frame = None
        self.page = None  # the first runs of a study, from the store, until every epoch is read
        self.run_ids: list[str] = []  # the full run id of each row shown (the table shows 8 characters)
        self.then = None  # what to do once every epoch is read (a sort, the per-epoch view, an export)
        self.per_epoch = False
        self.sort_by: str | None = None
        self.descending = False
        self.diff_marks: list[str] = []  # run ids marked with `m` (components/diff.py)

    def compose(self) -> ComposeResult:
        yield NavBar(self.MODE)
        with Horizontal(id="filters"):
            yield Select([], prompt="study", id="study", compact=True)
            yield Input(placeholder="where: arch=resnet18, total>=500  (enter)", id="where", compact=True)
        yield Static("", id="results-status", markup=False)
        yield DataTable(id="table", cursor_type="cell", zebra_stripes=True)
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
            select.set_options([("all studies", ALL)] + [(s, s) for s in m.studies])
            if first or (keep != ALL and keep not in m.studies):
                select.value = m.studies[0] if len(m.studies) == 1 else ALL
            else:
                select.value = keep
        if first:
            self.query_one("#table", DataTable).focus()
        if not m.studies:
            self.query_one("#results-status", Static).update(
                "no results yet: launch a study (Recipes 1 → Study 2); its runs appear here as they finish epochs")
            return
        self.load()

    @on(Select.Changed, "#study")
    def _study_changed(self) -> None:
        self.load()

    def failed(self, group: str, error: BaseException) -> None:
        if group in ("points", "studies"):  # never leave "loading…" standing after an error
            self.query_one("#results-status", Static).update(f"could not read results: {error}")

    @on(Input.Submitted, "#where")
    def _where(self) -> None:
        self.load()
        self.action_focus_table()

    def load(self, *, full: bool = False) -> None:
        """One study without a filter: its first page from the store; else every epoch."""
        value = self.query_one("#study", Select).value
        if value is Select.NULL:
            return
        study = None if value == ALL else value
        where = self.query_one("#where", Input).value
        full = full or self.per_epoch or self.sort_by is not None  # a view that needs every epoch stays so
        self.points = None
        self.query_one("#results-status", Static).update("loading…")
        if study is not None and not where.strip() and not full:
            self.in_worker(lambda: (study, self.adapter.results_page(study, MAX_ROWS)), self.PageLoaded,
                           group="points", context="reading results")
            return
        self.page = None
        self.in_worker(lambda: self.adapter.points(study, where), self.PointsLoaded, group="points",
                       context="reading results")

    def needs_points(self, then) -> bool:
        """True when every epoch must be read first (then `then` runs)."""
        if self.points is not None:
            return False
        if self.page is not None:
            self.then = then
            self.load(full=True)
        return True

    @on(PageLoaded)
    def _page(self, m: PageLoaded) -> None:
        from rich.text import Text

        from divrob.store.queries import LAST_EPOCH_FIELDS

        self.page, self.frame = m, None
        # the per-run columns of the full view (the state last), in the store's listing order
        order = [c for c in LAST_EPOCH_FIELDS if c != "state"] + ["state"]
        at = [LAST_EPOCH_FIELDS.index(c) for c in order]
        table = self.query_one("#table", DataTable)
        rid = order.index("run_id")
        self.run_ids = [str(r[at[rid]]) for r in m.rows]
        fill_table(table, order, [tuple(cell(r[i])[:8] if k == rid else
                                        Text(r[i], style=STATE_STYLE.get(r[i], "")) if order[k] == "state"
                                        else cell(r[i]) for k, i in enumerate(at)) for r in m.rows],
                   column_keys=order)
        more = f" · first {len(m.rows)} shown" if m.n > len(m.rows) else ""
        self.query_one("#results-status", Static).update(
            f"{m.n} runs · per run, last epoch · {m.metric}, OOD split {m.split}{more}"
            if m.n else "no results yet in this study")

    @on(StoreScreen.PointsLoaded)
    def _points(self, m: StoreScreen.PointsLoaded) -> None:
        self.points, self.page = m.points, None
        self.render_table()
        then, self.then = self.then, None
        if then is not None:
            then()

    @property
    def all_studies(self) -> bool:
        return self.query_one("#study", Select).value == ALL

    def render_table(self) -> None:
        pts = self.points
        if pts is None:
            return
        frame = pts if self.per_epoch else self.adapter.summary(pts, all_studies=self.all_studies)
        if self.sort_by in getattr(frame, "columns", []):
            frame = frame.sort_values(self.sort_by, ascending=not self.descending, kind="stable")
        self.frame = frame
        table = self.query_one("#table", DataTable)
        table.clear(columns=True)
        self.run_ids = []
        if frame.empty:
            where = self.query_one("#where", Input).value.strip()
            self.query_one("#results-status", Static).update(
                f"no results match {where!r}" if where else "no results yet in this study")
            return
        headers = [f"{c}{(' ↓' if self.descending else ' ↑') if c == self.sort_by else ''}" for c in frame.columns]
        runs = pts["run_id"].nunique() if "run_id" in pts.columns else 0
        rid = list(frame.columns).index("run_id") if "run_id" in frame.columns else -1
        self.run_ids = [str(v) for v in frame["run_id"].head(MAX_ROWS)] if rid >= 0 else []
        fill_table(table, headers, [tuple(cell(v)[:8] if i == rid else cell(v) for i, v in enumerate(row))
                                    for row in frame.head(MAX_ROWS).itertuples(index=False)],
                   column_keys=list(frame.columns))
        if self.sort_by in frame.columns:  # keep the cursor on the sorted column
            table.move_cursor(column=list(frame.columns).index(self.sort_by), animate=False)
        shown = "per epoch" if self.per_epoch else "per run, last epoch"
        more = f" (first {MAX_ROWS} shown)" if len(frame) > MAX_ROWS else ""
        order = f" · sorted by {self.sort_by}" if self.sort_by else ""
        self.query_one("#results-status", Static).update(
            f"{runs} runs · {len(pts)} epochs · {shown}{more}{order}")

    def action_mark(self) -> None:
        from divrob.tui.components.diff import mark

        mark(self, self.diff_marks)

    def action_diff(self) -> None:
        from divrob.tui.components.diff import open_diff

        open_diff(self, self.diff_marks)

    def action_focus_where(self) -> None:
        self.query_one("#where", Input).focus()

    def action_focus_table(self) -> None:
        self.query_one("#table", DataTable).focus()

    def action_sort(self) -> None:
        table = self.query_one("#table", DataTable)
        if not len(table.columns):
            return
        column = str(table.ordered_columns[table.cursor_coordinate.column].key.value)
        if not self.needs_points(lambda: self.sort_on(column)):
            self.sort_on(column)

    def sort_on(self, column: str) -> None:
        if self.frame is None:
            return
        self.descending = not self.descending if column == self.sort_by else False
        self.sort_by = column
        self.render_table()

    @on(DataTable.HeaderSelected, "#table")
    def _header(self, m: DataTable.HeaderSelected) -> None:
        self.query_one("#table", DataTable).move_cursor(column=m.column_index)
        self.action_sort()

    def action_toggle_epochs(self) -> None:
        if self.needs_points(self.action_toggle_epochs):
            return
        self.per_epoch = not self.per_epoch
        self.render_table()

    @work(group="export-prompt")
    async def action_export(self) -> None:
        if self.needs_points(self.action_export):
            return
        if self.frame is None or self.frame.empty:
            self.notify("nothing to export", severity="warning")
            return
        value = self.query_one("#study", Select).value
        name = "all" if value in (ALL, Select.NULL) else str(value)
        path = await self.app.push_screen_wait(PathPrompt(
            "Export these rows (every matching epoch) to:", f"exports/results-{name}.csv",
            ".csv or .parquet · relative to the workspace"))
        if not path:
            return
        frame = self.points  # the export holds every epoch that matches the filter
        self.in_worker(lambda: self.adapter.export_table(frame, path), lambda p: Done("exported", p),
                       group="export", context="exporting results")

    @on(Done)
    def _done(self, m: Done) -> None:
        if m.what == "exported":
            self.notify(f"written to {m.value}", title="export")
        elif m.what == "stamp":
            self.stamp_changed(m.value)  # reads the studies again, then the results
