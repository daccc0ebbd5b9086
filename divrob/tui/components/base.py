"""What every screen shares: the nav bar, the progress panel, and `in_worker`, which runs a
blocking adapter call in a thread and posts its result back as a message (or an error to the
app's modal). Nothing slow ever runs on the event loop."""

from __future__ import annotations

from typing import Any, Callable

from textual.message import Message
from textual.screen import Screen
from textual.worker import Worker, get_current_worker

from divrob.tui.components.error_modal import ShowError
from divrob.tui.components.progress_panel import ProgressPanel


class DataScreen(Screen):
    MODE = ""

    @property
    def adapter(self):
        return self.app.adapter

    def reporter(self):
        from divrob.tui.reporter import TextualReporter

        return TextualReporter(self.query_one(ProgressPanel))

    def in_worker(self, fn: Callable[[], Any], done: Callable[[Any], Message] | None, *, group: str,
                  context: str = "", exclusive: bool = True) -> Worker:
        """Run `fn` in a thread; post `done(result)` to this screen, or ShowError to the app.

        An exclusive group drops the result of an older call still in flight, so a quick
        second request (a new filter) wins over a slow first one."""
        def job() -> None:
            worker = get_current_worker()
            try:
                result = fn()
            except Exception as e:  # every failure becomes a modal, never a traceback
                if not worker.is_cancelled:
                    self.app.post_message(ShowError(e, context))
                return
            if done is not None and not worker.is_cancelled:
                self.post_message(done(result))

        return self.run_worker(job, thread=True, group=group, exclusive=exclusive, exit_on_error=False,
                               name=context or group)


class Done(Message):
    """A generic result message for small one-off jobs (launch, cancel, export)."""

    def __init__(self, what: str, value: Any) -> None:
        self.what = what
        self.value = value
        super().__init__()


class StoreScreen(DataScreen):
    """A screen over the store's results: it lists the studies on mount and polls the store's
    stamp, so new epochs ingested by the manager show up while jobs run."""

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

    def on_mount(self) -> None:
        self.in_worker(lambda: (self.adapter.studies(), self.adapter.store_stamp()), self.StudiesLoaded,
                       group="studies", context="reading studies")
        self.set_interval(self.app.refresh_s * 3, self._check_stamp)

    def _check_stamp(self) -> None:
        if self.app.screen is not self:
            return
        self.in_worker(self.adapter.store_stamp, lambda s: Done("stamp", s), group="stamp", context="store")
