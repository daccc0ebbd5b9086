"""`divrob tui [RECIPE]`: the terminal app (Textual). Imported only when the command runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from divrob.cli.common import WorkspaceOpt


def tui(
    recipe: Annotated[Path | None, typer.Argument(
        help="A recipe file (anywhere) to open on the Study screen.", exists=True, dir_okay=False)] = None,
    workspace: WorkspaceOpt = None,
    screen: Annotated[str, typer.Option(
        "--screen", "-s", help="The screen to open on: recipes, study, jobs, results or trends (keys 1-5).")] = "recipes",
) -> None:
    """Recipes, study plan and launch, live jobs, results and trend plots in one terminal app.
    Exits 1 when the workspace cannot be opened or the app fails."""
    from divrob.errors import UsageError
    from divrob.tui.app import run
    from divrob.tui.components.nav_bar import SCREENS

    modes = [mode for _, mode, _ in SCREENS]
    if screen not in modes:
        raise UsageError(f"--screen {screen!r}: choose from {', '.join(modes)}")
    code = run(workspace, recipe, start=screen)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command()(tui)
