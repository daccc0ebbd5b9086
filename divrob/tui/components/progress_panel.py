"""Long work (building manifests, planning, launching) as progress bars above the footer.

The panel is fed by messages, so a worker thread drives it through `TextualReporter`
(divrob/tui/reporter.py) without touching widgets itself.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Label, ProgressBar


class ProgressPanel(Vertical):
    DEFAULT_CSS = """
    ProgressPanel { height: auto; max-height: 6; dock: bottom; display: none; background: $panel; }
    ProgressPanel.-busy { display: block; }
    ProgressPanel > Horizontal { height: 1; }
    ProgressPanel Label.task { width: 1fr; }
    ProgressPanel ProgressBar { width: auto; }
    ProgressPanel #progress-log { color: $text-muted; height: 1; }
    """

    class Started(Message):
        def __init__(self, task_id: int, description: str, total: int | None) -> None:
            self.task_id, self.description, self.total = task_id, description, total
            super().__init__()

    class Advanced(Message):
        def __init__(self, task_id: int, n: int) -> None:
            self.task_id, self.n = task_id, n
            super().__init__()

    class Updated(Message):
        def __init__(self, task_id: int, total: int | None, description: str | None) -> None:
            self.task_id, self.total, self.description = task_id, total, description
            super().__init__()

    class Closed(Message):
        def __init__(self, task_id: int) -> None:
            self.task_id = task_id
            super().__init__()

    class Logged(Message):
        def __init__(self, text: str) -> None:
            self.text = text
            super().__init__()

    def compose(self) -> ComposeResult:
        yield Label("", id="progress-log", markup=False)

    def _row(self, task_id: int) -> Horizontal | None:
        rows = self.query(f"#task-{task_id}")
        return rows.first() if rows else None

    def _sync(self) -> None:
        self.set_class(bool(self.query("Horizontal")), "-busy")

    @on(Started)
    def _started(self, m: Started) -> None:
        row = Horizontal(Label(m.description, classes="task", markup=False),
                         ProgressBar(total=m.total, show_eta=False), id=f"task-{m.task_id}")
        self.mount(row, before=self.query_one("#progress-log"))
        self.add_class("-busy")

    @on(Advanced)
    def _advanced(self, m: Advanced) -> None:
        row = self._row(m.task_id)
        if row is not None:
            row.query_one(ProgressBar).advance(m.n)

    @on(Updated)
    def _updated(self, m: Updated) -> None:
        row = self._row(m.task_id)
        if row is None:
            return
        if m.total is not None:
            row.query_one(ProgressBar).update(total=m.total)
        if m.description:
            row.query_one(Label).update(m.description)

    @on(Closed)
    async def _closed(self, m: Closed) -> None:
        row = self._row(m.task_id)
        if row is not None:
            await row.remove()
        self._sync()

    @on(Logged)
    def _logged(self, m: Logged) -> None:
        self.query_one("#progress-log", Label).update(m.text)
