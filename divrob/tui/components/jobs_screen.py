"""Jobs: a live monitor in the htop tradition. Per job its study, what it is, state, a progress
bar with % from steps, epoch x/y, images/s with a sparkline, GPU use where the run reports it,
elapsed and an ETA from the measured rate (all from `dispatch.monitor`, as `divrob jobs ls`);
a log pane that follows the selected job's log and stops following when scrolled up; cancel,
retry and open-log from the row. Refreshes on a timer while the screen is shown."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Log, Static

from divrob.dispatch.monitor import duration
from divrob.states import ACTIVE, STATE_STYLE
from divrob.tui.components.base import DataScreen, Done
from divrob.tui.components.confirm import Confirm
from divrob.tui.components.nav_bar import NavBar
from divrob.tui.components.progress_panel import ProgressPanel
from divrob.tui.components.tables import fill_table

BAR = 6
SPARK = "▁▂▃▄▅▆▇█"
HISTORY = 8  # images/s samples kept per job for its sparkline


def short(label: str, width: int = 22) -> str:
    """'shapes-2000 / resnet18 / seed 1' → 'shapes-2000/resnet18/s1': the table fits 80 columns;
    the log pane's first line names the job in full."""
    label = label.replace(" / ", "/").replace("seed ", "s")
    return label if len(label) <= width else label[: width - 1] + "…"


def bar(fraction: float | None, text: str, state: str = "running") -> Text:
    """A progress bar of block characters with its percentage (no animation, so it snapshots);
    green while running or done, in the state's colour when the run stopped early."""
    if fraction is None:
        return Text(text or "-", style="dim")
    full = min(BAR, int(fraction * BAR + 0.5)) if state == "finished" else min(BAR - 1, int(fraction * BAR + 0.5))
    style = "green" if state in ("running", "finished") else STATE_STYLE.get(state, "yellow")
    out = Text("█" * full, style=style)
    out.append("░" * (BAR - full), style="dim")
    out.append(f"{int(fraction * 100):>3}%")
    if text:
        out.append(f" {text}")
    return out


def sparkline(values: list[float]) -> str:
    """The last throughput samples as block heights (scaled to their own maximum)."""
    vals = [v for v in values if v is not None]
    if len(vals) < 2:
        return ""
    top = max(vals) or 1.0
    return "".join(SPARK[min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1) + 0.5))] for v in vals[-HISTORY:])


def gpu_text(view) -> str:
    parts = []
    if view.gpu_util is not None:
        parts.append(f"{view.gpu_util:.0f}%")
    if view.gpu_mem is not None:
        parts.append(f"{view.gpu_mem:.1f}G")
    return " ".join(parts) or "-"


