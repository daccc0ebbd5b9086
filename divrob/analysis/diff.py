"""What differs between two runs, or two groups of runs (`study:distribution`): their specs, their
provenance, their pre-training data (manifests: images, classes, labels, and the images both
share) and their metrics per epoch. The one core behind `divrob diff` and the TUI's diff screen.

A side of several runs has one value per field where its runs agree and the sorted list of
their values where they do not; its metrics are the mean over its runs. A manifest's class of an
image is the image's directory (ImageFolder layout: the source's own class), its label the
label the model was trained on (`label_name`: after any relabelling, e.g. WordNet depth).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from divrob.runs.provenance import RunRefError, find_run, flatten, read_json, read_provenance
from divrob.runs.rundir import RunDir
from divrob.workspace import Workspace

# fields that differ between any two runs and say nothing about what they are
_NOISE = ("run_id", "started", "ended", "attempts")
LIST_LIMIT = 50  # classes / labels with different counts listed at most


@dataclass(frozen=True)
class Side:
    label: str
    run_dirs: tuple[Path, ...]


def resolve_side(ws: Workspace, ref: str) -> Side:
    """A run id (or unique prefix), or `study:distribution` for every run of one group."""
    if ":" in ref:
        study, group = ref.split(":", 1)
        from divrob.store.db import read_connection

        with read_connection(ws.db_path) as con:
            ids = [r[0] for r in con.execute(
                "SELECT DISTINCT run_id FROM study_runs WHERE study = ? AND distribution = ? ORDER BY run_id",
                [study, group]).fetchall()]
            if not ids:
                groups = [r[0] for r in con.execute(
                    "SELECT DISTINCT distribution FROM study_runs WHERE study = ? ORDER BY 1", [study]).fetchall()]
                known = f"its groups: {', '.join(groups)}" if groups else "no such study in the store (plan or run it first)"
                raise RunRefError(f"no runs in group {ref!r}; {known}")
        dirs = tuple(ws.runs / r for r in ids if (ws.runs / r / "spec.json").exists())
        if not dirs:
            raise RunRefError(f"group {ref!r} has no run directories in {ws.runs} yet; run the study first")
        return Side(ref, dirs)
    path = find_run(ws.runs, ref)
    return Side(path.name, (path,))


def _merged(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One value per field where the records agree, else the sorted list of their values."""
    keys = sorted({k for r in records for k in r})
    out = {}
    for k in keys:
        values = {json.dumps(r.get(k), sort_keys=True, default=str) for r in records}
        out[k] = records[0].get(k) if len(values) == 1 else [json.loads(v) for v in sorted(values)]
    return out


def _field_diff(a: dict[str, Any], b: dict[str, Any], skip=()) -> list[dict[str, Any]]:
    out = []
    for k in sorted(set(a) | set(b)):
        if k.split(".")[-1] in skip:
            continue
        va, vb = a.get(k), b.get(k)
        if json.dumps(va, sort_keys=True, default=str) != json.dumps(vb, sort_keys=True, default=str):
            out.append({"field": k, "a": va, "b": vb})
    return out


def _manifest_rows(ws: Workspace, manifest_ids: list[str]):
    import pandas as pd

    from divrob.recipes.manifest import load_manifest

    frames = [load_manifest(ws, m) for m in manifest_ids]
    if not frames:
        return None
    rows = pd.concat(frames, ignore_index=True)
    rows["class"] = rows["source"].astype(str) + ":" + rows["path"].astype(str).str.rsplit("/", n=1).str[0]
    return rows


def _counts_diff(ca, cb) -> list[dict[str, Any]]:
    keys = sorted(set(ca.index) | set(cb.index))
    out = [{"name": k, "a": int(ca.get(k, 0)), "b": int(cb.get(k, 0))} for k in keys
           if int(ca.get(k, 0)) != int(cb.get(k, 0))]
    return out


