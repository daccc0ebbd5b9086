"""The TUI driven by Pilot at 80x24 against a fixture workspace: every screen, its keys, and
errors in a modal. Workers are awaited (`settle`), never slept on."""

from __future__ import annotations

import subprocess
import sys

import pytest

from test_tui_helpers import FAILED, QUEUED, RUNNING, make_app, make_tui_workspace, settle

SIZE = (80, 24)
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"  # Textual runs on asyncio


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """Shared by the tests that only read."""
    return make_tui_workspace(tmp_path_factory.mktemp("tui") / "ws")


@pytest.fixture
def fresh_ws(tmp_path):
    """For tests that change the workspace (cancel, launch)."""
    return make_tui_workspace(tmp_path / "ws")


def test_importing_the_app_does_not_import_torch_or_pandas():
    code = ("import divrob.tui.app, divrob.cli.tui, sys; "
            "assert 'torch' not in sys.modules, 'torch'; assert 'pandas' not in sys.modules, 'pandas'")
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_keys_and_command_palette_reach_every_screen(ws):
    from textual.command import CommandPalette

    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for key, mode in (("2", "study"), ("3", "jobs"), ("4", "results"), ("5", "trends"), ("1", "recipes")):
            await pilot.press(key)
            await settle(pilot)
            assert app.current_mode == mode
            assert type(app.screen).__name__.lower().startswith(mode)
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"Trends screen", "enter")
        await settle(pilot)
        assert app.current_mode == "trends"


async def test_recipes_show_a_validation_error_inline_and_the_distributions(ws):
    from textual.widgets import DataTable, OptionList, Static

    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        labels = [f.label for f in screen.files]
        assert labels[:2] == ["recipes/broken", "recipes/fixture"]
        assert "quickstart" in labels  # the bundled demo recipe
        head = str(screen.query_one("#recipe-head", Static).render())
        assert "broken.toml" in head and "distribution[0].totl" in head and "unknown key" in head
        assert not screen.query_one("#dists", DataTable).display
        await pilot.press("down")
        await settle(pilot)
        assert screen.view.ok and screen.view.study == "fixture"
        table = screen.query_one("#dists", DataTable)
        assert table.display and table.row_count == 1
        assert screen.query_one("#files", OptionList).has_focus
        await pilot.press("enter")  # into the distributions
        assert table.has_focus
        await pilot.press("s")  # plan this study
        await settle(pilot)
        assert app.current_mode == "study" and app.recipe.name == "fixture.toml"


async def test_study_plan_shows_finished_runs(ws):
    from textual.widgets import DataTable, Static

    app = make_app(ws, start="study")
    app.recipe = ws.root / "recipes" / "fixture.toml"
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert screen.plan.counts()["finished"] == 2
        assert screen.query_one("#plan", DataTable).row_count == 2
        assert "finished 2" in str(screen.query_one("#study-counts", Static).render())


async def test_launch_goes_through_a_detached_scheduler(tmp_path):
    """Every run is finished, so the scheduler starts, finds nothing to do and exits."""
    from results_fixture import make_results_workspace
    from test_tui_helpers import GOOD_RECIPE

    ws = make_results_workspace(tmp_path / "ws")
    recipe = ws.root / "fixture.toml"
    recipe.write_text(GOOD_RECIPE)
    app = make_app(ws, start="study")
    app.recipe = recipe
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("l")
        await pilot.pause()
        assert type(app.screen).__name__ == "Confirm"
        await pilot.press("y")
        await settle(pilot)
        assert type(app.screen).__name__ == "StudyScreen"  # no error modal
        assert app.screen.plan.counts()["finished"] == 2


async def test_jobs_table_log_tail_and_cancel(fresh_ws):
    from textual.widgets import DataTable, Log

    app = make_app(fresh_ws, start="jobs")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        table = screen.query_one("#jobs", DataTable)
        assert [r.job_id for r in screen.rows] == [RUNNING, QUEUED, FAILED]
        running = screen.rows[0]
        assert (running.epoch_text, running.throughput, running.slot) == ("ft 2/6", 812.5, "gpu0")
        assert running.fraction == pytest.approx(6 / 10)
        assert running.elapsed == 600 and running.eta == pytest.approx(400)
        assert "epoch 4 line" in "\n".join(screen.query_one("#log", Log).lines)
        await pilot.press("down")  # the queued job
        await settle(pilot)
        assert screen.selected == QUEUED
        await pilot.press("c")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot)
        states = {r.job_id: r.state for r in screen.rows}
        assert states[QUEUED] == "cancelled"
        assert table.row_count == 3
        await pilot.press("a")  # hide finished, failed and cancelled jobs
        await settle(pilot)
        assert [r.job_id for r in screen.rows] == [RUNNING]


async def test_retry_without_a_recorded_recipe_shows_a_modal(fresh_ws):
    from textual.widgets import Static

    from divrob.tui.components.error_modal import ErrorModal

    app = make_app(fresh_ws, start="jobs")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("down", "down")  # the failed job
        await settle(pilot)
        assert app.screen.selected == FAILED
        await pilot.press("r")
        await settle(pilot)
        assert isinstance(app.screen, ErrorModal)
        assert "recipe of study 'fixture'" in str(app.screen.query_one("#error-message", Static).render())
        await pilot.press("escape")
        assert type(app.screen).__name__ == "JobsScreen"


