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
            from rich.markup import escape

            from divrob.cli.common import err_console

            err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
            raise typer.Exit(e.exit_code) from None


def _epilog() -> str:
    from divrob.downstream import task_names

    return (f"Downstream tasks a recipe may name: {', '.join(task_names())} "
            "(with options: `divrob models`).")


app = typer.Typer(
    cls=_Group,
    name="divrob",
    help="Pre-training distributions → fine-tuned models → effective robustness, from the terminal.",
    epilog=_epilog(),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

from divrob.cli import basics, jobs, recipes, results, study  # noqa: E402  (registers commands)

app.add_typer(recipes.app, name="recipes")
app.add_typer(study.app, name="study")
app.add_typer(jobs.app, name="jobs")
app.add_typer(results.plot_app, name="plot")
from divrob.cli import bench  # noqa: E402

app.add_typer(bench.app, name="bench")
from divrob.cli import data  # noqa: E402

app.add_typer(data.app, name="data")
app.add_typer(data.taxonomy_app, name="taxonomy")
from divrob.cli import generate  # noqa: E402

app.add_typer(generate.app, name="generate")
basics.register(app)
results.register(app)
from divrob.cli import compare  # noqa: E402

compare.register(app)
from divrob.cli import ops  # noqa: E402

ops.register(app)
from divrob.cli import tui as tui_command  # noqa: E402

tui_command.register(app)


def main() -> None:
    app()
