"""`divrob tui`: the terminal app (Textual). Imported only when the command runs."""

from __future__ import annotations

import typer

from divrob.cli.common import WorkspaceOpt


def tui(workspace: WorkspaceOpt = None) -> None:
    """Recipes, study plan and launch, live jobs, results and trend plots in one terminal app."""
    from divrob.tui.app import DivrobApp

    DivrobApp(workspace).run()


def register(app: typer.Typer) -> None:
    app.command()(tui)
