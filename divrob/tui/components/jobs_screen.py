"""Jobs: a live table (state, epoch progress, throughput, GPU slot, elapsed, ETA), the log tail
of the selected job, cancel and retry. Refreshes on a timer while the screen is shown."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Log

from divrob.states import STATE_STYLE
from divrob.tui.components.base import DataScreen, Done
from divrob.tui.components.confirm import Confirm
from divrob.tui.components.nav_bar import NavBar
from divrob.tui.components.progress_panel import ProgressPanel
from divrob.tui.components.tables import fill_table

BAR = 6


def duration(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(s)
    if s < 3600:
        return f"{s // 60}:{s % 60:02d}"
    return f"{s // 3600}h{s % 3600 // 60:02d}"


def short(label: str, width: int = 22) -> str:
    """'shapes-2000 / resnet18 / seed 1' → 'shapes-2000/resnet18/s1': the table fits 80 columns;
    the log pane's first line names the job in full."""
    label = label.replace(" / ", "/").replace("seed ", "s")
    return label if len(label) <= width else label[: width - 1] + "…"


def bar(fraction: float | None, text: str) -> Text:
    """An epoch progress bar drawn with block characters (no animation, so it snapshots)."""
    if fraction is None:
        return Text(text or "-", style="dim")
    full = round(fraction * BAR)
    out = Text("█" * full, style="green")
    out.append("░" * (BAR - full), style="dim")
    out.append(f" {text}")
    return out


class JobsScreen(DataScreen):
    MODE = "jobs"
    DEFAULT_CSS = """
    JobsScreen #jobs { height: 1fr; }
    JobsScreen #log { height: 9; border-top: solid $primary; }
    """
    BINDINGS = [
        Binding("c", "cancel", "Cancel job"),
        Binding("r", "retry", "Retry"),
        Binding("a", "toggle_done", "Show/hide done"),
        Binding("g", "refresh", "Refresh"),
    ]

    class Loaded(Message):
        def __init__(self, value) -> None:
            self.rows, self.log = value
            super().__init__()

    def __init__(self) -> None:
        super().__init__()
        self.include_done = True
        self.rows: list = []
        self.selected: str | None = None
        self._timer = None

    def compose(self) -> ComposeResult:
        yield NavBar(self.MODE)
        yield DataTable(id="jobs", cursor_type="row", zebra_stripes=True)
        yield Log(id="log", max_lines=400)
        yield ProgressPanel()
        yield Footer()

    def on_mount(self) -> None:
        self._timer = self.set_interval(self.app.refresh_s, self.action_refresh)
        self.action_refresh()

    def on_screen_suspend(self) -> None:
        if self._timer is not None:
            self._timer.pause()

    def on_screen_resume(self) -> None:
        if self._timer is not None:
            self._timer.resume()
            self.action_refresh()

    def action_refresh(self) -> None:
        include, selected = self.include_done, self.selected

        def load():
            rows = self.adapter.jobs(include)
            ids = [r.job_id for r in rows]
            job = selected if selected in ids else (ids[0] if ids else None)
            return rows, (self.adapter.job_log(job) if job else "")

        self.in_worker(load, self.Loaded, group="jobs", context="reading jobs")

    @on(Loaded)
    def _loaded(self, m: Loaded) -> None:
        log = self.query_one("#log", Log)
        log.clear()
        log.write((m.log or "no jobs in this workspace yet: launch a study from Study (2)").rstrip("\n"))
        if m.rows == self.rows and self.rows:
            return  # nothing changed: leave the table (and its scroll) alone
        table = self.query_one("#jobs", DataTable)
        keep = self.selected
        self.rows = m.rows
        fill_table(table, ("what", "state", "progress", "img/s", "slot", "elapsed", "ETA"), [
            (short(r.label), Text(r.state, style=STATE_STYLE.get(r.state, "")),
             bar(r.fraction, r.epoch_text), "-" if r.images_per_s is None else f"{r.images_per_s:.0f}",
             r.slot, duration(r.elapsed), duration(r.eta)) for r in m.rows], row_keys=[r.job_id for r in m.rows])
        ids = [r.job_id for r in m.rows]
        if keep in ids:
            table.move_cursor(row=ids.index(keep), animate=False)
        elif ids:
            self.selected = ids[0]

    @on(DataTable.RowHighlighted, "#jobs")
    def _highlighted(self, m: DataTable.RowHighlighted) -> None:
        job = m.row_key.value if m.row_key is not None else None
        if job and job != self.selected:
            self.selected = job
            self.in_worker(lambda: self.adapter.job_log(job), lambda text: Done("log", text), group="log",
                           context="reading the log")

    @on(Done)
    def _done(self, m: Done) -> None:
        if m.what == "log":
            log = self.query_one("#log", Log)
            log.clear()
            log.write(m.value.rstrip("\n"))
        elif m.what in ("cancelled", "retried"):
            self.notify(m.value, title=m.what, markup=False)
            self.action_refresh()

    def action_toggle_done(self) -> None:
        self.include_done = not self.include_done
        self.action_refresh()

    @work(group="jobs-confirm")
    async def action_cancel(self) -> None:
        job = self.selected
        if job is None:
            return
        if not await self.app.push_screen_wait(Confirm(f"Cancel job {job[:8]}?")):
            return
        self.in_worker(lambda: f"cancelling {len(self.adapter.cancel(job))} job(s)", lambda v: Done("cancelled", v),
                       group="cancel", context=f"cancelling {job[:8]}")

    def action_retry(self) -> None:
        job = self.selected
        if job is None:
            return
        reporter = self.reporter()
        self.in_worker(lambda: self.adapter.retry(job, reporter), lambda v: Done("retried", v), group="retry",
                       context=f"retrying {job[:8]}")
