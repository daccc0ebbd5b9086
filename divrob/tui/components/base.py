"""What every screen shares: the nav bar, the progress panel, and `in_worker`, which runs a
blocking adapter call in a thread and posts its result back as a message (or an error to the
app's toasts). Nothing slow ever runs on the event loop. Polling backs off after a failure."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from textual.message import Message
from textual.screen import Screen
from textual.worker import Worker, get_current_worker

from divrob.tui.components.error_modal import ShowError
from divrob.tui.components.progress_panel import ProgressPanel

MAX_BACKOFF_S = 60.0


class Failed(Message):
    """A worker of this screen failed (after the error went to the app): clear stale status."""

    def __init__(self, group: str, error: BaseException) -> None:
        self.group = group
        self.error = error
        super().__init__()


class Succeeded(Message):
    def __init__(self, group: str, context: str) -> None:
        self.group = group
        self.context = context
        super().__init__()


class DataScreen(Screen):
    MODE = ""

    def __init__(self) -> None:
        super().__init__()
        self.failures: dict[str, int] = {}  # worker group -> failures in a row
        self.quiet_until: dict[str, float] = {}  # worker group -> no polling before this time

    @property
    def adapter(self):
        return self.app.adapter

    def reporter(self):
        from divrob.tui.reporter import TextualReporter

        return TextualReporter(self.query_one(ProgressPanel))

    def in_worker(self, fn: Callable[[], Any], done: Callable[[Any], Message] | None, *, group: str,
                  context: str = "", exclusive: bool = True) -> Worker:
        """Run `fn` in a thread; post `done(result)` to this screen, or ShowError to the app and
        `Failed` to this screen (which clears its "loading…" text).

        An exclusive group drops the result of an older call still in flight, so a quick
        second request (a new filter) wins over a slow first one."""
        def job() -> None:
            worker = get_current_worker()
            try:
                result = fn()
            except Exception as e:  # every failure becomes a toast, never a traceback
                if not worker.is_cancelled:
                    self.app.post_message(ShowError(e, context))
                    self.post_message(Failed(group, e))
                return
            if not worker.is_cancelled:
                self.post_message(Succeeded(group, context))
                if done is not None:
                    self.post_message(done(result))

        return self.run_worker(job, thread=True, group=group, exclusive=exclusive, exit_on_error=False,
                               name=context or group)

    def on_failed(self, m: Failed) -> None:
        n = self.failures[m.group] = self.failures.get(m.group, 0) + 1
        self.quiet_until[m.group] = time.monotonic() + min(MAX_BACKOFF_S, self.app.refresh_s * 2 ** n)
        self.failed(m.group, m.error)

    def on_succeeded(self, m: Succeeded) -> None:
        if self.failures.pop(m.group, None):
            self.quiet_until.pop(m.group, None)
            self.app.error_cleared(m.context)

    def failed(self, group: str, error: BaseException) -> None:
        """Screens reset what said "loading…" for `group`."""

    def poll_due(self, group: str) -> bool:
        """Whether a timer may poll `group` now: not while it backs off after failures."""
        return time.monotonic() >= self.quiet_until.get(group, 0.0)


class Done(Message):
    """A generic result message for small one-off jobs (launch, cancel, export)."""

    def __init__(self, what: str, value: Any) -> None:
        self.what = what
        self.value = value
        super().__init__()


class StoreScreen(DataScreen):
    """A screen over the store's results: it lists the studies on mount and polls the store's
    stamp, so new epochs ingested by the manager, and new studies, show up while jobs run."""

    class StudiesLoaded(Message):
        def __init__(self, value) -> None:
            self.studies, self.stamp = value
            super().__init__()

    class PointsLoaded(Message):
        def __init__(self, points) -> None:
            self.points = points
            super().__init__()

    def __init__(self) -> None:
        super().__init__()
        self.points = None
        self.stamp = None
        self.studies: list[str] | None = None

    def on_mount(self) -> None:
        self.load_studies()
        self.set_interval(self.app.refresh_s * 3, self._check_stamp)

    def load_studies(self) -> None:
        self.in_worker(lambda: (self.adapter.studies(), self.adapter.store_stamp()), self.StudiesLoaded,
                       group="studies", context="reading studies")

    def on_screen_resume(self) -> None:
        if self.studies is not None:
            self._check_stamp()

    def _check_stamp(self) -> None:
        if self.app.screen is not self or not self.poll_due("stamp") or not self.poll_due("studies"):
            return
        self.in_worker(self.adapter.store_stamp, lambda s: Done("stamp", s), group="stamp", context="store")

    def stamp_changed(self, stamp) -> bool:
        """On a new stamp: True, and the study list is read again (a study launched meanwhile)."""
        if stamp == self.stamp:
            return False
        self.stamp = stamp
        self.load_studies()
        return True
