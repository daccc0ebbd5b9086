"""Scripting conventions of a Typer CLI (issue 15, deliver 9): --version, shell completion for
bash / zsh / fish, plain text without a terminal or with NO_COLOR, --json on table commands."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from divrob import __version__
from divrob.cli import app


def test_version():
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"divrob {__version__}"


@pytest.mark.parametrize(("shell", "extra", "expect"), [
    ("bash", {"COMP_WORDS": "divrob jo", "COMP_CWORD": "1"}, "jobs"),
    ("zsh", {"_TYPER_COMPLETE_ARGS": "divrob jo"}, '"jobs"'),
    ("fish", {"_TYPER_COMPLETE_ARGS": "divrob jo", "_TYPER_COMPLETE_FISH_ACTION": "get-args"}, "jobs"),
])
def test_shell_completion_completes_commands(shell, extra, expect):
    res = CliRunner().invoke(app, [], prog_name="divrob", env={"_DIVROB_COMPLETE": f"complete_{shell}", **extra})
    assert expect in res.output, res.output


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_show_completion_prints_a_script(shell):
    import os
    import subprocess
    import sys

    env = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}  # name the shell, not detect it
    done = subprocess.run([sys.executable, "-c", "from divrob.cli import app; app(prog_name='divrob')",
                           "--show-completion", shell], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "_DIVROB_COMPLETE" in done.stdout, done.stdout + done.stderr


def test_no_color_and_a_pipe_give_plain_text(tmp_path):
    """CliRunner's stdout is not a terminal: no escape codes, with or without NO_COLOR."""
    for env in ({}, {"NO_COLOR": "1"}):
        res = CliRunner().invoke(app, ["models"], env=env)
        assert res.exit_code == 0 and "resnet18" in res.output and "\x1b[" not in res.output


@pytest.mark.slow
def test_table_commands_take_json(tmp_path):
    runner = CliRunner()
    models = json.loads(runner.invoke(app, ["models", "--json"]).output)
    assert "resnet18" in models["archs"] and "camtrap-sim" in models["downstream"]
    names = json.loads(runner.invoke(app, ["recipes", "list", "--json"]).output)
    assert any("quickstart" in n for n in names)
    shown = json.loads(runner.invoke(app, ["recipes", "show", "demo/quickstart", "--json"]).output)
    assert shown["study"] and shown["distributions"][0]["distribution"]
    ws = ["-w", str(tmp_path / "ws")]
    assert runner.invoke(app, ["init", *ws]).exit_code == 0
    res = runner.invoke(app, ["study", "plan", "demo/quickstart", "--json", *ws])
    assert res.exit_code == 0, res.output
    plan = json.loads(res.output)
    assert plan["study"] == shown["study"] and plan["jobs"]
    assert json.loads(runner.invoke(app, ["jobs", "ls", "--json", *ws]).output) == []


def test_recipes_build_json(tmp_path):
    from test_tui_helpers import GOOD_RECIPE

    recipe = tmp_path / "r.toml"
    recipe.write_text(GOOD_RECIPE)
    ws = ["-w", str(tmp_path / "ws")]
    runner = CliRunner()
    assert runner.invoke(app, ["init", *ws]).exit_code == 0
    res = runner.invoke(app, ["recipes", "build", str(recipe), "--json", *ws])
    assert res.exit_code == 0 and json.loads(res.output) == [{"distribution": "scratch"}], res.output
