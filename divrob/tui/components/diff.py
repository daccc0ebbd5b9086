"""What differs between two runs, opened from Results: mark two rows with `m` (a third mark
replaces the oldest), then `d` (with one mark, `d` compares it with the row under the cursor).
The diff is divrob.analysis.diff's, drawn by the CLI's renderer; it loads in a worker."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Static

from divrob.tui.components.base import DataScreen, Done


class DiffScreen(DataScreen):
    MODE = "diff"
    DEFAULT_CSS = """
    DiffScreen #diff-title { height: 1; padding: 0 1; color: $text-muted; }
    DiffScreen #diff-body { height: 1fr; }
    """
    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back")]

    def __init__(self, run_a: str, run_b: str) -> None:
        super().__init__()
        self.run_a, self.run_b = run_a, run_b
        self.diff: dict | None = None

    def compose(self) -> ComposeResult:
        yield Static(f"diff A {self.run_a[:12]} · B {self.run_b[:12]} (esc: back)", id="diff-title", markup=False)
        with VerticalScroll(id="diff-body"):
            yield Static("loading…", id="diff-content")
        yield Footer()

    def on_mount(self) -> None:
        self.in_worker(lambda: self.adapter.diff(self.run_a, self.run_b), lambda d: Done("diff", d),
                       group="diff", context="comparing runs")

    @on(Done)
    def _loaded(self, m: Done) -> None:
        if m.what != "diff":
            return
        from rich.console import Group

        from divrob.plots.diff_tables import diff_renderables

        self.diff = m.value
        self.query_one("#diff-content", Static).update(Group(*diff_renderables(m.value)))


def cursor_run(screen) -> str | None:
    """The run id of the Results row under the cursor (the screen keeps each shown row's full id:
    the table shows 8 characters)."""
    from textual.widgets import DataTable

    row = screen.query_one("#table", DataTable).cursor_coordinate.row
    return screen.run_ids[row] if 0 <= row < len(screen.run_ids) else None


def mark(screen, marks: list[str]) -> None:
    """Toggle the cursor row's run in `marks` (two at most: a third replaces the oldest)."""
    run = cursor_run(screen)
    if run is None:
        return
    if run in marks:
        marks.remove(run)
    else:
        marks.append(run)
        del marks[:-2]
    screen.notify(f"marked for diff: {', '.join(r[:8] for r in marks) or 'none'}", title="diff")


def open_diff(screen, marks: list[str]) -> None:
    pair = list(marks)
    if len(pair) == 1 and cursor_run(screen) not in (None, pair[0]):
        pair.append(cursor_run(screen))
    if len(pair) != 2:
        screen.notify("mark two runs with m (or one, then put the cursor on another), then press d",
                      severity="warning", title="diff")
        return
    screen.app.push_screen(DiffScreen(*pair))