async def test_results_filter_sort_toggle_and_export(ws):
    from textual.widgets import DataTable, Input

    app = make_app(ws, start="results")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        table = screen.query_one("#table", DataTable)
        assert table.row_count == 6  # 3 distributions x 2 archs, last epoch each
        await pilot.press("slash")
        assert screen.query_one("#where", Input).has_focus
        await pilot.press(*"arch=resnet18", "enter")
        await settle(pilot)
        assert table.row_count == 3 and set(screen.frame["arch"]) == {"resnet18"}
        assert table.has_focus
        await pilot.press("right", "right", "right", "right", "right", "right", "s")  # ood_f1
        assert screen.sort_by == "ood_f1"
        assert list(screen.frame["ood_f1"]) == sorted(screen.frame["ood_f1"])
        await pilot.press("s")
        assert list(screen.frame["ood_f1"]) == sorted(screen.frame["ood_f1"], reverse=True)
        await pilot.press("e")
        assert table.row_count == 15  # every epoch of the 3 runs
        await pilot.press("x")
        await pilot.pause()
        await pilot.press("enter")  # the default name
        await settle(pilot)
        out = ws.root / "exports" / "results-fixture.csv"
        assert out.exists() and len(out.read_text().splitlines()) == 16


async def test_a_bad_filter_shows_a_modal_not_a_crash(ws):
    from textual.widgets import Static

    from divrob.tui.components.error_modal import ErrorModal

    app = make_app(ws, start="results")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"colour=red", "enter")
        await settle(pilot)
        assert isinstance(app.screen, ErrorModal)
        assert "unknown field 'colour'" in str(app.screen.query_one("#error-message", Static).render())
        await pilot.press("enter")
        assert type(app.screen).__name__ == "ResultsScreen"
    assert app.return_code in (None, 0)


async def test_trends_transform_group_toggle_and_export(ws):
    from textual.widgets import DataTable, SelectionList

    app = make_app(ws, start="trends")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        a = screen.analysis
        assert list(a.groups) == ["scratch", "shapes-2000", "shapes-500"] and a.baseline == "scratch"
        assert a.transform == "probit"
        er = screen.query_one("#er", DataTable)
        assert er.row_count == 3
        # the fixture's lines: shapes-2000 sits 0.4 probit above scratch, so its ER is positive
        assert a.groups["shapes-2000"].er[1] > 0
        await pilot.press("t")
        await settle(pilot)
        assert screen.analysis.transform == "logit"
        await pilot.press("v")
        assert screen.query_one("#groups", SelectionList).has_focus
        await pilot.press("space")  # switch scratch off
        await pilot.pause()
        assert screen.shown_groups() == ["shapes-2000", "shapes-500"]
        assert er.row_count == 2
        await pilot.press("t")  # refitting keeps the user's choice of groups
        await settle(pilot)
        assert screen.analysis.transform == "linear" and screen.shown_groups() == ["shapes-2000", "shapes-500"]
        await pilot.press("x")
        await pilot.pause()
        prompt = app.screen.query_one("#prompt-input")
        prompt.value = "figures/t.svg"
        await pilot.press("enter")
        await settle(pilot)
        assert (ws.root / "figures" / "t.svg").exists()


async def test_group_by_arch_refits(ws):
    from textual.widgets import Select

    app = make_app(ws, start="trends")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.screen.query_one("#group-by", Select).value = "arch"
        await settle(pilot)
        a = app.screen.analysis
        assert a.group_by == "arch" and list(a.groups) == ["resnet18", "resnet34"]
        assert a.baseline == "scratch"  # a distribution name still works as the baseline


async def test_a_missing_workspace_is_a_modal_then_exit(tmp_path):
    from divrob.tui.app import DivrobApp
    from divrob.tui.components.error_modal import ErrorModal

    app = DivrobApp(tmp_path / "nowhere")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, ErrorModal)
        await pilot.press("enter")
        await pilot.pause()
    assert app.return_code == 1


async def test_reporter_drives_the_progress_panel():
    from textual.app import App
    from textual.widgets import ProgressBar

    from divrob.tui.components.progress_panel import ProgressPanel
    from divrob.tui.reporter import TextualReporter

    seen = {}

    class One(App):
        def compose(self):
            yield ProgressPanel()

    app = One()
    async with app.run_test(size=SIZE) as pilot:
        panel = app.query_one(ProgressPanel)
        reporter = TextualReporter(panel)

        def work():
            task = reporter.task("building", total=4)
            task.advance(3)
            reporter.log("three done")

        app.run_worker(work, thread=True)
        await settle(pilot)
        bar = panel.query_one(ProgressBar)
        seen["progress"], seen["busy"] = bar.progress, panel.has_class("-busy")
        app.run_worker(lambda: reporter.task("other").close(), thread=True)
        await settle(pilot)
        assert seen == {"progress": 3, "busy": True}
        assert len(panel.query(ProgressBar)) == 1