class JobsScreen(DataScreen):
    MODE = "jobs"
    DEFAULT_CSS = """
    JobsScreen #jobs-status { height: 1; padding: 0 1; color: $text-muted; }
    JobsScreen #jobs { height: 1fr; }
    JobsScreen #log-head { height: 1; padding: 0 1; border-top: solid $primary; background: $panel; }
    JobsScreen #log { height: 8; }
    JobsScreen.-log-open #jobs { height: 5; }
    JobsScreen.-log-open #log { height: 1fr; }
    """
    BINDINGS = [
        Binding("c", "cancel", "Cancel job"),
        Binding("r", "retry", "Retry"),
        Binding("l", "open_log", "Log"),
        Binding("f", "follow", "Follow log"),
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
        self.all_count = 0
        self.left: list[str] = []  # estimated time left per study (divrob.dispatch.cost)
        self.selected: str | None = None
        self.log_job: str | None = None  # whose log the pane holds
        self.log_offsets: dict[str, int] | None = None
        self.speeds: dict[str, list[float]] = {}
        self._timer = None

    def compose(self) -> ComposeResult:
        yield NavBar(self.MODE)
        yield Static("", id="jobs-status", markup=False)
        yield DataTable(id="jobs", cursor_type="row", zebra_stripes=True)
        yield Static("", id="log-head", markup=False)
        yield Log(id="log", max_lines=2000)
        yield ProgressPanel()
        yield Footer()

    def on_mount(self) -> None:
        self._timer = self.set_interval(self.app.refresh_s, self._tick)
        self.action_refresh()

    def on_screen_suspend(self) -> None:
        if self._timer is not None:
            self._timer.pause()

    def on_screen_resume(self) -> None:
        if self._timer is not None:
            self._timer.resume()
            self.action_refresh()

    def _tick(self) -> None:
        if self.poll_due("jobs"):  # after a failure: wait longer each time
            self.action_refresh()

    def action_refresh(self) -> None:
        include, selected = self.include_done, self.selected
        log_job, offsets = self.log_job, self.log_offsets

        def load():
            every = self.adapter.jobs(True)
            rows = every if include else [r for r in every if r.state in ACTIVE]
            left = self.adapter.time_left(every)
            ids = [r.job_id for r in rows]
            job = selected if selected in ids else (ids[0] if ids else None)
            log = None
            if job:
                log = (job, job == log_job, self.adapter.job_log_since(job, offsets if job == log_job else None))
            return (rows, len(every), left), log

        self.in_worker(load, self.Loaded, group="jobs", context="reading jobs")

    def failed(self, group: str, error: BaseException) -> None:
        if group == "jobs":
            self.query_one("#jobs-status", Static).update(f"could not read the jobs (retrying less often): {error}")

    @on(Loaded)
    def _loaded(self, m: Loaded) -> None:
        rows, self.all_count, self.left = m.rows
        if m.log is not None:
            self._show_log(*m.log)
        else:
            self.log_job, self.log_offsets = None, None
            self.query_one("#log-head", Static).update("")
            self.query_one("#log", Log).clear()
        for r in rows:
            if r.state == "running" and r.images_per_s is not None:
                self.speeds.setdefault(r.job_id, []).append(r.images_per_s)
                del self.speeds[r.job_id][:-HISTORY]
        self._status(rows)
        if rows == self.rows and self.rows:
            return  # nothing changed: leave the table (and its scroll) alone
        table = self.query_one("#jobs", DataTable)
        keep = self.selected
        self.rows = rows
        # the numbers a glance needs first (ETA within 80 columns), the rest to the right
        fill_table(table, ("what", "state", "progress", "ETA", "elapsed", "img/s", "gpu", "study"), [
            (short(r.label, 18), Text(r.state, style=STATE_STYLE.get(r.state, "")),
             bar(r.fraction, r.epoch_text, r.state), duration(r.eta), duration(r.elapsed),
             ("-" if r.images_per_s is None else f"{r.images_per_s:.0f}") +
             (f" {s}" if (s := sparkline(self.speeds.get(r.job_id, []))) else ""),
             gpu_text(r), r.study or "-") for r in rows],
            row_keys=[r.job_id for r in rows])
        ids = [r.job_id for r in rows]
        if keep in ids:
            table.move_cursor(row=ids.index(keep), animate=False)
        elif ids:
            self.selected = ids[0]

    def _status(self, rows) -> None:
        hidden = self.all_count - len(rows)
        if rows:
            counts = {}
            for r in rows:
                counts[r.state] = counts.get(r.state, 0) + 1
            text = " · ".join(f"{n} {s}" for s, n in counts.items())
            if hidden:
                text += f" · {hidden} done hidden (a: show)"
        elif hidden:
            text = f"no queued or running jobs; {hidden} finished, failed or cancelled hidden (a: show them)"
        else:
            text = "no jobs in this workspace yet: launch a study from Study (2)"
        if self.left:  # "time left for STUDY: ~2.5 h (...)", one study after another
            text += " · " + " · ".join(self.left)
        self.query_one("#jobs-status", Static).update(text)

    def _show_log(self, job: str, same: bool, value) -> None:
        head, body, offsets = value
        log = self.query_one("#log", Log)
        self.query_one("#log-head", Static).update(head)
        # follow the tail only while the view is at the end: scrolled up, it stays put
        log.auto_scroll = log.is_vertical_scroll_end or log.max_scroll_y == 0
        if not same or job != self.log_job or not self.log_offsets:
            log.clear()
            log.write(body or "(no log yet)")
        elif body:
            log.write("\n" + body)
        self.log_job, self.log_offsets = job, offsets

    @on(DataTable.RowHighlighted, "#jobs")
    def _highlighted(self, m: DataTable.RowHighlighted) -> None:
        job = m.row_key.value if m.row_key is not None else None
        if job and job != self.selected:
            self.selected = job
            self.in_worker(lambda: (job, False, self.adapter.job_log_since(job, None)),
                           lambda v: Done("log", v), group="log", context="reading the log")

    @on(DataTable.RowSelected, "#jobs")
    def _selected(self, m: DataTable.RowSelected) -> None:
        """enter on a job: its log, large (enter or l again: back)."""
        self.action_open_log()

    @on(Done)
    def _done(self, m: Done) -> None:
        if m.what == "log":
            if m.value[0] == self.selected:
                self._show_log(*m.value)
        elif m.what in ("cancelled", "retried"):
            self.notify(m.value, title=m.what, markup=False)
            self.action_refresh()

    def action_toggle_done(self) -> None:
        self.include_done = not self.include_done
        self.action_refresh()

    def action_open_log(self) -> None:
        """The log pane takes most of the screen (again: back to the table)."""
        self.toggle_class("-log-open")
        self.query_one("#log", Log).focus() if self.has_class("-log-open") else self.query_one("#jobs").focus()

    def action_follow(self) -> None:
        log = self.query_one("#log", Log)
        log.auto_scroll = True
        log.scroll_end(animate=False)

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
