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
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.6g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v, sort_keys=True)
    return str(v)


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


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def diff(
    a: Annotated[str, typer.Argument(help="A run id (unique prefix), or STUDY:GROUP for a distribution's runs.")],
    b: Annotated[str, typer.Argument(help="The other run or STUDY:GROUP.")],
    as_json: JsonOpt = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """What differs between two runs (or groups): spec, provenance, pre-training data, metrics per epoch."""
    from divrob.analysis.diff import diff_runs
    from divrob.workspace import open_workspace

    ws = open_workspace(workspace)
    d = diff_runs(ws, a, b)
    if as_json:
        console.out(json.dumps(d, indent=2, sort_keys=True, default=str), highlight=False)
        return
    la, lb = f"A {d['a']['label']}", f"B {d['b']['label']}"
    for key, title in (("spec", "spec"), ("provenance", "provenance")):
        if not d[key]:
            console.print(f"{title}: the same")
            continue
        t = Table("field", la, lb, title=f"{title}: {len(d[key])} field(s) differ")
        for row in d[key]:
            t.add_row(row["field"], Text(_value(row["a"])), Text(_value(row["b"])))
        console.print(t)
    m = d["manifest"]
    t = Table("pre-training data", la, lb, title="manifests")
    for k in ("manifests", "images", "classes", "labels"):
        t.add_row(k, Text(_value(m["a"][k]) if k != "manifests" else ", ".join(x[:12] for x in m["a"][k]) or "none"),
                  Text(_value(m["b"][k]) if k != "manifests" else ", ".join(x[:12] for x in m["b"][k]) or "none"))
    console.print(t)
    if m.get("overlap"):
        o = m["overlap"]
        console.print(f"images in both: {o['both']:,}; only in A: {o['only_a']:,}; only in B: {o['only_b']:,}; "
                      f"classes with other counts: {m['classes_differing']}; labels: {m['labels_differing']}")
    if d["metrics"]:
        t = Table("phase", "epoch", "split", la, lb, "B - A", title="metric per epoch (the task's score)")
        for r in d["metrics"]:
            t.add_row(r["phase"], str(r["epoch"]), r["split"], _fmt(r["a"]), _fmt(r["b"]),
                      "-" if r["delta"] is None else f"{r['delta']:+.4f}")
        console.print(t)
    else:
        console.print("metrics: no epochs recorded on either side yet")


def register(app: typer.Typer) -> None:
    app.command()(show)
    app.command()(diff)
