"""`divrob study plan|run`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from divrob.cli.common import RichReporter, WorkspaceOpt, console

app = typer.Typer(help="Plan and run the (distribution x architecture x seed) grid of a recipe.", no_args_is_help=True)

FileArg = Annotated[Path, typer.Argument(help="A recipe .toml file.")]


@app.command()
def plan(file: FileArg, workspace: WorkspaceOpt = None) -> None:
    """Every run the study needs and its state: to run, partly done (will resume) or finished."""
    from divrob.recipes.load import load_recipe
    from divrob.runs.grid import plan_study
    from divrob.runs.rundir import RunDir
    from divrob.workspace import open_workspace

    ws = open_workspace(workspace)
    rec = load_recipe(file)
    with RichReporter() as reporter:
        p = plan_study(ws, rec, reporter)
    table = Table("distribution", "arch", "seed", "run id", "manifest", "state", title=rec.study.name)
    for pr in p.runs:
        rd = RunDir(ws.runs / pr.spec.run_id)
        state = rd.status().get("state", "to run") if rd.path.exists() else "to run"
        if state not in ("finished", "to run") and rd.events():
            state = f"partly done ({state})"
        table.add_row(pr.distribution, pr.spec.arch, str(pr.spec.seed), pr.spec.run_id,
                      pr.spec.manifest_id or "-", state)
    console.print(table)


@app.command()
def run(file: FileArg, workspace: WorkspaceOpt = None) -> None:
    """Build manifests, train every unfinished run in this process, ingest results."""
    from divrob.cli.basics import _summary
    from divrob.dispatch.inline import run_study
    from divrob.recipes.load import load_recipe
    from divrob.workspace import open_workspace

    ws = open_workspace(workspace)
    rec = load_recipe(file)
    with RichReporter() as reporter:
        outcome = run_study(ws, rec, reporter)
    _summary(outcome)
    if outcome.failed:
        raise typer.Exit(1)
