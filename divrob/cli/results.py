"""`divrob results`, `divrob plot trends`, `divrob plot residuals`; `show_study` for the demo.

Only typer and rich are imported at module level: the analysis stack (numpy, pandas, duckdb,
plotext, matplotlib) loads inside the commands, and torch never does.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, List, Optional

import typer
from rich.markup import escape
from rich.text import Text

from divrob.analysis import ALL_OOD, BOOTSTRAP_UNITS, ID_COL, N_BOOT, OOD_COL, TRANSFORMS
from divrob.cli.common import WorkspaceOpt, console, err_console, styled

plot_app = typer.Typer(help="Plots in the terminal, and figures on export.", no_args_is_help=True)

FORMATS = ("table", "csv", "json", "parquet", "tensorboard")
BAND_STYLES = ("none", "lines", "shade")  # plots.terminal's, spelled here so --help needs no numpy

StudyArg = Annotated[str, typer.Argument(help="Study name or its recipe file.")]
GroupByOpt = Annotated[str, typer.Option(
    "--group-by", "-g", help="Run field to fit one trend per value of: distribution, source, arch, "
    "seed, or a swept recipe key (total, classes.random, ...).")]
BaselineOpt = Annotated[Optional[str], typer.Option(
    "--baseline", "-b", help="Group, distribution or --reference line that effective robustness is "
    "measured against (default: scratch).", show_default=False)]
TransformOpt = Annotated[str, typer.Option("--transform", "-t", help="Axis scale: probit | logit | linear.")]
WhereOpt = Annotated[Optional[str], typer.Option(
    "--where", help="Keep rows matching all clauses, e.g. 'arch in resnet18|resnet50, total>=5000, "
    "distribution!=scratch'. Operators: = != > >= < <= in, not in.")]
OodOpt = Annotated[Optional[str], typer.Option(
    "--ood", help="The OOD split to read: WILDS's test (the default where a study has it) or val, a "
    f"DomainNet domain, a folder task's ood_<name>; '{ALL_OOD}' for every one (`results` exports).",
    show_default=False)]
FacetOpt = Annotated[Optional[str], typer.Option(
    "--facet", help="One figure panel per value of this field; 'ood' for one per OOD split (and task); "
    "'none' for one panel. Default: one panel per swept axis when distributions sweep different keys.")]
ExportOpt = Annotated[Optional[Path], typer.Option("--export", "-o", help="Also write a figure: .png, .svg or .pdf.")]
NBootOpt = Annotated[int, typer.Option("--n-boot", min=100, help="Bootstrap resamples.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the bootstrap (same seed, same numbers).")]
BootstrapOpt = Annotated[str, typer.Option(
    "--bootstrap", help="What each bootstrap draw resamples: runs (all epochs of a run together, "
    "the independent unit) or points (every epoch alone: too narrow, kept for comparison).")]
BandsOpt = Annotated[str, typer.Option("--bands", help="Draw bands as two edge lines, a shaded area, or not at all: lines | shade | none.")]
ReferenceOpt = Annotated[Optional[List[str]], typer.Option(
    "--reference", help="An external trend line, e.g. a published one: NAME=SLOPE,INTERCEPT, or "
    "with the scale it was fitted on (probit, logit, linear) after one more comma (repeatable). Drawn in every "
    "panel and usable as --baseline NAME.", show_default=False)]
ReferencePointsOpt = Annotated[Optional[Path], typer.Option(
    "--reference-points", help="CSV of external points with columns group,id,ood (metrics in [0, 1]): "
    "drawn and fitted as groups of their own, usable as --baseline.", show_default=False)]


@contextmanager
def user_errors():
    """ValueError from the pure analysis functions is a user mistake here (an option or an input
    file the analysis cannot take): print it plainly, exit 2."""
    from divrob.errors import DivrobError, UsageError

    try:
        yield
    except DivrobError:
        raise
    except ValueError as e:
        raise UsageError(str(e)) from None


@dataclass
class Reading:
    """How a study is read: the choices every analysis command shares."""

    group_by: str = "distribution"
    baseline: Optional[str] = None  # None: the default baseline, not an error when missing
    transform: str = "probit"
    unit: str = "runs"
    n_boot: int = N_BOOT
    seed: int = 0
    references: dict = field(default_factory=dict)
    reference_points: object = None  # a DataFrame of (group, id_f1, ood_f1), or None

    @classmethod
    def parse(cls, *, reference=None, reference_points=None, **kw) -> "Reading":
        """Validated options; bad ones raise DivrobError saying what to write instead."""
        from divrob.errors import UsageError

        r = cls(**kw)
        if r.transform not in TRANSFORMS:
            raise UsageError(f"--transform {r.transform!r}: choose from {', '.join(TRANSFORMS)}")
        if r.unit not in BOOTSTRAP_UNITS:
            raise UsageError(f"--bootstrap {r.unit!r}: choose from {', '.join(BOOTSTRAP_UNITS)}")
        if reference or reference_points is not None:
            from divrob.analysis.references import load_reference_points, parse_references

            with user_errors():
                r.references = parse_references(reference, r.transform)
                if reference_points is not None:
                    r.reference_points = load_reference_points(reference_points)
        return r

    def analyse(self, points, *, with_bands: bool = True):
        """The analysis of `points`, which must hold one OOD split (see `analyse_each_ood`)."""
        from divrob.analysis.robustness import DEFAULT_BASELINE, analyse

        with user_errors():
            return analyse(points, self.group_by, self.baseline or DEFAULT_BASELINE, self.transform,
                           self.n_boot, self.seed, baseline_required=self.baseline is not None,
                           with_bands=with_bands, unit=self.unit, references=self.references,
                           reference_points=self.reference_points)


def load_points(ws, study: str | None, where: str | None, *, for_analysis: bool = False, ood: str | None = None):
    """A study's rows (or every study's), filtered by --where; an empty result is an error.
    `for_analysis`: read only the scores a trend needs (and those --where names). `ood`: the OOD
    split (`analysis.studies.choose_ood`)."""
    from divrob.analysis.report import study_points
    from divrob.analysis.studies import resolve_study
    from divrob.analysis.where import apply_where, parse_where
    from divrob.errors import UsageError
    from divrob.store.queries import SCORE_COLUMNS

    scores = SCORE_COLUMNS
    if for_analysis:
        from divrob.preload import preload

        preload("divrob.analysis.robustness")  # scipy and pandas load while the store is read
        named = {c.field for c in parse_where(where)}
        scores = [c for c in SCORE_COLUMNS if c in (ID_COL, OOD_COL) or c in named]
    points = study_points(ws, resolve_study(ws, study) if study else None, scores, ood)
    if where:
        before = len(points)
        points = apply_where(points, where)
        if before and points.empty:
            raise UsageError(f"--where {where!r} matched none of the {before} result rows")
    return points


def check_ood(ood: str | None, facet: str | None) -> str | None:
    """The OOD split a trend command reads: every one for `--facet ood`, else the one asked."""
    from divrob.errors import UsageError

    if facet == "ood":
        if ood is not None:
            raise UsageError(f"--ood {ood!r} with --facet ood: the facets are the OOD splits; drop one of the two")
        return ALL_OOD
    if ood == ALL_OOD:
        raise UsageError(f"--ood {ALL_OOD} would pool every OOD split into one trend; draw one panel each "
                          f"with --facet ood")
    return ood


def analyse_each_ood(points, reading: "Reading") -> dict:
    """One analysis per figure panel of `--facet ood` (each OOD split, and task), each against
    the baseline of its own panel."""
    from divrob.analysis.report import facet_panels

    with user_errors():
        return {name: reading.analyse(sub) for name, sub in facet_panels(points, "ood", reading.group_by).items()}


def _plot_size() -> tuple[int, int]:
    return console.width, max(16, min(console.size.height - 2, 30))


def show_study(ws, study: str, *, group_by: str = "distribution", baseline: str | None = None,
               transform: str = "probit", where: str | None = None, facet: str | None = None,
               export: Path | None = None, n_boot: int = N_BOOT, seed: int = 0,
               reading: Reading | None = None, bands: str = "lines", ood: str | None = None) -> None:
    """Results table, terminal trend plot(s) with bands, trend table, effective robustness
    ranking, notes, and optionally an exported figure. `--facet ood`: per OOD split its panel and
    its tables."""
    from divrob.cli.analysis_tables import print_notes, print_robustness, print_summary, print_trends
    from divrob.plots.terminal import group_colors, panel_of, render_trends

    reading = reading or Reading.parse(group_by=group_by, baseline=baseline, transform=transform,
                                       n_boot=n_boot, seed=seed)
    points = load_points(ws, study, where, for_analysis=True, ood=check_ood(ood, facet))
    if points.empty:
        console.print(f"study {study!r} has no fine-tuning epochs recorded yet", markup=False)
        return
    if facet == "ood":
        analyses = analyse_each_ood(points, reading)
        panels = {name: panel_of(a) for name, a in analyses.items()}
        colors = group_colors(sorted({g for a in analyses.values() for g in a.groups}))
    else:
        analysis = reading.analyse(points)
        analyses, panels, colors = {"": analysis}, _panels(points, analysis, facet, reading), _colors(analysis)
        print_summary(points)
    first = next(iter(analyses.values()))
    width, height = _plot_size()
    drawn = f", {first.level:.0%} bands" if bands != "none" else ""
    title = f"{study}: OOD vs ID {first.metric} ({reading.transform} axes{drawn})"
    with user_errors():
        plot = render_trends(panels, width=width, height=height, title=title, bands=bands, colors=colors)
    console.print(Text.from_ansi(plot), no_wrap=True, crop=True)
    for name, analysis in analyses.items():
        if name:
            console.rule(f"OOD split {escape(name)}")
        print_trends(analysis)
        print_robustness(analysis)
        print_notes(analysis.notes)
    if export is not None:
        path = export_figure(panels, export, study, bands)
        console.print(f"figure written to [bold]{escape(str(path))}[/]")


def _colors(analysis) -> dict[str, str]:
    from divrob.plots.terminal import group_colors

    return group_colors(analysis.groups)


def _panels(points, analysis, facet, reading: Reading) -> dict:
    """Per figure panel its own fits and bands (`plots.terminal.TrendPanel`); one panel of the
    whole analysis when the study is not faceted."""
    from divrob.analysis.report import facet_panels
    from divrob.plots.terminal import panel_of

    with user_errors():
        rows = facet_panels(points, facet, reading.group_by)
        if list(rows) == [""]:
            return {"": panel_of(analysis)}
        no_baseline = Reading(**{**reading.__dict__, "baseline": None})
        return {name: panel_of(no_baseline.analyse(sub)) for name, sub in rows.items()}


def export_figure(panels: dict, path: Path, title: str, bands: str = "shade") -> Path:
    from divrob.plots.export import export_panels

    with user_errors():
        return export_panels(panels, path, title=title, bands=bands)


def _print_run_notes(ws, study: str | None) -> None:
    """Below the table: damaged runs and runs that skipped unreadable images (in the store)."""
    from divrob.analysis.studies import resolve_study
    from divrob.store.db import read_connection
    from divrob.store.queries import run_notes

    with read_connection(ws.db_path) as con:
        notes = run_notes(con, resolve_study(ws, study) if study else None)
    for run_id, state, reason, unreadable, images in notes:
        if state == "damaged":
            console.print(styled(f"damaged {run_id}: {reason} (`divrob study run` repairs it; `divrob doctor`)"))
        if unreadable:
            console.print(f"run {run_id}: {unreadable} of {images} images were unreadable and skipped",
                          markup=False, highlight=False)


def results(
    study: Annotated[Optional[str], typer.Option("--study", "-s", help="Study name or recipe file (default: all).")] = None,
    where: WhereOpt = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table | csv | json | parquet | tensorboard")] = "table",
    output: Annotated[Optional[Path], typer.Option("--output", help="Write to this file instead of the terminal (needed for parquet; tensorboard: a directory).")] = None,
    ood: OodOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Results from the store: a per-run table of the task's metric, or every fine-tuning epoch
    as CSV / JSON / Parquet (the task's metric as id_score / ood_score, macro-F1 and accuracy)."""
    import json

    from divrob.cli.analysis_tables import SUMMARY_ROWS, print_results_table, print_summary
    from divrob.errors import UsageError
    from divrob.fileio import atomic_path
    from divrob.workspace import open_workspace

    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: choose from {', '.join(FORMATS)}")
    if fmt == "parquet" and output is None:
        raise UsageError("--format parquet writes a binary file: give it a path with --output FILE.parquet")
    ws = open_workspace(workspace)
    if fmt == "tensorboard":
        _tensorboard(ws, study, where, output)
        return
    if fmt == "table":
        if output is not None:
            raise UsageError("--output needs --format csv, json or parquet")
        if ood == ALL_OOD:
            raise UsageError(f"--ood {ALL_OOD}: the table shows one OOD split; export every one with "
                              f"--format csv (or json, parquet)")
        if where:
            print_summary(load_points(ws, study, where, ood=ood))
        else:  # straight from the store: no epoch rows loaded, no pandas imported
            from divrob.analysis.studies import resolve_study, results_table

            kind, rows, n, split, metric = results_table(ws, resolve_study(ws, study) if study else None,
                                                         SUMMARY_ROWS, ood)
            print_results_table(kind, rows, n, metric=metric, ood=split)
        _print_run_notes(ws, study)
        return
    points = load_points(ws, study, where, ood=ood)
    if fmt == "parquet":
        with atomic_path(output) as tmp:
            points.to_parquet(tmp, index=False)
        err_console.print(f"{len(points)} rows written to {output}", markup=False)
        return
    if fmt == "csv":
        _write_csv(points, output)
        return
    text = json.dumps(json.loads(points.to_json(orient="records")), indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        from divrob.fileio import write_text_atomic

        write_text_atomic(output, text)
        err_console.print(f"{len(points)} rows written to {output}", markup=False)


def _write_csv(points, output: Path | None) -> None:
    """Every row as CSV (fileio.write_csv: DuckDB writes it) to `output`, or to stdout."""
    import shutil
    import sys
    import tempfile

    from divrob.fileio import atomic_path, write_csv

    if output is not None:
        with atomic_path(output) as tmp:
            write_csv(points, tmp)
        err_console.print(f"{len(points)} rows written to {output}", markup=False)
        return
    with tempfile.TemporaryDirectory(prefix="divrob-csv-") as tmp:
        path = Path(tmp) / "rows.csv"
        write_csv(points, path)
        with open(path, encoding="utf-8") as f:
            shutil.copyfileobj(f, sys.stdout, 1 << 20)
        sys.stdout.flush()


def _tensorboard(ws, study: str | None, where: str | None, output: Path | None) -> None:
    from divrob.analysis.studies import resolve_study
    from divrob.analysis.tensorboard import ExportError, export_tensorboard

    if output is None:
        raise ExportError("--format tensorboard writes event files: give their directory with --output DIR")
    if where:
        raise ExportError("--where does not apply to --format tensorboard (it writes every run of the study)")
    written = export_tensorboard(ws, output, resolve_study(ws, study) if study else None)
    err_console.print(f"{len(written)} runs written to {output}; view them with `tensorboard --logdir {output}`")


@plot_app.command()
def trends(
    study: StudyArg,
    group_by: GroupByOpt = "distribution",
    baseline: BaselineOpt = None,
    transform: TransformOpt = "probit",
    where: WhereOpt = None,
    ood: OodOpt = None,
    facet: FacetOpt = None,
    bands: BandsOpt = "lines",
    reference: ReferenceOpt = None,
    reference_points: ReferencePointsOpt = None,
    bootstrap: BootstrapOpt = "runs",
    as_json: Annotated[bool, typer.Option("--json", help="Print each group's trend and effective robustness as JSON, nothing else.")] = False,
    export: ExportOpt = None,
    n_boot: NBootOpt = N_BOOT,
    seed: SeedOpt = 0,
    workspace: WorkspaceOpt = None,
) -> None:
    """OOD vs ID score (the task's metric) per fine-tuning epoch: one linear trend per group with
    its bootstrap band, and each group's effective robustness against the baseline."""
    from divrob.analysis.studies import resolve_study
    from divrob.errors import UsageError
    from divrob.workspace import open_workspace

    if bands not in BAND_STYLES:
        raise UsageError(f"--bands {bands!r}: choose from {', '.join(BAND_STYLES)}")
    reading = Reading.parse(group_by=group_by, baseline=baseline, transform=transform, unit=bootstrap,
                            n_boot=n_boot, seed=seed, reference=reference, reference_points=reference_points)
    ws = open_workspace(workspace)
    name = resolve_study(ws, study)
    if not as_json:
        show_study(ws, name, where=where, facet=facet, export=export, reading=reading, bands=bands, ood=ood)
        return
    import json

    points = load_points(ws, name, where, for_analysis=True, ood=check_ood(ood, facet))
    from divrob.analysis.robustness import to_json  # after: loaded while the store was read
    from divrob.plots.terminal import panel_of
    if facet == "ood":
        analyses = analyse_each_ood(points, reading)
        if export is not None:
            export_figure({n: panel_of(a) for n, a in analyses.items()}, export, name, bands)
        docs = {n: json.loads(to_json(a, ood=n)) for n, a in analyses.items()}
        typer.echo(json.dumps({"study": name, "where": where or "", "facet": "ood", "panels": docs},
                              sort_keys=True, indent=2, ensure_ascii=False), nl=True)
        return
    analysis = reading.analyse(points)
    if export is not None:
        export_figure(_panels(points, analysis, facet, reading), export, name, bands)
    split = str(points["ood"].iloc[0]) if len(points) else ood
    typer.echo(to_json(analysis, study=name, where=where or "", ood=split), nl=False)


@plot_app.command()
def residuals(
    study: StudyArg,
    baseline: Annotated[Optional[str], typer.Option(
        "--baseline", "-b", help="Trend the residuals are measured from: a --reference line, a group "
        "or a distribution (default: the one --reference given, else scratch).", show_default=False)] = None,
    of: Annotated[Optional[str], typer.Option(
        "--of", help="Group whose points to show (default: imagenet-full where the study has it, "
        "as in the paper's Figure 3; else the baseline itself).", show_default=False)] = None,
    group_by: GroupByOpt = "distribution",
    transform: TransformOpt = "probit",
    where: WhereOpt = None,
    ood: OodOpt = None,
    reference: ReferenceOpt = None,
    reference_points: ReferencePointsOpt = None,
    bootstrap: BootstrapOpt = "runs",
    n_boot: NBootOpt = N_BOOT,
    seed: SeedOpt = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the per-architecture summary and per-epoch residuals as JSON.")] = False,
    export: ExportOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Residuals from a trend vs fine-tuning epoch, one line per architecture: does the number of
    fine-tuning epochs bias the fit? (the paper's Figure 3, read against an external trend)."""
    from divrob.analysis.residuals import residuals_of
    from divrob.analysis.studies import resolve_study
    from divrob.cli.analysis_tables import print_notes, print_residual_summary
    from divrob.plots.terminal import render_residuals
    from divrob.workspace import open_workspace

    reading = Reading.parse(group_by=group_by, baseline=baseline, transform=transform, unit=bootstrap,
                            n_boot=n_boot, seed=seed, reference=reference, reference_points=reference_points)
    ws = open_workspace(workspace)
    name = resolve_study(ws, study)
    points = load_points(ws, name, where, for_analysis=True, ood=check_ood(ood, None))
    with user_errors():
        view = residuals_of(points, of=of, baseline=baseline, group_by=group_by, transform=transform,
                            unit=bootstrap, n_boot=n_boot, seed=seed, references=reading.references,
                            reference_points=reading.reference_points)
    if as_json:
        typer.echo(view.to_json(study=name, where=where or ""), nl=False)
    else:
        width, height = _plot_size()
        title = f"{name}: residuals of {view.of} from the {view.baseline.name} trend ({view.metric})"
        console.print(Text.from_ansi(render_residuals(view.per_epoch, width=width, height=height, title=title,
                                                      metric=view.metric)), no_wrap=True, crop=True)
        print_residual_summary(view)
        print_notes(view.notes)
    if export is not None:
        from divrob.plots.export import export_residuals

        with user_errors():
            path = export_residuals(view.per_epoch, export, title=f"{name}: {view.of} vs the {view.baseline.name} trend",
                                    metric=view.metric)
        (err_console if as_json else console).print(f"figure written to [bold]{path}[/]")


def register(app: typer.Typer) -> None:
    app.command()(results)
