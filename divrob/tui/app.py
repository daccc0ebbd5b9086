"""`divrob tui`: the App. Five screens (one mode each), reachable with 1-5 and from the command
palette (ctrl+p); `?` lists the keys. Errors from any worker arrive as `ShowError` and become a
toast, once per distinct error; only a workspace that cannot be opened asks for a decision.

Startup stays light: screens are imported when first shown, the data stack (pandas, duckdb,
the analysis) inside the adapter's methods in worker threads, and torch never.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

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
        Binding("question_mark", "help", "Help"),
        Binding("o", "open_recipe", "Open recipe", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, workspace: str | Path | None = None, *, adapter: DivrobAdapter | None = None,
                 start: str = "recipes", refresh_s: float = 2.0, recipe: str | Path | None = None) -> None:
        super().__init__()
        self.adapter = adapter or DivrobAdapter(workspace)
        self.refresh_s = refresh_s
        # chosen on Recipes (or given as `divrob tui RECIPE`), planned and launched on Study
        self.recipe: Path | None = Path(recipe).expanduser().resolve() if recipe else None
        self.start_mode = "study" if recipe and start == "recipes" else start
        self.errors_shown: dict[tuple[str, str, str], int] = {}  # distinct error -> times it happened
        self.workspace_name = ""
        self.workspace_failed = False
        self.started_at = time.perf_counter()
        if self.start_mode == "trends":
            self.adapter.begin_first_glance()  # the store is read while Textual starts

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
        yield SystemCommand("Open recipe…", "Open a recipe file from anywhere (key o)", self.action_open_recipe)
        yield SystemCommand("Help: keys", "The keys of this screen and of every screen (key ?)", self.action_help)
        # each screen's own actions (filter, export, cancel, launch, …), from its bindings
        from divrob.tui.components.help import key_name

        name = type(screen).__name__.removesuffix("Screen")
        for b in getattr(type(screen), "BINDINGS", []):
            if isinstance(b, Binding) and b.description and b.show:
                yield SystemCommand(f"{name}: {b.description}", f"key {key_name(b.key)}",
                                    partial(self._run_screen_action, screen, b.action))

    def _run_screen_action(self, screen: Screen, action: str) -> None:
        self.call_later(self.run_action, action, screen)

    def action_help(self) -> None:
        from divrob.tui.components.help import HelpOverlay, screen_keys

        screen = self.screen
        if type(screen).__name__ == "HelpOverlay":
            screen.dismiss(None)
            return
        title = type(screen).__name__.removesuffix("Screen")
        self.push_screen(HelpOverlay(title, screen_keys(screen)))

    async def action_quit(self) -> None:
        # a workspace that could not be opened is a failure, however the user leaves
        self.exit(return_code=1 if self.workspace_failed else 0)

    def action_open_recipe(self) -> None:
        from divrob.tui.components.path_prompt import open_recipe_prompt

        open_recipe_prompt(self)

    def use_recipe(self, path: str | Path) -> None:
        """Plan a recipe from anywhere on the Study screen (`divrob tui RECIPE`, the open prompt)."""
        self.recipe = Path(path).expanduser().resolve()
        if self.current_mode == "study":
            self.screen._show_recipe()
        else:
            self.switch_mode("study")

    @on(ShowError)
    def _show_error(self, m: ShowError) -> None:
        self.report_error(m.error, m.context)

    def report_error(self, error: BaseException, context: str = "") -> None:
        """A toast, once per distinct error until that work succeeds again (`error_cleared`);
        a workspace that cannot be opened is the one modal: nothing works without it."""
        from divrob.errors import WorkspaceError

        title, message = describe(error)
        if isinstance(error, WorkspaceError):  # say so once, then leave with exit code 1
            if not self.workspace_failed:
                self.workspace_failed = True
                self.push_screen(ErrorModal(title, message, "opening the workspace", "enter / esc / q: quit"),
                                 lambda _: self.exit(return_code=1))
            return
        key = (context, title, message)
        self.errors_shown[key] = self.errors_shown.get(key, 0) + 1
        if self.errors_shown[key] > 1:
            return
        self._log_error(error)
        self.notify(message, title=f"{title} — {context}" if context else title, severity="error",
                    timeout=12, markup=False)

    def error_cleared(self, context: str) -> None:
        """The work of `context` succeeded: its next failure is news again."""
        for key in [k for k in self.errors_shown if k[0] == context]:
            del self.errors_shown[key]

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


def run(workspace: str | Path | None = None, recipe: str | Path | None = None, start: str = "recipes") -> int:
    """Run the app on the `start` screen; its exit code (1 after a fatal workspace error or a crash)."""
    app = DivrobApp(workspace, recipe=recipe, start=start)
    app.run()
    return app.return_code or 0
