"""`divrob study plan|run|retry` through the queue: no-op jobs behind a real recipe (the plan is
swapped for no-op jobs), and one real training run through `--executor submitit-local`."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import divrob.dispatch.inline  # noqa: F401  (binds the real plan_study before tests patch divrob.runs.grid's)
from divrob.cli import app
from divrob.dispatch.control import list_jobs
from divrob.dispatch.kinds import make_noop_jobs
from divrob.runs.grid import PlannedJob, StudyPlan
from divrob.runs.rundir import RunDir
from divrob.workspace import init_workspace

RECIPE = """
[study]
name = "one"
downstream = "camtrap-sim"
archs = ["resnet18"]
seeds = [0]
finetune = { epochs = 1, batch_size = 32, lr = 1e-3, image_size = 16 }

[[distribution]]
name = "scratch"
"""

DEMO_SIZES = """
[demo]
shapes_classes = 6
shapes_per_class = 24
shapes_size = 16
camtrap_images = 200
camtrap_size = 16
"""


@pytest.fixture
def setup(tmp_path):
    ws = init_workspace(tmp_path / "ws")
    text = ws.config_path.read_text()
    ws.config_path.write_text(text[: text.index("[demo]")] + DEMO_SIZES)
    recipe = tmp_path / "one.toml"
    recipe.write_text(RECIPE)
    return CliRunner(), ws, recipe


class NoopPlan(StudyPlan):
    def jobs(self):
        return self._jobs


@pytest.mark.slow
def test_plan_run_logs_retry_with_noop_jobs(setup, tmp_path, monkeypatch):
    runner, ws, recipe = setup
    fix = tmp_path / "fixed"
    noop = make_noop_jobs(ws, 3, "one", epochs=2) + make_noop_jobs(ws, 1, "one", first_seed=7, epochs=2, fail_at=2,
                                                                  fail_unless=str(fix))
    planned = [PlannedJob(j.job_id, "noop", j.label, params=j.params) for j in noop]

    def fake_plan(ws_, rec, reporter=None):
        p = NoopPlan(rec)
        p._jobs = planned
        return p

    monkeypatch.setattr("divrob.runs.grid.plan_study", fake_plan)
    w = ["-w", str(ws.root)]
    res = runner.invoke(app, ["study", "plan", str(recipe), *w])
    assert res.exit_code == 0, res.output
    assert res.output.count("to run") == 4 and "4 of 4 runs to do" in res.output

    res = runner.invoke(app, ["study", "run", str(recipe), "-e", "local", "--cpu-slots", "2", *w])
    assert res.exit_code == 1, res.output
    assert "4 runs: 3 trained, 0 already finished, 1 failed" in res.output
    bad = noop[-1].job_id
    assert f"divrob jobs logs {bad[:8]}" in res.output
    res = runner.invoke(app, ["jobs", "logs", bad[:8], *w])
    assert "failing at epoch 2 as asked" in res.output

    res = runner.invoke(app, ["study", "plan", str(recipe), *w])
    assert res.output.count("finished (never redone)") == 3 and "partly done (will resume)" in res.output

    fix.touch()
    res = runner.invoke(app, ["study", "retry", str(recipe), *w])
    assert res.exit_code == 0, res.output
    assert "1 trained, 3 already finished, 0 failed" in res.output
    assert [e["epoch"] for e in RunDir(ws.runs / bad).events()] == [1, 2]
    res = runner.invoke(app, ["jobs", "ls", "--study", str(recipe), *w])
    assert res.exit_code == 0 and "4 finished" in res.output
    res = runner.invoke(app, ["study", "run", str(recipe), "-e", "local", *w])
    assert res.exit_code == 0 and "0 trained, 4 already finished" in res.output
    res = runner.invoke(app, ["study", "run", str(recipe), "-e", "local", "--detach", *w])
    assert res.exit_code == 0 and "4 already finished" in res.output and "no scheduler started" in res.output
    assert not (ws.root / "logs" / "scheduler-local.log").exists()  # a finished study starts nothing


@pytest.mark.slow
def test_cancelled_jobs_wait_for_retry(setup, monkeypatch):
    from divrob.dispatch.study import enqueue
    from divrob.recipes.load import load_recipe

    runner, ws, recipe = setup
    noop = make_noop_jobs(ws, 2, "one")
    plan = NoopPlan(load_recipe(recipe))
    plan._jobs = [PlannedJob(j.job_id, "noop", j.label, params=j.params) for j in noop]
    monkeypatch.setattr("divrob.runs.grid.plan_study", lambda ws_, rec, reporter=None: plan)
    w = ["-w", str(ws.root)]
    enqueue(ws, plan, "local")
    res = runner.invoke(app, ["jobs", "cancel", noop[0].job_id[:6], *w])  # no scheduler alive: cancelled directly
    assert res.exit_code == 0 and "cancelling 1 job" in res.output, res.output
    res = runner.invoke(app, ["study", "run", str(recipe), "-e", "local", *w])
    assert res.exit_code == 0 and "1 trained" in res.output, res.output
    assert RunDir(ws.runs / noop[0].job_id).status().state == "cancelled"
    res = runner.invoke(app, ["study", "retry", str(recipe), *w])
    assert res.exit_code == 0 and "1 trained, 1 already finished" in res.output, res.output


@pytest.mark.slow
def test_one_real_run_through_submitit_local(setup):
    runner, ws, recipe = setup
    w = ["-w", str(ws.root)]
    res = runner.invoke(app, ["study", "run", str(recipe), "-e", "submitit-local", "--gpus", "0", *w])
    assert res.exit_code == 0, res.output
    assert "1 runs: 1 trained, 0 already finished, 0 failed" in res.output
    res = runner.invoke(app, ["study", "plan", str(recipe), *w])
    assert "finished (never redone)" in res.output and "0 of 1 runs to do" in res.output
    res = runner.invoke(app, ["jobs", "ls", *w])
    assert "finished" in res.output
    (job,) = list_jobs(ws)  # the run's last progress, as the real training loop reported it
    p = job.progress
    assert (p.label(), p.step) == ("ft 1/1", p.steps_per_epoch) and p.images_per_s > 0
    res = runner.invoke(app, ["results", "--study", "one", "--format", "csv", *w])
    assert len(res.output.strip().splitlines()) == 2  # header + 1 fine-tuning epoch


def test_messages_keep_their_brackets(setup, tmp_path):
    """Rich markup never eats a word of a message: an error that says where to put a setting
    keeps its "[datasets]" (issue 13 item 8)."""
    runner, ws, _ = setup
    recipe = tmp_path / "inet.toml"
    recipe.write_text(RECIPE.replace('name = "scratch"', 'name = "inet"\nsource = "imagenet"\ntotal = 10'))
    res = runner.invoke(app, ["study", "run", str(recipe), "-e", "local", "-w", str(ws.root)])
    assert res.exit_code == 2 and "put `imagenet = \"/path/to/imagenet\"` under [datasets] in" in res.output


def test_the_console_reporter_prints_plain_messages_and_colours_the_state():
    from rich.console import Console

    from divrob.cli.common import RichReporter, styled

    console = Console(record=True, width=200)
    with RichReporter(console) as reporter:
        reporter.log("failed 0123: put `x = 1` under [datasets] in divrob.toml")
        reporter.task("indexing [folders] mine").close()
    assert "failed 0123: put `x = 1` under [datasets] in divrob.toml" in console.export_text()
    line = styled("failed 0123: reason [x]")
    assert [(s.start, s.end, s.style) for s in line.spans] == [(0, 6, "red")] and line.plain.endswith("[x]")
