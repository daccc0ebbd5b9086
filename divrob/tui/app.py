"""`divrob tui`: the App. Five screens (one mode each), reachable with 1-5 and from the command
palette (ctrl+p); errors from any worker arrive as `ShowError` and open a modal.

Startup stays light: screens are imported when first shown, the data stack (pandas, duckdb,
the analysis) inside the adapter's methods in worker threads, and torch never.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Callable, Iterable

from textual import on
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from divrob.tui.adapter import DivrobAdapter
from divrob.tui.components.error_modal import ErrorModal, ShowError, describe
from divrob.tui.components.nav_bar import SCREENS


def _lazy(module: str, cls: str) -> Callable[[], Screen]:
    def make() -> Screen:
        import importlib

        return getattr(importlib.import_module(f"divrob.tui.components.{module}"), cls)()
    return make


class DivrobApp(App):
    TITLE = "divrob"
    MODES = {
        "recipes": _lazy("recipes_screen", "RecipesScreen"),
        "study": _lazy("study_screen", "StudyScreen"),
        "jobs": _lazy("jobs_screen", "JobsScreen"),
        "results": _lazy("results_screen", "ResultsScreen"),
        "trends": _lazy("trends_screen", "TrendsScreen"),
    }
    BINDINGS = [
        *(Binding(key, f"switch_mode('{mode}')", title, show=False) for key, mode, title in SCREENS),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, workspace: str | Path | None = None, *, adapter: DivrobAdapter | None = None,
                 start: str = "recipes", refresh_s: float = 2.0) -> None:
        super().__init__()
        self.adapter = adapter or DivrobAdapter(workspace)
        self.start_mode = start
        self.refresh_s = refresh_s
        self.recipe: Path | None = None  # chosen on Recipes, planned and launched on Study
        self.workspace_name = ""
        self.workspace_failed = False
        self.started_at = time.perf_counter()

    def on_mount(self) -> None:
        # The first frame does not wait for the workspace (pydantic, its config file): the
        # screen's workers open it, and so does this one for the name in the nav bar.
        self.switch_mode(self.start_mode)
        self.run_worker(self._open_workspace, thread=True, exit_on_error=False, name="open workspace")

    def _open_workspace(self) -> None:
        try:
            name = self.adapter.name
        except Exception as e:
            self.post_message(ShowError(e, "opening the workspace"))
            return
        self.call_from_thread(self._named, name)

    def _named(self, name: str) -> None:
        self.workspace_name = name
        for bar in self.screen.query("NavBar"):
            bar.refresh()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for key, mode, title in SCREENS:
            yield SystemCommand(f"{title} screen", f"Go to {title} (key {key})", partial(self.switch_mode, mode))

    @on(ShowError)
    def _show_error(self, m: ShowError) -> None:
        from divrob.errors import WorkspaceError

        title, message = describe(m.error)
        if isinstance(m.error, WorkspaceError):  # nothing works without one: say so once, then leave
            if not self.workspace_failed:
                self.workspace_failed = True
                self.push_screen(ErrorModal(title, message, "opening the workspace"),
                                 lambda _: self.exit(return_code=1))
            return
        self._log_error(m.error)
        self.push_screen(ErrorModal(title, message, m.context))

    def _log_error(self, error: BaseException) -> None:
        """Unexpected errors keep their traceback in the workspace log, off the screen."""
        from divrob.errors import DivrobError

        if isinstance(error, DivrobError):
            return
        import traceback

        try:
            log = self.adapter.ws.root / "logs" / "tui.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "a") as f:
                f.write(time.strftime("%Y-%m-%d %H:%M:%S ") +
                        "".join(traceback.format_exception(type(error), error, error.__traceback__)))
        except Exception:
            pass


def run(workspace: str | Path | None = None) -> None:
    DivrobApp(workspace).run()
