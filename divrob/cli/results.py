"""`divrob results`, `divrob plot trends`, `divrob plot residuals`; `show_study` for the demo.

Only typer and rich are imported at module level: the analysis stack (numpy, pandas, duckdb,
plotext, matplotlib) loads inside the commands, and torch never does.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from divrob.cli.common import WorkspaceOpt, console, err_console
from divrob.analysis import TRANSFORMS

plot_app = typer.Typer(help="Plots in the terminal, and figures on export.", no_args_is_help=True)

FORMATS = ("table", "csv", "json", "parquet")

StudyArg = Annotated[str, typer.Argument(help="Study name or its recipe file.")]
GroupByOpt = Annotated[str, typer.Option(
    "--group-by", "-g", help="Run field to fit one trend per value of: distribution, source, arch, "
    "seed, or a swept recipe key (total, classes.random, ...).")]
BaselineOpt = Annotated[Optional[str], typer.Option(
    "--baseline", "-b", help="Group (or distribution) effective robustness is measured against "
    "(default: scratch).", show_default=False)]
TransformOpt = Annotated[str, typer.Option("--transform", "-t", help="Axis scale: probit | logit | linear.")]
WhereOpt = Annotated[Optional[str], typer.Option(
    "--where", help="Keep rows matching all clauses, e.g. 'arch in resnet18|resnet50, total>=5000, "
    "distribution!=scratch'. Operators: = != > >= < <= in, not in.")]
ExportOpt = Annotated[Optional[Path], typer.Option("--export", "-o", help="Also write a figure: .png, .svg or .pdf.")]
NBootOpt = Annotated[int, typer.Option("--n-boot", min=100, help="Bootstrap resamples.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the bootstrap (same seed, same numbers).")]


@contextmanager
def user_errors():
    """ValueError from the pure analysis functions is a user mistake here: print it plainly."""
    from divrob.errors import DivrobError

    try:
        yield
    except DivrobError:
        raise
    except ValueError as e:
        raise DivrobError(str(e)) from None


def _fmt(x) -> str:
    return "-" if x is None or x != x else f"{x:.3f}"


def load_points(ws, study: str | None, where: str | None):
    """A study's rows (or every study's), filtered by --where; an empty result is an error."""
    from divrob.analysis.report import resolve_study, study_points
    from divrob.analysis.where import apply_where
    from divrob.errors import DivrobError

    points = study_points(ws, resolve_study(ws, study) if study else None)
    if where:
        before = len(points)
        points = apply_where(points, where)
        if before and points.empty:
            raise DivrobError(f"--where {where!r} matched none of the {before} result rows")
    return points


def print_summary(points) -> None:
    from divrob.analysis.report import run_summary

    table = Table("distribution", "arch", "seed", "run", "epochs", "ID F1", "OOD F1",
                  title="results: macro-F1 at the last fine-tuning epoch")
    for r in run_summary(points).itertuples():
        table.add_row(r.distribution, r.arch, str(r.seed), r.run_id[:8], str(r.epoch), _fmt(r.id_f1), _fmt(r.ood_f1))
    console.print(table)


def print_trends(analysis) -> None:
    table = Table("group", "slope", "intercept", "R²", "points", "runs",
                  title=f"linear trends (OOD on ID, {analysis.transform} scale), by {analysis.group_by}")
    for name, r in analysis.groups.items():
        t = r.trend
        table.add_row(name, _fmt(t and t.slope), _fmt(t and t.intercept), _fmt(t and t.r2), str(r.n), str(r.runs))
    console.print(table)


def print_robustness(analysis) -> None:
    """Groups ranked by mean effective robustness, with the CI and whether it excludes zero."""
    if analysis.baseline is None:
        return
    pct = f"{analysis.level:.0%}"
    table = Table("rank", "group", "eff. robustness", f"{pct} CI", "vs baseline", "points",
                  title=f"effective robustness vs {analysis.baseline} (OOD F1 above the baseline "
                        f"trend; {analysis.n_boot} resamples)")
    for i, r in enumerate(analysis.ranked(), 1):
        mean, lo, hi = r.er
        if r.group == analysis.baseline:
            verdict = "[dim]baseline[/]"
        elif lo > 0:
            verdict = "[green]above[/]"
        elif hi < 0:
            verdict = "[red]below[/]"
        else:
            verdict = "[yellow]not distinguishable[/]"
        table.add_row(str(i), r.group, f"{mean:+.3f}", f"{lo:+.3f} … {hi:+.3f}", verdict, str(r.n))
    console.print(table)


def _plot_size() -> tuple[int, int]:
    return console.width, max(16, min(console.size.height - 2, 30))


def show_study(ws, study: str, *, group_by: str = "distribution", baseline: str | None = None,
               transform: str = "probit", where: str | None = None, facet: str | None = None,
               export: Path | None = None, n_boot: int = 1000, seed: int = 0) -> None:
    """Results table, terminal trend plot(s) with bands, trend table, effective robustness
    ranking, and optionally an exported figure."""
    from divrob.analysis.robustness import DEFAULT_BASELINE, analyse
    from divrob.plots.terminal import PALETTE, render_trends

    points = load_points(ws, study, where)
    if points.empty:
        console.print(f"study {study!r} has no fine-tuning epochs recorded yet")
        return
    with user_errors():
        analysis = analyse(points, group_by, baseline or DEFAULT_BASELINE, transform, n_boot, seed,
                           baseline_required=baseline is not None)
        panels = _panel_analyses(points, analysis, facet, group_by, transform, n_boot, seed)
    print_summary(points)
    colors = {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(analysis.groups)}
    width, height = _plot_size()
    for name, a in panels.items():
        title = f"{study}: OOD vs ID macro-F1 ({transform} axes, {analysis.level:.0%} bands)"
        plot = render_trends(a.df, a.trends, bands=a.bands, transform=transform, width=width,
                             height=height, title=f"{title} — {name}" if name else title, colors=colors)
        console.print(Text.from_ansi(plot), no_wrap=True, crop=True)
    print_trends(analysis)
    print_robustness(analysis)
    for note in analysis.notes:
        console.print(f"[yellow]note:[/] {note}")
    if export is not None:
        path = export_figure(panels, export, transform, study)
        console.print(f"figure written to [bold]{path}[/]")


def _panel_analyses(points, analysis, facet, group_by, transform, n_boot, seed) -> dict:
    """Per figure panel its own fits and bands; the unfaceted analysis for a single panel."""
    from divrob.analysis.report import facet_panels
    from divrob.analysis.robustness import analyse

    panels = facet_panels(points, facet, group_by)
    if list(panels) == [""]:
        return {"": analysis}
    return {name: analyse(rows, group_by, None, transform, n_boot, seed)
            for name, rows in panels.items()}


def export_figure(panels: dict, path: Path, transform: str, title: str) -> Path:
    from divrob.plots.export import export_panels

    with user_errors():
        return export_panels({name: (a.df, a.trends, a.bands) for name, a in panels.items()},
                             path, transform=transform, title=title)


def results(
    study: Annotated[Optional[str], typer.Option("--study", "-s", help="Study name or recipe file (default: all).")] = None,
    where: WhereOpt = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table | csv | json | parquet")] = "table",
    output: Annotated[Optional[Path], typer.Option("--output", help="Write to this file instead of the terminal (needed for parquet).")] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Results from the store: a per-run table, or every fine-tuning epoch as CSV / JSON / Parquet."""
    import json

    from divrob.errors import DivrobError
    from divrob.fileio import atomic_path
    from divrob.workspace import open_workspace

    if fmt not in FORMATS:
        raise DivrobError(f"--format {fmt!r}: choose from {', '.join(FORMATS)}")
    if fmt == "parquet" and output is None:
        raise DivrobError("--format parquet writes a binary file: give it a path with --output FILE.parquet")
    points = load_points(open_workspace(workspace), study, where)
    if fmt == "table":
        if output is not None:
            raise DivrobError("--output needs --format csv, json or parquet")
        print_summary(points)
        return
    if fmt == "parquet":
        with atomic_path(output) as tmp:
            points.to_parquet(tmp, index=False)
        err_console.print(f"{len(points)} rows written to {output}")
        return
    text = (points.to_csv(index=False) if fmt == "csv"
            else json.dumps(json.loads(points.to_json(orient="records")), indent=2) + "\n")
    if output is None:
        typer.echo(text, nl=False)
    else:
        from divrob.fileio import write_text_atomic

        write_text_atomic(output, text)
        err_console.print(f"{len(points)} rows written to {output}")


