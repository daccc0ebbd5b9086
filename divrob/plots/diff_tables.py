"""`divrob diff`'s result (divrob.analysis.diff.diff_runs) as rich tables: one renderer for the
CLI and the TUI's diff screen."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table
from rich.text import Text


def value_text(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.6g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v, sort_keys=True)
    return str(v)


def _score(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def diff_renderables(d: dict[str, Any]) -> list:
    """Tables (and lines) in reading order: spec, provenance, manifests, metrics per epoch."""
    la, lb = f"A {d['a']['label']}", f"B {d['b']['label']}"
    out: list = []
    for key in ("spec", "provenance"):
        if not d[key]:
            out.append(Text(f"{key}: the same"))
            continue
        t = Table("field", la, lb, title=f"{key}: {len(d[key])} field(s) differ")
        for row in d[key]:
            t.add_row(row["field"], Text(value_text(row["a"])), Text(value_text(row["b"])))
        out.append(t)
    m = d["manifest"]
    t = Table("pre-training data", la, lb, title="manifests")
    t.add_row("manifests", Text(", ".join(x[:12] for x in m["a"]["manifests"]) or "none"),
              Text(", ".join(x[:12] for x in m["b"]["manifests"]) or "none"))
    for k in ("images", "classes", "labels"):
        t.add_row(k, *(Text("not in this workspace" if m[s].get("missing") else value_text(m[s][k])) for s in "ab"))
    out.append(t)
    if m.get("overlap"):
        o = m["overlap"]
        out.append(Text(f"images in both: {o['both']:,}; only in A: {o['only_a']:,}; only in B: {o['only_b']:,}; "
                        f"classes with other counts: {m['classes_differing']}; labels: {m['labels_differing']}"))
    if d["metrics"]:
        t = Table("phase", "epoch", "split", la, lb, "B - A", title="metric per epoch (the task's score)")
        for r in d["metrics"]:
            t.add_row(r["phase"], str(r["epoch"]), r["split"], _score(r["a"]), _score(r["b"]),
                      "-" if r["delta"] is None else f"{r['delta']:+.4f}")
        out.append(t)
    else:
        out.append(Text("metrics: no epochs recorded on either side yet"))
    return out
