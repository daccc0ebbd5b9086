"""Issue 15 in the TUI, driven by Pilot at 80x24: each test reproduces one of the reported
problems against a real fixture workspace (real DuckDB store, real run directories)."""

from __future__ import annotations

import pytest
from test_tui_helpers import (
    FAILED,
    NOW,
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
    return make_tui_workspace(tmp_path_factory.mktemp("tui15") / "ws")


@pytest.fixture
def fresh_ws(tmp_path):
    return make_tui_workspace(tmp_path / "ws")


def append(path, text: str) -> None:
    with open(path, "a") as f:  # as a run writes its log
        f.write(text)


def toasts(app) -> list[str]:
    return [n.message for n in app._notifications]


# ---- 13: a study without a scratch group ----------------------------------------------------

@pytest.mark.slow
async def test_trends_of_a_study_without_scratch_opens_without_crashing(tmp_path):
    from results_fixture import GroupSpec, make_results_workspace

    ws = make_results_workspace(tmp_path / "ws", study="noscratch", groups=[
        GroupSpec("shapes-500", 0.9, -0.5, "demo-shapes", {"total": 500}),
        GroupSpec("shapes-2000", 0.9, -0.3, "demo-shapes", {"total": 2000})])
    app = make_app(ws, start="trends")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert type(screen).__name__ == "TrendsScreen"
        assert list(screen.analysis.groups) == ["shapes-2000", "shapes-500"] and screen.analysis.baseline is None
        assert app._exit_renderables == [] and app.return_code is None  # still running, no traceback
        from textual.widgets import Select

        screen.query_one("#baseline", Select).value = "shapes-500"  # a baseline can still be chosen
        await settle(pilot)
        assert screen.analysis.baseline == "shapes-500"


# ---- 1 / deliver 3: errors never trap -------------------------------------------------------

def corrupt_store(ws) -> None:
    ws.db_path.write_bytes(b"this is not a duckdb file" * 100)


@pytest.mark.parametrize("start", ["jobs", "results", "trends"])
@pytest.mark.slow
async def test_a_broken_store_is_one_toast_polling_backs_off_and_keys_work(tmp_path, start):
    ws = make_tui_workspace(tmp_path / "ws")
    corrupt_store(ws)
    app = make_app(ws, start=start)
    app.refresh_s = 0.05  # poll fast: a trap would show up as more pop-ups
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(15):  # only pauses: polling workers keep replacing each other here
            await pilot.pause(0.1)
        assert type(app.screen).__name__.lower().startswith(start)  # no modal on top
        errors = [n for n in app._notifications if n.severity == "error"]
        assert len({(n.title, n.message) for n in errors}) == len(errors) >= 1  # each distinct error once
        screen = app.screen
        assert max(screen.failures.values()) >= 1 and all(screen.failures.values())
        assert sum(screen.failures.values()) <= 7  # backed off: without it ~10-30 tries in 1.5 s
        await pilot.press("2")
        assert app.current_mode == "study"
        await pilot.press("question_mark")
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpOverlay"
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


@pytest.mark.slow
async def test_a_bad_filter_is_a_toast_and_the_status_line_is_not_left_loading(ws):
    from textual.widgets import Static

    app = make_app(ws, start="results")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"colour=red", "enter")
        await settle(pilot)
        assert type(app.screen).__name__ == "ResultsScreen"
        assert any("unknown field 'colour'" in t for t in toasts(app))
        status = str(app.screen.query_one("#results-status", Static).render())
        assert "loading" not in status and "could not read results" in status
        await pilot.press("5")  # keys still work
        assert app.current_mode == "trends"


async def test_modals_let_q_and_screen_keys_through(ws):
    app = make_app(ws, start="jobs")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await pilot.pause()
        assert type(app.screen).__name__ == "Confirm"
        await pilot.press("4")
        await pilot.pause()
        assert app.current_mode == "results" and type(app.screen).__name__ == "ResultsScreen"
        await pilot.press("3", "c")
        await pilot.pause()
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


async def test_a_missing_workspace_exits_1_also_by_q(tmp_path):
    from divrob.tui.app import DivrobApp

    app = DivrobApp(tmp_path / "nowhere")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.pause()
        assert type(app.screen).__name__ == "ErrorModal"
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 1


