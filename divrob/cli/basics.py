"""`divrob init`, `divrob models`, `divrob demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from divrob.cli.common import JsonOpt, WorkspaceOpt, console, print_json

DEMO_RECIPE = "recipes/demo/quickstart.toml"


def init(
    path: Annotated[Optional[Path], typer.Argument(help="Where to create it (default: --workspace, $DIVROB_WORKSPACE or ./divrob-work).")] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Create a workspace: divrob.toml (dataset roots, compute defaults) and its directories."""
    from divrob.workspace import init_workspace

    ws = init_workspace(path or workspace)
    console.print(f"workspace ready at [bold]{escape(str(ws.root))}[/]; set dataset roots in {escape(str(ws.config_path))}")


def models(as_json: JsonOpt = False) -> None:
    """List the architectures, downstream tasks and weight sources a recipe may name."""
    from rich.markup import escape
    from rich.table import Table

    from divrob.archs import ARCHS, WEIGHT_SOURCES
    from divrob.downstream import ALIASES, kinds

    if as_json:
        print_json({"archs": dict(ARCHS), "downstream": {
            name: {"options": list(kind.Options.model_fields), "summary": kind.summary,
                   "alias": next((a for a, t in ALIASES.items() if t == name), None)}
            for name, kind in kinds().items()}, "weight_sources": dict(WEIGHT_SOURCES)})
        return

    table = Table("arch", "model")
    for key, name in ARCHS.items():
        table.add_row(key, name)
    console.print(table)
    tasks = Table("downstream", "options", "what it is", title=escape("downstream tasks (recipe: [study] downstream = ...)"))
    aliases = {target: alias for alias, target in ALIASES.items()}
    for name, kind in kinds().items():
        shown = f"{aliases[name]} (= {name})" if name in aliases else name
        if kind.shorthand:
            shown += f", {name}:<{kind.shorthand}>"
        options = ", ".join(kind.Options.model_fields) or "-"
        tasks.add_row(escape(shown), escape(options), escape(kind.summary))
    console.print(tasks)
    sources = Table("weights", "what it is",
                    title=escape('weight sources (recipe: [[distribution]] pretrain = { weights = "..." })'))
    for form, what in WEIGHT_SOURCES.items():
        sources.add_row(escape(form), escape(what))
    console.print(sources)


def demo(
    workspace: WorkspaceOpt = None,
    recipe: Annotated[Optional[Path], typer.Option(help="Recipe to run instead of the bundled quickstart.")] = None,
) -> None:
    """Run the whole pipeline offline on CPU: generate data, pre-train, fine-tune, plot."""
    from divrob.bundled import bundled
    from divrob.cli.common import RichReporter
    from divrob.cli.results import show_study
    from divrob.dispatch.inline import run_study
    from divrob.recipes.load import load_recipe
    from divrob.workspace import init_workspace

    ws = init_workspace(workspace)
    if not ws.config.compute.threads:
        # The demo's model is tiny: a second torch thread gains little, and on a shared CPU two
        # contending threads made it 10x slower (measured). Set compute.threads to override.
        ws.config.compute.threads = 1
    rec = load_recipe(recipe or bundled(DEMO_RECIPE))
    console.print(f"[bold]divrob demo[/]: study [cyan]{escape(rec.study.name)}[/] in {escape(str(ws.root))}")
    with RichReporter() as reporter:
        outcome = run_study(ws, rec, reporter)
    _summary(outcome)
    show_study(ws, rec.study.name, export=ws.figures / f"{rec.study.name}.png")
    _story(ws, rec.study.name)
    if outcome.failed:
        raise typer.Exit(1)


# What each verdict of `analysis.robustness` means for a pre-training distribution, in words.
_MEANING = {
    "above": "effective robustness: OOD above what scratch models of the same ID score reach",
    "below": "less robust than scratch models of the same ID score",
    "spans 0": "indistinguishable from training from scratch",
}


def _story(ws, study: str) -> None:
    """The demo's answer in three lines: how well scratch models follow one linear trend, and
    each pre-training distribution's effective robustness against it, with its interval."""
    from rich.markup import escape

    from divrob.analysis.robustness import MIN_RUNS
    from divrob.cli.results import Reading, load_points

    analysis = Reading().analyse(load_points(ws, study, None, for_analysis=True), with_bands=False)
    base = analysis.groups.get(analysis.baseline) if analysis.baseline else None
    if base is None or base.trend is None:
        console.print("[yellow]no scratch trend to compare against[/]")
        return
    pct = f"{analysis.level:.0%}"
    console.rule("what the demo shows")
    console.print(f"[bold]{escape(base.group)}[/]: {base.n} fine-tuning epochs of {base.runs} runs lie on one "
                  f"linear trend ({analysis.transform} axes), R² = {base.trend.r2:.2f}")
    for name, r in analysis.groups.items():
        if name == base.group or r.er is None:
            continue
        mean, lo, hi = r.er
        meaning = _MEANING.get(r.verdict or "", r.verdict or "")
        if r.verdict == "too few runs":
            meaning = f"too few runs for a verdict (needs {MIN_RUNS} per group)"
        console.print(f"[bold]{escape(name)}[/]: OOD {escape(analysis.metric)} {mean:+.3f} vs the trend "
                      f"({pct} CI {lo:+.3f}…{hi:+.3f}, {r.runs} runs): {meaning}")


def _summary(outcome) -> None:
    n = len({r.spec.run_id for r in outcome.plan.runs})
    console.print(
        f"{n} runs: {len(outcome.trained)} trained, {len(outcome.skipped)} already finished, "
        f"{len(outcome.failed)} failed"
    )
    for run_id, reason in outcome.failed.items():
        console.print(f"[red]failed[/] {run_id}: {escape(str(reason))}")


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(models)
    app.command()(demo)
