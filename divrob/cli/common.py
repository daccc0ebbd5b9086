"""What every command shares: the --workspace option, consoles, and a rich progress reporter."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from divrob.states import STATE_STYLE

console = Console()
err_console = Console(stderr=True)

WorkspaceOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--workspace", "-w", envvar="DIVROB_WORKSPACE", show_default="./divrob-work",
        help="Workspace directory (or $DIVROB_WORKSPACE).",
    ),
]


JsonOpt = Annotated[bool, typer.Option("--json", help="Print the table as JSON, nothing else.")]


def print_json(value) -> None:
    """Machine-readable output: plain JSON on stdout, no colour, no table."""
    import json

    typer.echo(json.dumps(value, indent=2, default=str))


def one_of(choices: tuple[str, ...]):
    """An option callback that accepts only `choices` (a usage error, exit 2, otherwise)."""

    def check(value: str) -> str:
        if value not in choices:
            raise typer.BadParameter(f"{value!r}: choose from {', '.join(choices)}")
        return value

    return check


class _RichTask:
    def __init__(self, reporter: "RichReporter", task_id, description: str):
        self._r = reporter
        self._id = task_id
        self._desc = description
        self._t0 = time.perf_counter()
        self._closed = False

    def advance(self, n: int = 1) -> None:
        self._r.progress.advance(self._id, n)

    def update(self, *, total: int | None = None, description: str | None = None) -> None:
        if description:
            self._desc = description
        self._r.progress.update(self._id, total=total, description=description)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        elapsed = time.perf_counter() - self._t0
        self._r.progress.remove_task(self._id)
        if elapsed >= 1.0:
            self._r.progress.console.print(f"[green]✓[/] {escape(self._desc)} [dim]({elapsed:.1f}s)[/]")


class RichReporter:
    """Progress bars for long work; finished bars collapse into one line each."""

    def __init__(self, console: Console = console):
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console,
        )

    def __enter__(self) -> "RichReporter":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def task(self, description: str, total: int | None = None) -> _RichTask:
        return _RichTask(self, self.progress.add_task(description, total=total), description)

    def log(self, message: str) -> None:
        self.progress.console.print(styled(message))


def styled(message: str) -> Text:
    """A plain message for the console, its leading state word coloured ("failed ...")."""
    text = Text(message)
    word = message.split(" ", 1)[0].rstrip(":")
    if word in STATE_STYLE:
        text.stylize(STATE_STYLE[word], 0, len(word))
    return text
