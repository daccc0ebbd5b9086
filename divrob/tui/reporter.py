"""A `divrob.progress.Reporter` that drives a `ProgressPanel` by posting it messages, so core
code running in a worker thread shows its progress in the TUI."""

from __future__ import annotations

import itertools

from divrob.tui.components.progress_panel import ProgressPanel

_ids = itertools.count(1)


class _PanelTask:
    def __init__(self, panel: ProgressPanel, task_id: int) -> None:
        self._panel = panel
        self._id = task_id
        self._closed = False

    def advance(self, n: int = 1) -> None:
        self._panel.post_message(ProgressPanel.Advanced(self._id, n))

    def update(self, *, total: int | None = None, description: str | None = None) -> None:
        self._panel.post_message(ProgressPanel.Updated(self._id, total, description))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._panel.post_message(ProgressPanel.Closed(self._id))


class TextualReporter:
    """Thread-safe: `post_message` hands each update to the panel's event loop."""

    def __init__(self, panel: ProgressPanel) -> None:
        self.panel = panel

    def task(self, description: str, total: int | None = None) -> _PanelTask:
        task_id = next(_ids)
        self.panel.post_message(ProgressPanel.Started(task_id, description, total))
        return _PanelTask(self.panel, task_id)

    def log(self, message: str) -> None:
        self.panel.post_message(ProgressPanel.Logged(message))
