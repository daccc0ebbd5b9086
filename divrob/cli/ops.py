"""`divrob show RUN` and `divrob diff A B`: what ran, on what, and what differs between runs."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from divrob.cli.common import WorkspaceOpt, console, styled

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _value(v) -> str:
    from divrob.plots.diff_tables import value_text

    return value_text(v)


def _when(t) -> str:
    import time

    return "-" if not t else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def show(
    run: Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")],
    as_json: JsonOpt = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """A run's spec and provenance: code (git), environment, GPUs, SLURM ids, time per phase, data."""
    from divrob.runs.provenance import find_run, flatten, run_record
    from divrob.workspace import open_workspace

    ws = open_workspace(workspace)
    rec = run_record(find_run(ws.runs, run))
    if as_json:
        console.out(json.dumps(rec, indent=2, sort_keys=True, default=str), highlight=False)
        return
    head = Text(f"run {rec['run_id']}: ").append_text(styled(rec["state"]))
    console.print(head.append(f" — {rec['reason']}" if rec["reason"] else ""), highlight=False)
    prov = dict(rec["provenance"])
    phases = prov.pop("phases", {}) or {}
    table = Table("field", "value", title="provenance", show_header=False)
    if not prov:
        console.print("[dim]no provenance yet (the run has not started, or ran before divrob recorded it)[/]")
    for key in sorted(prov):
        value = _when(prov[key]) if key in ("started", "ended") else _value(prov[key])
        table.add_row(key, Text(value))
    if prov:
        console.print(table)
    if phases:
        pt = Table("phase", "started", "ended", "seconds", "GPU-seconds", title="time per phase")
        for name, p in phases.items():
            pt.add_row(name, _when(p.get("started")), _when(p.get("ended")), _value(p.get("seconds")),
                       _value(p.get("gpu_seconds")))
        console.print(pt)
    spec = Table("field", "value", title="spec", show_header=False)
    for key, value in sorted(flatten(rec["spec"]).items()):
        spec.add_row(key, Text(_value(value)))
    console.print(spec)


def diff(
    a: Annotated[str, typer.Argument(help="A run id (unique prefix), or STUDY:GROUP for a distribution's runs.")],
    b: Annotated[str, typer.Argument(help="The other run or STUDY:GROUP.")],
    as_json: JsonOpt = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """What differs between two runs (or groups): spec, provenance, pre-training data, metrics per epoch."""
    from divrob.analysis.diff import diff_runs
    from divrob.plots.diff_tables import diff_renderables
    from divrob.workspace import open_workspace

    ws = open_workspace(workspace)
    d = diff_runs(ws, a, b)
    if as_json:
        console.out(json.dumps(d, indent=2, sort_keys=True, default=str), highlight=False)
        return
    for part in diff_renderables(d):
        console.print(part, highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(show)
    app.command()(diff)
