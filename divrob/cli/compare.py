"""`divrob compare A B`: is one pre-training distribution more effectively robust than another?

The paper judges "no difference" by eye from overlapping bands; this answers it with the
bootstrap CI of the difference of the two groups' mean effective robustness.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from divrob.cli.common import WorkspaceOpt, console
from divrob.cli.results import (
    TRANSFORMS,
    BaselineOpt,
    GroupByOpt,
    NBootOpt,
    SeedOpt,
    TransformOpt,
    WhereOpt,
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
    level: Annotated[float, typer.Option("--level", min=0.5, max=0.999, help="Confidence level of the interval.")] = 0.95,
    n_boot: NBootOpt = 1000,
    seed: SeedOpt = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Difference of two groups' effective robustness (A minus B) with a bootstrap CI, and
    whether the CI excludes zero."""
    import json

    from divrob.analysis.report import only_study, resolve_study
    from divrob.analysis.robustness import DEFAULT_BASELINE, _num
    from divrob.analysis.robustness import compare as compare_groups
    from divrob.errors import DivrobError
    from divrob.workspace import open_workspace

    if transform not in TRANSFORMS:
        raise DivrobError(f"--transform {transform!r}: choose from {', '.join(TRANSFORMS)}")
    ws = open_workspace(workspace)
    name = resolve_study(ws, study) if study else only_study(ws)
    points = load_points(ws, name, where)
    with user_errors():
        c = compare_groups(points, a, b, group_by, baseline or DEFAULT_BASELINE, transform,
                           n_boot, seed, level)
    if as_json:
        doc = {"study": name, "a": c.a, "b": c.b, "baseline": c.baseline, "group_by": group_by,
               "transform": transform, "difference": _num(c.diff), "low": _num(c.low),
               "high": _num(c.high), "level": c.level, "excludes_zero": c.excludes_zero,
               "n_a": c.n_a, "n_b": c.n_b, "n_boot": n_boot, "seed": seed}
        typer.echo(json.dumps(doc, sort_keys=True, indent=2))
        return
    colour = "green" if c.excludes_zero else "yellow"
    console.print(f"[bold]{name}[/]: {c.n_a} points in {c.a}, {c.n_b} in {c.b}, grouped by {group_by}")
    console.print(f"[{colour}]{c.sentence()}[/]", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(compare)
