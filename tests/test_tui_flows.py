"""The TUI driven by Pilot at 80x24 against a fixture workspace: every screen, its keys, and
errors in a modal. Workers are awaited (`settle`), never slept on."""

from __future__ import annotations

import subprocess
import sys

import pytest
from test_tui_helpers import (
    FAILED,
    QUEUED,
    RUNNING,
    make_app,
    make_tui_workspace,
    settle,
)

SIZE = (80, 24)
pytestmark = pytest.mark.anyio



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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
async def test_launching_a_finished_study_starts_no_scheduler(tmp_path):
    """Every run is finished: the launch says so and starts nothing (no scheduler, no log)."""
    from results_fixture import make_results_workspace
    from test_tui_helpers import GOOD_RECIPE

    from divrob.dispatch.jobs import live_manager

    ws = make_results_workspace(tmp_path / "ws")
    recipe = ws.root / "fixture.toml"
    recipe.write_text(GOOD_RECIPE)
    app = make_app(ws, start="study")
    app.recipe = recipe
    launched = []
    launch = app.adapter.launch
    app.adapter.launch = lambda *a, **kw: launched.append(launch(*a, **kw)) or launched[-1]  # observe, not replace
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("l")
        await pilot.pause()
        assert type(app.screen).__name__ == "Confirm"
        await pilot.press("y")
        await settle(pilot)
        assert type(app.screen).__name__ == "StudyScreen"  # no error modal
        assert app.screen.plan.counts()["finished"] == 2
    assert launched == ["2 runs: 0 queued on local, 2 already finished, 0 already queued or running; "
                        "nothing to run, no scheduler started"]
    assert live_manager(ws, "local") is None and not (ws.root / "logs" / "scheduler-local.log").exists()


FRACTAL_RECIPE = """\
[study]
name = "tui-frac"
downstream = "camtrap-sim"
archs = ["resnet18"]
pretrain = { epochs = 1, batch_size = 8, image_size = 16 }
finetune = { epochs = 1, batch_size = 32, image_size = 16 }

[generate.fractaldb]
categories = 2
instances = 4
size = 32
points = 1000

[[distribution]]
name = "fractaldb-{total}"
source = "fractaldb"
total = [4]
"""


@pytest.mark.slow
async def test_launch_generates_fractaldb_then_trains_to_the_end(tmp_path):
    """A recipe whose source must be generated, launched from the TUI: a background study process
    generates FractalDB, plans, and trains the run on the local executor; the Jobs and Results
    screens then show the finished run and its metrics from the store."""
    import asyncio
    import os
    import signal
    import time

    from textual.widgets import Static

    from divrob.dispatch.jobs import live_manager
    from divrob.store.queries import LAST_EPOCH_FIELDS
    from divrob.workspace import init_workspace

    ws = init_workspace(tmp_path / "ws")
    cfg = ws.config_path.read_text()
    ws.config_path.write_text(cfg[: cfg.index("[demo]")] + "[demo]\ncamtrap_images = 200\ncamtrap_size = 16\n")
    recipe = ws.root / "frac.toml"
    recipe.write_text(FRACTAL_RECIPE)
    app = make_app(ws, start="study")
    app.recipe = recipe
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            assert [r["kind"] for r in screen.plan.rows] == ["generate"]  # its runs are planned after it
            assert "generated first" in str(screen.query_one("#study-counts", Static).render())
            await pilot.press("l")
            await pilot.pause()
            await pilot.press("y")
            await settle(pilot)
            assert type(app.screen).__name__ == "StudyScreen"  # no error modal
            # the study runs in another process: poll what the Jobs screen reads until it is done
            deadline = time.monotonic() + 600
            while True:
                rows = await asyncio.to_thread(app.adapter.jobs)
                kinds = {r.job_id.split("-")[0] if r.job_id.startswith("generate-") else "run": r for r in rows}
                if "run" in kinds and all(r.state not in ("queued", "running") for r in rows):
                    break
                assert time.monotonic() < deadline, [(r.job_id, r.state) for r in rows]
                await asyncio.sleep(1)
            assert {k: (r.state, r.reason) for k, r in kinds.items()} == {
                "generate": ("finished", ""), "run": ("finished", "")}
            assert len(list((ws.data / "fractaldb").glob("*/*.png"))) == 8
            await pilot.press("3")
            await settle(pilot)
            run = next(r for r in app.screen.rows if r.job_id == kinds["run"].job_id)
            assert (run.state, run.fraction, run.epoch_text) == ("finished", 1.0, "done")
            await pilot.press("4")
            await settle(pilot)
            page = app.screen.page  # the first page, straight from the store
            (row,) = [dict(zip(LAST_EPOCH_FIELDS, r)) for r in page.rows]
            assert row["run_id"] == kinds["run"].job_id and 0 <= row["ood_score"] <= 1
    finally:
        info = live_manager(ws, "local")  # a failed test leaves no background study behind
        if info is not None:
            os.kill(info["pid"], signal.SIGTERM)
    log = (ws.root / "logs" / "study-tui-frac.log").read_text()
    assert "finished " + kinds["run"].job_id in log and "[/" not in log  # plain text, no markup


async def test_jobs_table_log_tail_and_cancel(fresh_ws):
    from textual.widgets import DataTable, Log

    app = make_app(fresh_ws, start="jobs")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        table = screen.query_one("#jobs", DataTable)
        assert [r.job_id for r in screen.rows] == [RUNNING, QUEUED, FAILED]
        running = screen.rows[0]
        assert (running.epoch_text, running.images_per_s, running.slot) == ("ft 2/6", 812.5, "gpu0")
        # 4 pre-training epochs, then fine-tuning epoch 2 of 6 half done: 5.5 of 10 epochs
        assert running.fraction == pytest.approx(5.5 / 10)
        assert running.elapsed == 600 and running.eta == pytest.approx(600 * 4.5 / 5.5)
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


@pytest.mark.slow
async def test_retry_without_a_recorded_recipe_is_a_toast(fresh_ws):
    app = make_app(fresh_ws, start="jobs")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("down", "down")  # the failed job
        await settle(pilot)
        assert app.screen.selected == FAILED
        await pilot.press("r")
        await settle(pilot)
        assert type(app.screen).__name__ == "JobsScreen"  # nothing to dismiss
        assert any("recipe of study 'fixture'" in n.message for n in app._notifications)


@pytest.mark.slow
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
        await pilot.press("right", "right", "right", "right", "right", "right", "s")  # ood_score
        assert screen.sort_by == "ood_score"
        assert list(screen.frame["ood_score"]) == sorted(screen.frame["ood_score"])
        await pilot.press("s")
        assert list(screen.frame["ood_score"]) == sorted(screen.frame["ood_score"], reverse=True)
        await pilot.press("e")
        assert table.row_count == 15  # every epoch of the 3 runs
        await pilot.press("x")
        await pilot.pause()
        await pilot.press("enter")  # the default name
        await settle(pilot)
        out = ws.root / "exports" / "results-fixture.csv"
        assert out.exists() and len(out.read_text().splitlines()) == 16


@pytest.mark.slow
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


@pytest.mark.slow
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
