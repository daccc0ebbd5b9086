"""`divrob results` and `divrob plot trends`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from divrob.cli.common import WorkspaceOpt, console

plot_app = typer.Typer(help="Plots in the terminal, and figures on export.", no_args_is_help=True)

FORMATS = ("table", "csv", "json")
TRANSFORMS = ("probit", "logit", "linear")


def _fmt(x) -> str:
    return "-" if x is None or x != x else f"{x:.3f}"


def print_summary(points) -> None:
    from divrob.analysis.report import run_summary

    table = Table("distribution", "arch", "seed", "run", "epochs", "ID F1", "OOD F1",
                  title="results: macro-F1 at the last fine-tuning epoch")
    for r in run_summary(points).itertuples():
        table.add_row(r.distribution, r.arch, str(r.seed), r.run_id[:8], str(r.epoch), _fmt(r.id_f1), _fmt(r.ood_f1))
    console.print(table)


def print_trends(trends) -> None:
    table = Table("group", "slope", "intercept", "R²", "points", title="linear trends (OOD on ID, transformed)")
    for name, t in trends.items():
        table.add_row(name, f"{t.slope:.3f}", f"{t.intercept:.3f}", f"{t.r2:.3f}", str(t.n))
    console.print(table)


def show_study(ws, study: str, *, group_by: str = "distribution", transform: str = "probit", export: Path | None = None) -> None:
    """Results table, terminal trend plot, trend table, and optionally an exported figure."""
    from divrob.analysis.report import study_points, study_trends
    from divrob.plots.terminal import render_trends

    points = study_points(ws, study)
    if points.empty:
        console.print(f"study {study!r} has no fine-tuning epochs recorded yet")
        return
    print_summary(points)
    df, trends = study_trends(points, group_by, transform)
    plot = render_trends(df, trends, transform=transform, width=console.width,
                         height=max(16, min(console.size.height - 2, 30)),
                         title=f"{study}: OOD vs ID macro-F1 ({transform} axes)")
    console.print(Text.from_ansi(plot), no_wrap=True, crop=True)
    print_trends(trends)
    if export is not None:
        from divrob.plots.export import export_trends

        path = export_trends(df, trends, export, transform=transform, title=study)
        console.print(f"figure written to [bold]{path}[/]")


def results(
    study: Annotated[Optional[str], typer.Option("--study", "-s", help="Study name or recipe file (default: all).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table | csv | json")] = "table",
    workspace: WorkspaceOpt = None,
) -> None:
    """Results from the store: a per-run table, or every epoch as CSV / JSON."""
    from divrob.analysis.report import resolve_study, study_points
    from divrob.errors import DivrobError
    from divrob.workspace import open_workspace

    if fmt not in FORMATS:
        raise DivrobError(f"--format {fmt!r}: choose from {', '.join(FORMATS)}")
    ws = open_workspace(workspace)
    points = study_points(ws, resolve_study(ws, study) if study else None)
    if fmt == "csv":
        typer.echo(points.to_csv(index=False), nl=False)
    elif fmt == "json":
        typer.echo(json.dumps(json.loads(points.to_json(orient="records")), indent=2))
    else:
        print_summary(points)


@plot_app.command()
def trends(
    study: Annotated[str, typer.Argument(help="Study name or its recipe file.")],
    group_by: Annotated[str, typer.Option("--group-by", help="Run field to fit one trend per value of.")] = "distribution",
    transform: Annotated[str, typer.Option(help="probit | logit | linear")] = "probit",
    export: Annotated[Optional[Path], typer.Option(help="Also write a figure: .png, .svg or .pdf.")] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """OOD vs ID macro-F1 per fine-tuning epoch, one linear trend per group."""
    from divrob.analysis.report import resolve_study
    from divrob.errors import DivrobError
    from divrob.workspace import open_workspace

    if transform not in TRANSFORMS:
        raise DivrobError(f"--transform {transform!r}: choose from {', '.join(TRANSFORMS)}")
    ws = open_workspace(workspace)
    show_study(ws, resolve_study(ws, study), group_by=group_by, transform=transform, export=export)


def register(app: typer.Typer) -> None:
    app.command()(results)
