"""`divrob compare A B`: is one pre-training distribution more effectively robust than another?

The paper judges "no difference" by eye from overlapping bands; this answers it with the
bootstrap CI of the difference of the two groups' mean effective robustness, resampling whole
runs, and says "too few runs to tell" rather than guess from fewer than three runs a group.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from divrob.analysis import N_BOOT
from divrob.cli.common import WorkspaceOpt, console
from divrob.cli.results import (
    BaselineOpt,
    BootstrapOpt,
    GroupByOpt,
    NBootOpt,
    Reading,
    ReferenceOpt,
    ReferencePointsOpt,
    SeedOpt,
    TransformOpt,
    OodOpt,
    WhereOpt,
    check_ood,
    load_points,
    user_errors,
)


def compare(
    a: Annotated[str, typer.Argument(help="First group (a value of --group-by).")],
    b: Annotated[str, typer.Argument(help="Second group.")],
    study: Annotated[Optional[str], typer.Option("--study", "-s", help="Study name or recipe file (default: the workspace's only study).")] = None,
    group_by: GroupByOpt = "distribution",
    baseline: BaselineOpt = None,
    transform: TransformOpt = "probit",
    where: WhereOpt = None,
    ood: OodOpt = None,
    level: Annotated[float, typer.Option("--level", min=0.5, max=0.999, help="Confidence level of the interval.")] = 0.95,
    reference: ReferenceOpt = None,
    reference_points: ReferencePointsOpt = None,
    bootstrap: BootstrapOpt = "runs",
    n_boot: NBootOpt = N_BOOT,
    seed: SeedOpt = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Difference of two groups' effective robustness (A minus B) with a bootstrap CI, and
    whether the CI excludes zero."""
    from rich.markup import escape

    from divrob.analysis.comparison import compare as compare_groups
    from divrob.analysis.comparison import comparison_json
    from divrob.analysis.robustness import DEFAULT_BASELINE
    from divrob.analysis.studies import only_study, resolve_study
    from divrob.workspace import open_workspace

    reading = Reading.parse(group_by=group_by, baseline=baseline, transform=transform, unit=bootstrap,
                            n_boot=n_boot, seed=seed, reference=reference, reference_points=reference_points)
    ws = open_workspace(workspace)
    name = resolve_study(ws, study) if study else only_study(ws)
    points = load_points(ws, name, where, for_analysis=True, ood=check_ood(ood, None))
    with user_errors():
        c = compare_groups(points, a, b, group_by, baseline or DEFAULT_BASELINE, transform, n_boot, seed,
                           level, unit=bootstrap, references=reading.references,
                           reference_points=reading.reference_points)
    if as_json:
        typer.echo(comparison_json(c, study=name, group_by=group_by, transform=transform, seed=seed), nl=False)
        return
    colour = {"a": "green", "b": "green", "no difference": "yellow"}.get(c.verdict, "dim")
    console.print(f"[bold]{escape(name)}[/]: {c.n_a} points ({c.runs_a} runs) in {escape(c.a)}, "
                  f"{c.n_b} points ({c.runs_b} runs) in {escape(c.b)}, grouped by {escape(group_by)}")
    console.print(f"[{colour}]{escape(c.sentence())}[/]", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(compare)