@plot_app.command()
def trends(
    study: StudyArg,
    group_by: GroupByOpt = "distribution",
    baseline: BaselineOpt = None,
    transform: TransformOpt = "probit",
    where: WhereOpt = None,
    facet: Annotated[Optional[str], typer.Option(
        "--facet", help="One figure panel per value of this field; 'none' for one panel. Default: "
        "one panel per swept axis when distributions sweep different keys.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print each group's trend and effective robustness as JSON, nothing else.")] = False,
    export: ExportOpt = None,
    n_boot: NBootOpt = 1000,
    seed: SeedOpt = 0,
    workspace: WorkspaceOpt = None,
) -> None:
    """OOD vs ID macro-F1 per fine-tuning epoch: one linear trend per group with its bootstrap
    band, and each group's effective robustness against the baseline."""
    from divrob.analysis.report import resolve_study
    from divrob.errors import DivrobError
    from divrob.workspace import open_workspace

    if transform not in TRANSFORMS:
        raise DivrobError(f"--transform {transform!r}: choose from {', '.join(TRANSFORMS)}")
    ws = open_workspace(workspace)
    name = resolve_study(ws, study)
    if not as_json:
        show_study(ws, name, group_by=group_by, baseline=baseline, transform=transform, where=where,
                   facet=facet, export=export, n_boot=n_boot, seed=seed)
        return
    from divrob.analysis.robustness import DEFAULT_BASELINE, analyse, to_json

    points = load_points(ws, name, where)
    with user_errors():
        analysis = analyse(points, group_by, baseline or DEFAULT_BASELINE, transform, n_boot, seed,
                           baseline_required=baseline is not None)
        if export is not None:
            panels = _panel_analyses(points, analysis, facet, group_by, transform, n_boot, seed)
            export_figure(panels, export, transform, name)
    typer.echo(to_json(analysis, study=name, where=where or ""), nl=False)