def manifest_diff(ws: Workspace, ids_a: list[str], ids_b: list[str]) -> dict[str, Any]:
    """Sizes of each side's pre-training data and how they differ; a manifest whose file is not
    in this workspace (deleted, or a copied store) leaves its side's counts None."""
    from divrob.errors import ManifestError

    def rows_of(ids):
        try:
            return _manifest_rows(ws, ids), False
        except ManifestError:
            return None, True

    (ra, missing_a), (rb, missing_b) = rows_of(ids_a), rows_of(ids_b)

    def summary(ids, rows, missing):
        if rows is None:
            n = None if missing else 0
            return {"manifests": ids, "images": n, "classes": n, "labels": n, "missing": missing}
        return {"manifests": ids, "images": len(rows), "classes": int(rows["class"].nunique()),
                "labels": int(rows["label_name"].nunique()), "missing": False}

    out: dict[str, Any] = {"a": summary(ids_a, ra, missing_a), "b": summary(ids_b, rb, missing_b)}
    if ra is None or rb is None:
        out.update(overlap=None, classes=[], labels=[], classes_differing=0, labels_differing=0)
        return out
    ka = set(zip(ra["source"], ra["path"]))
    kb = set(zip(rb["source"], rb["path"]))
    out["overlap"] = {"both": len(ka & kb), "only_a": len(ka - kb), "only_b": len(kb - ka)}
    classes = _counts_diff(ra.groupby("class").size(), rb.groupby("class").size())
    labels = _counts_diff(ra.groupby("label_name").size(), rb.groupby("label_name").size())
    out.update(classes_differing=len(classes), labels_differing=len(labels),
               classes=classes[:LIST_LIMIT], labels=labels[:LIST_LIMIT])
    return out


def _epoch_scores(run_dirs) -> dict[tuple[str, int, str], float]:
    """(phase, epoch, split) → the task's metric (macro-F1 for events before tasks had their own),
    averaged over the runs; training splits left out."""
    sums: dict[tuple[str, int, str], list[float]] = {}
    for d in run_dirs:
        for e in RunDir(Path(d)).events():
            for split, m in (e.get("metrics") or {}).items():
                value = m.get("score", m.get("f1_macro"))
                if split == "train" or value is None:
                    continue
                sums.setdefault((e["phase"], int(e["epoch"]), split), []).append(float(value))
    return {k: sum(v) / len(v) for k, v in sums.items()}


def diff_runs(ws: Workspace, ref_a: str, ref_b: str) -> dict[str, Any]:
    a, b = resolve_side(ws, ref_a), resolve_side(ws, ref_b)
    specs_a = [flatten(read_json(d / "spec.json")) for d in a.run_dirs]
    specs_b = [flatten(read_json(d / "spec.json")) for d in b.run_dirs]
    prov_a = [flatten(read_provenance(d)) for d in a.run_dirs]
    prov_b = [flatten(read_provenance(d)) for d in b.run_dirs]
    mids_a = sorted({s["manifest_id"] for s in specs_a if s.get("manifest_id")})
    mids_b = sorted({s["manifest_id"] for s in specs_b if s.get("manifest_id")})
    sa, sb = _epoch_scores(a.run_dirs), _epoch_scores(b.run_dirs)
    metrics = []
    for key in sorted(set(sa) | set(sb), key=lambda k: (k[0] != "pretrain", k[0], k[1], k[2])):
        va, vb = sa.get(key), sb.get(key)
        metrics.append({"phase": key[0], "epoch": key[1], "split": key[2], "a": va, "b": vb,
                        "delta": None if va is None or vb is None else vb - va})
    return {
        "a": {"label": a.label, "runs": [d.name for d in a.run_dirs]},
        "b": {"label": b.label, "runs": [d.name for d in b.run_dirs]},
        "spec": _field_diff(_merged(specs_a), _merged(specs_b), skip=("run_id",)),
        "provenance": _field_diff(_merged(prov_a), _merged(prov_b), skip=_NOISE),
        "manifest": manifest_diff(ws, mids_a, mids_b),
        "metrics": metrics,
    }