def test_cli_tui_exits_nonzero_after_a_fatal_workspace_error(tmp_path, monkeypatch):
    """`divrob tui` passes the app's exit code on (the app itself is stubbed to exit as it does
    after the workspace modal: a real terminal is not available to CliRunner)."""
    from typer.testing import CliRunner

    import divrob.tui.app as tui_app
    from divrob.cli import app as cli

    seen = {}

    def fake_run(workspace=None, recipe=None, start="recipes"):
        seen["args"] = (workspace, recipe, start)
        return 1

    monkeypatch.setattr(tui_app, "run", fake_run)
    recipe = tmp_path / "r.toml"
    recipe.write_text("")
    result = CliRunner().invoke(cli, ["tui", str(recipe), "--workspace", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and seen["args"][1] == recipe
    result = CliRunner().invoke(cli, ["tui", str(tmp_path / "missing.toml")])
    assert result.exit_code == 2 and "does not exist" in result.output
    result = CliRunner().invoke(cli, ["tui", "--screen", "trends", "-w", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and seen["args"][2] == "trends"  # opens on the screen asked for
    result = CliRunner().invoke(cli, ["tui", "--screen", "graphs"])
    assert result.exit_code == 2 and "--screen 'graphs': choose from recipes, study, jobs, results, trends" in result.output


# ---- 2: progress and ETA --------------------------------------------------------------------

def test_eta_comes_from_the_measured_rate_and_does_not_grow_with_time():
    from divrob.dispatch.monitor import eta_of

    # half done 100 s after the start, reported then: 100 s left; 30 s later, 70 s left
    assert eta_of(0.5, 1000.0, 1100.0, 1100.0) == pytest.approx(100)
    assert eta_of(0.5, 1000.0, 1100.0, 1130.0) == pytest.approx(70)
    assert eta_of(0.5, 1000.0, 1100.0, 2000.0) == 0.0
    assert eta_of(None, 1000.0, 1100.0, 1100.0) is None and eta_of(1.0, 1000.0, 1100.0, 1100.0) is None


def test_a_cancelled_run_at_its_last_epoch_is_not_a_full_bar(tmp_path):
    from divrob.dispatch.jobs import Job
    from divrob.dispatch.monitor import job_view
    from divrob.runs.status import Progress
    from divrob.tui.components.jobs_screen import bar

    ws = make_tui_workspace(tmp_path / "ws")
    done = Progress(phase="finetune", epoch=6, epochs=6, step=50, steps_per_epoch=50, updated=NOW - 10)
    cancelled = job_view(ws, Job(RUNNING, "run", "fixture", "x", state="cancelled", started=NOW - 100,
                                 ended=NOW - 5, progress=done), NOW)
    assert cancelled.fraction < 1 and cancelled.eta is None
    text = bar(cancelled.fraction, cancelled.epoch_text, "cancelled").plain
    assert "██████" not in text and "99%" in text
    running = job_view(ws, Job(RUNNING, "run", "fixture", "x", state="running", started=NOW - 100,
                               progress=Progress(phase="finetune", epoch=2, epochs=6, step=0, steps_per_epoch=50,
                                                 updated=NOW)), NOW)
    # 4 pre-training epochs, then fine-tuning epoch 2 just begun: epoch 1 done, not epoch 2
    assert running.fraction == pytest.approx(5 / 10) and running.percent == 50


async def test_jobs_show_percent_eta_study_and_a_log_that_can_be_scrolled(fresh_ws):
    from textual.widgets import DataTable, Log

    from divrob.runs.rundir import RunDir

    app = make_app(fresh_ws, start="jobs")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        table = screen.query_one("#jobs", DataTable)
        row = [c.plain if hasattr(c, "plain") else str(c) for c in table.get_row(RUNNING)]
        assert row[0].startswith("shapes-500") and "55%" in row[2] and "ft 2/6" in row[2]
        assert row[3] == "8:10" and row[-1] == "fixture"  # ETA 600 * 4.5 / 5.5 s, the study
        log = screen.query_one("#log", Log)
        log_path = RunDir(fresh_ws.runs / RUNNING).log_path
        append(log_path, "".join(f"more line {i}\n" for i in range(40)))
        await screen.run_action("refresh")
        await settle(pilot)
        assert log.lines[-1] == "more line 39"  # followed: appended, at the end
        assert log.is_vertical_scroll_end
        log.scroll_home(animate=False)
        await pilot.pause()
        append(log_path, "newest line\n")
        await screen.run_action("refresh")
        await settle(pilot)
        assert log.lines[-1] == "newest line" and log.scroll_y == 0  # not yanked back to the end
        assert sum(1 for x in log.lines if x == "more line 0") == 1  # appended, not rewritten


@pytest.mark.slow
async def test_hiding_done_jobs_says_how_many_are_hidden(fresh_ws):
    from textual.widgets import Static

    from divrob.dispatch.control import cancel

    cancel(fresh_ws, RUNNING)
    cancel(fresh_ws, QUEUED)
    app = make_app(fresh_ws, start="jobs")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        status = str(app.screen.query_one("#jobs-status", Static).render())
        assert app.screen.rows == [] and "hidden" in status and "no jobs in this workspace" not in status


# ---- 3: group-by there and back -------------------------------------------------------------

@pytest.mark.slow
async def test_group_by_there_and_back_keeps_groups_visible_and_remembers_choices(ws):
    from textual.widgets import Select, SelectionList

    app = make_app(ws, start="trends")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        await pilot.press("v", "space")  # switch scratch off
        await pilot.pause()
        assert screen.shown_groups() == ["shapes-2000", "shapes-500"]
        screen.query_one("#group-by", Select).value = "arch"
        await settle(pilot)
        assert screen.shown_groups() == ["resnet18", "resnet34"]
        screen.query_one("#group-by", Select).value = "distribution"
        await settle(pilot)
        assert screen.shown_groups() == ["shapes-2000", "shapes-500"]  # remembered, not all off
        assert len(screen.query_one("#groups", SelectionList).selected) == 2


# ---- 4: study lists refresh; Trends has all studies -----------------------------------------

@pytest.mark.slow
async def test_a_study_added_during_the_session_appears_on_results_and_trends(tmp_path):
    from results_fixture import make_results_workspace
    from textual.widgets import Select

    ws = make_tui_workspace(tmp_path / "ws")
    app = make_app(ws, start="trends")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        make_results_workspace(ws.root, study="second")
        for mode in ("trends", "results"):
            await pilot.press("5" if mode == "trends" else "4")
            await settle(pilot)
            app.screen._check_stamp()
            await settle(pilot)
            values = [v for _, v in app.screen.query_one("#study", Select)._options]
            assert "second" in values and "fixture" in values
        await pilot.press("5")
        await settle(pilot)
        select = app.screen.query_one("#study", Select)
        assert select.value == "fixture"  # the choice is kept
        select.value = "*all*"
        await settle(pilot)
        assert set(app.screen.points["study"]) == {"fixture", "second"}


# ---- 5: nav marks the screen; ? help; palette lists actions ---------------------------------

@pytest.mark.slow
async def test_nav_marks_the_current_screen_and_help_lists_its_keys(ws):
    from textual.widgets import Static

    from divrob.tui.components.nav_bar import NavBar

    app = make_app(ws, start="results")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        nav = str(app.screen.query_one(NavBar).render())
        assert "[4 Results]" in nav and "[3 Jobs]" not in nav
        await pilot.press("question_mark")
        await pilot.pause()
        keys = str(app.screen.query_one("#help-screen", Static).render())
        assert "Filter" in keys and "Export" in keys and "/" in keys
        await pilot.press("question_mark")
        await pilot.pause()
        assert type(app.screen).__name__ == "ResultsScreen"
        await pilot.press("3")
        await settle(pilot)
        assert "[3 Jobs]" in str(app.screen.query_one(NavBar).render())


@pytest.mark.slow
async def test_the_palette_lists_the_screens_actions(ws):
    app = make_app(ws, start="jobs")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Jobs: Cancel job", "Jobs: Retry", "Open recipe…"} <= set(titles)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Jobs: Show", "enter")
        await settle(pilot)
        assert app.screen.include_done is False


# ---- 6: all studies per run: study and state --------------------------------------------------

@pytest.mark.slow
async def test_all_studies_per_run_has_study_and_state_columns(tmp_path):
    from results_fixture import make_results_workspace

    ws = make_tui_workspace(tmp_path / "ws")
    make_results_workspace(ws.root, study="second")
    app = make_app(ws, start="results")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        frame = app.screen.frame
        columns = list(frame.columns)
        assert (columns[0], columns[-1]) == ("study", "state")
        assert set(frame["study"]) == {"fixture", "second"} and set(frame["state"]) == {"finished"}


# ---- 8: honest empty states -----------------------------------------------------------------

@pytest.mark.slow
async def test_an_empty_workspace_says_so_on_trends_and_results(tmp_path):
    from textual.widgets import Static

    from divrob.workspace import init_workspace

    ws = init_workspace(tmp_path / "ws")
    app = make_app(ws, start="trends")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "no results yet" in app.screen.said
        await pilot.press("4")
        await settle(pilot)
        assert "no results yet" in str(app.screen.query_one("#results-status", Static).render())


# ---- 10: recipes from anywhere --------------------------------------------------------------

@pytest.mark.slow
async def test_open_a_recipe_from_anywhere_with_completion(ws, tmp_path):
    from test_tui_helpers import GOOD_RECIPE
    from textual.widgets import Input

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "mine.toml").write_text(GOOD_RECIPE)
    app = make_app(ws, start="recipes")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("o")
        await pilot.pause()
        assert type(app.screen).__name__ == "PathPrompt"
        field = app.screen.query_one("#prompt-input", Input)
        field.value = str(elsewhere / "mi")
        await pilot.press("tab")
        await pilot.pause()
        assert field.value == str(elsewhere / "mine.toml")
        await pilot.press("enter")
        await settle(pilot)
        assert app.current_mode == "study" and app.recipe == elsewhere / "mine.toml"
        assert app.screen.plan is not None and app.screen.plan.study == "fixture"


async def test_the_app_opens_a_recipe_given_on_the_command_line(ws, tmp_path):
    from test_tui_helpers import GOOD_RECIPE

    from divrob.tui.adapter import DivrobAdapter
    from divrob.tui.app import DivrobApp

    recipe = tmp_path / "cli.toml"
    recipe.write_text(GOOD_RECIPE)
    app = DivrobApp(adapter=DivrobAdapter(ws.root, clock=lambda: NOW), refresh_s=3600, recipe=recipe)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.current_mode == "study" and app.screen.plan.study == "fixture"


@pytest.mark.slow
async def test_a_recipe_dropped_into_the_workspace_appears_by_itself(tmp_path):
    from test_tui_helpers import GOOD_RECIPE

    ws = make_tui_workspace(tmp_path / "ws")
    app = make_app(ws, start="recipes")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "recipes/new" not in [f.label for f in app.screen.files]
        (ws.root / "recipes" / "new.toml").write_text(GOOD_RECIPE)
        app.screen._watch()
        await settle(pilot)
        assert "recipes/new" in [f.label for f in app.screen.files]


# ---- 12: the same resamples as the CLI ------------------------------------------------------

def test_tui_confidence_intervals_use_the_clis_number_of_resamples():
    import inspect

    from divrob.analysis import N_BOOT
    from divrob.tui.adapter import DivrobAdapter

    assert inspect.signature(DivrobAdapter.analyse).parameters["n_boot"].default == N_BOOT


# ---- 9: a user cancel is logged as cancelled ------------------------------------------------

def test_a_user_cancel_is_logged_as_cancelled_without_a_traceback(tmp_path):
    from divrob.runs.rundir import RunDir

    rd = RunDir(tmp_path / "run")
    rd.path.mkdir()
    with pytest.raises(KeyboardInterrupt), rd.recording_failure():
        raise KeyboardInterrupt("cancelled (signal SIGTERM)")
    log = rd.log_path.read_text()
    assert "cancelled (signal SIGTERM)" in log and "Traceback" not in log and "failed" not in log
    assert (rd.status().state, rd.status().reason) == ("cancelled", "cancelled (signal SIGTERM)")


# ---- deliver 2: the same numbers in `divrob jobs ls` ------------------------------------------

def test_jobs_ls_shows_the_monitors_numbers_as_table_and_json(fresh_ws):
    import json

    from typer.testing import CliRunner

    from divrob.cli import app as cli
    from divrob.tui.adapter import DivrobAdapter

    w = ["-w", str(fresh_ws.root)]
    res = CliRunner().invoke(cli, ["jobs", "ls", "--json", *w])
    assert res.exit_code == 0, res.output
    got = {d["job_id"]: d for d in json.loads(res.output)}
    tui = {r.job_id: r for r in DivrobAdapter(fresh_ws.root).jobs()}
    assert got[RUNNING]["percent"] == tui[RUNNING].percent == 55
    assert (got[RUNNING]["epoch_text"], got[RUNNING]["study"]) == ("ft 2/6", "fixture")
    assert got[FAILED]["reason"] == "CUDA out of memory" and got[QUEUED]["fraction"] is None
    res = CliRunner().invoke(cli, ["jobs", "ls", *w], env={"COLUMNS": "160"})
    assert res.exit_code == 0 and "55% ft 2/6" in res.output and "ETA" in res.output


# ---- deliver 8: Results paints a page from the store before reading every epoch ---------------

async def test_results_first_paint_is_a_page_from_the_store_then_sort_reads_every_epoch(ws):
    from textual.widgets import DataTable, Static

    app = make_app(ws, start="results")
    calls = []
    points = app.adapter.points
    app.adapter.points = lambda *a, **kw: calls.append(a) or points(*a, **kw)  # observe, not replace
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        table = screen.query_one("#table", DataTable)
        assert calls == [] and screen.page.n == 6 and table.row_count == 6  # no epoch rows read yet
        assert "6 runs" in str(screen.query_one("#results-status", Static).render())
        columns = [str(c.key.value) for c in table.ordered_columns]
        assert columns == ["distribution", "arch", "seed", "run_id", "epoch", "id_score", "ood_score", "state"]
        table.move_cursor(column=columns.index("ood_score"))
        await pilot.press("s")
        await settle(pilot)
        assert len(calls) == 1 and screen.sort_by == "ood_score" and table.row_count == 6
        assert list(screen.frame["ood_score"]) == sorted(screen.frame["ood_score"])
        assert list(screen.frame.columns) == columns  # the same columns before and after


def test_a_big_group_is_drawn_thinned_with_its_extremes():
    import numpy as np

    from divrob.plots.terminal import TrendPanel

    x = np.linspace(0.1, 0.9, 100_000)
    y = x[::-1].copy()
    panel = TrendPanel("probit", {"big": (x, y), "small": (x[:10], y[:10])}).thinned(limit=500)
    bx, by = panel.points["big"]
    assert 500 <= len(bx) <= 504 and (bx.min(), bx.max(), by.min(), by.max()) == (0.1, 0.9, 0.1, 0.9)
    assert len(panel.points["small"][0]) == 10 and panel.ranges() == TrendPanel("probit", {"big": (x, y)}).ranges()


@pytest.mark.slow
async def test_enter_on_a_job_opens_its_log_large(fresh_ws):
    from textual.widgets import Log

    app = make_app(fresh_ws, start="jobs")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        small = screen.query_one("#log", Log).size.height
        await pilot.press("enter")
        await pilot.pause()
        assert screen.has_class("-log-open") and screen.query_one("#log", Log).size.height > small
        await pilot.press("l")
        await pilot.pause()
        assert not screen.has_class("-log-open")


# ---- deliver 5: facets in the TUI ------------------------------------------------------------

@pytest.mark.slow
async def test_facets_draw_one_panel_per_value(ws):
    app = make_app(ws, start="trends")
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert screen.facet_choices()[:2] == [None, "arch"]
        await pilot.press("f")
        await settle(pilot)
        assert screen.facet == "arch" and list(screen.facets) == ["resnet18", "resnet34"]
        assert set(screen.facets["resnet18"].groups) == {"scratch", "shapes-2000", "shapes-500"}
        await pilot.press("t")  # refitting keeps the facets
        await settle(pilot)
        assert screen.analysis.transform == "logit" and list(screen.facets) == ["resnet18", "resnet34"]
        assert screen.facets["resnet18"].transform == "logit"
        for _ in range(len(screen.facet_choices()) - 2):  # on through the other fields
            await pilot.press("f")
            await settle(pilot)
            assert screen.facet is not None and len(screen.facets) >= 2
        await pilot.press("f")  # and back to one panel
        await settle(pilot)
        assert screen.facet is None and screen.facets is None


def test_group_names_are_cut_in_the_middle_so_sweep_values_stay_apart():
    # cut at the end, imagenet-5000 and imagenet-50000 both read "imagenet-5000" beside the plot
    from divrob.tui.components.tables import fit_name

    names = ["imagenet-5000", "imagenet-50000", "imagenet-100000", "imagenet-150000", "scratch", "shapes-large"]
    fitted = [fit_name(n, 13) for n in names]
    assert len(set(fitted)) == len(names) and all(len(f) <= 13 for f in fitted)
    assert fitted[0] == "imagenet-5000" and fitted[4] == "scratch"  # short enough: unchanged
    assert fitted[1].endswith("50000") and "…" in fitted[1] and fitted[3].endswith("-150000")