@plot_app.command()
def residuals(
    study: StudyArg,
    baseline: BaselineOpt = None,
    of: Annotated[Optional[str], typer.Option(
        "--of", help="Group whose points to show (default: the baseline itself, as in the paper's "
        "Figure 3).", show_default=False)] = None,
    group_by: GroupByOpt = "distribution",
    transform: TransformOpt = "probit",
    where: WhereOpt = None,
    export: ExportOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Residuals from the baseline trend vs fine-tuning epoch, one line per architecture: does
    the number of fine-tuning epochs bias the fit? (the paper's Figure 3)."""
    from divrob.analysis.report import resolve_study, with_groups
    from divrob.analysis.robustness import DEFAULT_BASELINE, analyse, epoch_residuals
    from divrob.errors import DivrobError
    from divrob.plots.terminal import render_residuals
    from divrob.workspace import open_workspace

    if transform not in TRANSFORMS:
        raise DivrobError(f"--transform {transform!r}: choose from {', '.join(TRANSFORMS)}")
    ws = open_workspace(workspace)
    name = resolve_study(ws, study)
    points = load_points(ws, name, where)
    base = baseline or DEFAULT_BASELINE
    with user_errors():
        analysis = analyse(points, group_by, base, transform, baseline_required=True, with_bands=False)
        shown = of or base
        rows = with_groups(points, group_by)
        rows = rows[rows["group"] == shown]
        if rows.empty:
            raise ValueError(f"no group {shown!r} when grouping by {group_by}; groups: "
                             f"{', '.join(analysis.groups) or 'none'}")
        res = epoch_residuals(rows, analysis.baseline_trend)
    width, height = _plot_size()
    title = f"{name}: residuals of {shown} from the {base} trend ({transform} fit, F1 units)"
    console.print(Text.from_ansi(render_residuals(res, width=width, height=height, title=title)),
                  no_wrap=True, crop=True)
    table = Table("arch", "epochs", "mean residual", "min", "max", title="residual per architecture")
    for arch, sub in res.groupby("arch", sort=True):
        table.add_row(str(arch), str(len(sub)), f"{sub.residual.mean():+.3f}",
                      f"{sub.residual.min():+.3f}", f"{sub.residual.max():+.3f}")
    console.print(table)
    if export is not None:
        from divrob.plots.export import export_residuals

        with user_errors():
            path = export_residuals(res, export, title=f"{name}: {shown} vs the {base} trend")
        console.print(f"figure written to [bold]{path}[/]")


def register(app: typer.Typer) -> None:
    app.command()(results)
