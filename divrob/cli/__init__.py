"""The `divrob` command. Thin: every command parses options and calls core functions."""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from divrob.errors import DivrobError


class _Group(TyperGroup):
    """Turn user mistakes (DivrobError) into one red line and an exit code, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except DivrobError as e:
            _error(str(e))
            raise typer.Exit(e.exit_code) from None
        except OSError as e:  # the machine refused: a path not writable, a disk full, ...
            _error(_os_message(e))
            raise typer.Exit(1) from None
        except Exception as e:
            store = _store_damage(e)
            if store is None:
                raise
            _error(store)
            raise typer.Exit(1) from None


def _error(message: str) -> None:
    from rich.markup import escape

    from divrob.cli.common import err_console

    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _os_message(e: OSError) -> str:
    where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f)
    what = e.strerror or type(e).__name__
    return (f"{what}: {where}; check that the path exists, is a directory where one is needed, is writable "
            "and that its disk has space" if where else f"{what}: {e}")


def _store_damage(e: Exception) -> str | None:
    """A message for a DuckDB error that means the store file is damaged; None for anything else."""
    import sys

    duckdb = sys.modules.get("duckdb")
    if duckdb is None or not isinstance(e, duckdb.Error):
        return None
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return (f"the store (divrob.duckdb) cannot be read: {first}; move divrob.duckdb out of the workspace and run "
            "`divrob study run RECIPE` again: it rebuilds the store from the run directories (finished runs are "
            "not trained again)")


def _epilog() -> str:
    from divrob.archs import WEIGHT_SOURCES
    from divrob.downstream import task_names

    return (f"Downstream tasks a recipe may name: {', '.join(task_names())} "
            "(with options: `divrob models`). "
            f"Initial weights instead of pre-training: {', '.join(WEIGHT_SOURCES)} (`divrob models`).")


app = typer.Typer(
    cls=_Group,
    name="divrob",
    help="Pre-training distributions → fine-tuned models → effective robustness, from the terminal.",
    epilog=_epilog(),
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, powershell)
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from divrob import __version__

        typer.echo(f"divrob {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print divrob's version and exit."),
) -> None:
    """Pre-training distributions → fine-tuned models → effective robustness, from the terminal."""

from divrob.cli import basics, jobs, recipes, results, study

app.add_typer(recipes.app, name="recipes")
app.add_typer(study.app, name="study")
app.add_typer(jobs.app, name="jobs")
app.add_typer(results.plot_app, name="plot")
from divrob.cli import bench

app.add_typer(bench.app, name="bench")
from divrob.cli import data

app.add_typer(data.app, name="data")
app.add_typer(data.taxonomy_app, name="taxonomy")
from divrob.cli import generate

app.add_typer(generate.app, name="generate")
basics.register(app)
results.register(app)
from divrob.cli import compare

compare.register(app)
from divrob.cli import doctor as doctor_command

doctor_command.register(app)
from divrob.cli import ops

ops.register(app)
from divrob.cli import tui as tui_command

tui_command.register(app)


def main() -> None:
    app()
