"""`divrob doctor [--fix]`: check a workspace and repair what is safe (divrob.store.doctor)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from divrob.cli.common import WorkspaceOpt, console


def doctor(
    fix: Annotated[bool, typer.Option("--fix", help="Repair what is safe (see the README).")] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Check the store against the run directories, stale claims, orphan temporary files, dead
    `running` states and damaged runs; exit 1 while something is left to repair."""
    from divrob.store.doctor import check_workspace
    from divrob.workspace import open_workspace

    ws = open_workspace(workspace)
    found = check_workspace(ws, fix=fix)
    if not found:
        console.print(f"{ws.root}: nothing to repair", highlight=False, markup=False)
        return
    table = Table(title=f"divrob doctor: {ws.root}")
    for name in ("problem", "where", "what", "fixed" if fix else "fix"):
        table.add_column(name, overflow="fold")
    for f in found:
        table.add_row(f.kind, Text(f.where), Text(f.what), Text(f.fixed or ("-" if fix else "--fix")))
    console.print(table)
    left = [f for f in found if not f.fixed]
    console.print(f"{len(found)} problem(s), {len(found) - len(left)} repaired, {len(left)} left"
                  + ("" if fix else "; `divrob doctor --fix` repairs what is safe"), highlight=False, markup=False)
    if left:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(doctor)
