"""Study: the plan of the chosen recipe (to run / finished / partly done) and launching it on
local GPUs or SLURM through a detached scheduler, so the TUI never waits for the runs."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Static

from divrob.states import STATE_STYLE
from divrob.tui.components.base import DataScreen, Done
from divrob.tui.components.confirm import Confirm
from divrob.tui.components.nav_bar import NavBar
from divrob.tui.components.progress_panel import ProgressPanel
from divrob.tui.components.tables import fill_table


class StudyScreen(DataScreen):
    MODE = "study"
    DEFAULT_CSS = """
    StudyScreen #study-head { height: auto; padding: 0 1; }
    StudyScreen #study-counts { height: auto; padding: 0 1; color: $text-muted; }
    StudyScreen #plan { height: 1fr; }
    """
    BINDINGS = [
        Binding("p", "plan", "Plan"),
        Binding("l", "launch('local')", "Launch local"),
        Binding("s", "launch('slurm')", "Launch SLURM"),
        Binding("o", "app.open_recipe", "Open file…"),
    ]

    class Planned(Message):
        def __init__(self, plan) -> None:
            self.plan = plan
            super().__init__()

    def __init__(self) -> None:
        super().__init__()
        self.plan = None
        self.planned_for = None

    def compose(self) -> ComposeResult:
        yield NavBar(self.MODE)
        yield Static("", id="study-head", markup=False)
        yield Static("", id="study-counts", markup=False)
        yield DataTable(id="plan", cursor_type="row", zebra_stripes=True)
        yield ProgressPanel()
        yield Footer()

    def on_mount(self) -> None:
        self._show_recipe()

    def on_screen_resume(self) -> None:
        self._show_recipe()

    def _show_recipe(self) -> None:
        recipe = self.app.recipe
        head = self.query_one("#study-head", Static)
        if recipe is None:
            head.update("no recipe chosen: pick one on Recipes (1) and press s, or open a file with o")
            return
        head.update(f"recipe {self._shown_path(recipe)} — p: plan · l: launch local · s: launch SLURM")
        if self.planned_for != recipe:
            self.action_plan()

    def _shown_path(self, recipe) -> str:
        """Inside the workspace relative to it; from anywhere else in full."""
        root = getattr(self.adapter._ws, "root", None)
        try:
            return str(recipe.relative_to(root)) if root else str(recipe)
        except ValueError:
            return str(recipe)

    def action_plan(self) -> None:
        recipe = self.app.recipe
        if recipe is None:
            self.notify("pick a recipe on the Recipes screen first", severity="warning")
            return
        self.planned_for = recipe
        reporter = self.reporter()
        self.query_one("#study-counts", Static).update("planning…")
        self.in_worker(lambda: self.adapter.plan(recipe, reporter), self.Planned, group="plan",
                       context=f"planning {recipe.name}")

    def failed(self, group: str, error: BaseException) -> None:
        if group == "plan":  # "planning…" must not outlive the error
            self.planned_for = None
            self.query_one("#study-counts", Static).update("could not plan this recipe (p: try again)")

    @on(Planned)
    def _planned(self, m: Planned) -> None:
        from rich.text import Text

        self.plan = m.plan
        self.query_one("#study-head", Static).update(  # the workspace is open now: a shorter path
            f"recipe {self._shown_path(m.plan.recipe)} — p: plan · l: launch local · s: launch SLURM")
        counts = m.plan.counts()
        self.query_one("#study-counts", Static).update(
            f"study {m.plan.study}: " + ("its sources are generated first, then its runs are planned"
                                         if m.plan.generate_first else
                                         " · ".join(f"{k} {v}" for k, v in counts.items() if v or k != "other")))
        table = self.query_one("#plan", DataTable)
        fill_table(table, ("job", "kind", "what", "state"), [
            (r["job"][:12], r["kind"], r["label"], Text(r["state"], style=STATE_STYLE.get(r["state"].split()[0], "")))
            for r in m.plan.rows], row_keys=[r["job"] for r in m.plan.rows])

    @work(group="launch-confirm")
    async def action_launch(self, executor: str) -> None:
        recipe = self.app.recipe
        if recipe is None:
            self.notify("pick a recipe on the Recipes screen first", severity="warning")
            return
        if not await self.app.push_screen_wait(Confirm(
                f"Launch {recipe.name} on {executor}? A detached scheduler runs its unfinished runs; "
                f"it keeps going after you quit.")):
            return
        reporter = self.reporter()
        self.in_worker(lambda: self.adapter.launch(recipe, executor, reporter), lambda v: Done("launched", v),
                       group="launch", context=f"launching on {executor}")

    @on(Done)
    def _done(self, m: Done) -> None:
        if m.what == "launched":
            self.notify(m.value, title="launched", timeout=8, markup=False)
            self.action_plan()
