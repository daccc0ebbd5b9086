"""Ingest run directories and study plans into the store. Ingesting twice changes nothing; a
run's epoch rows are those its directory backs now (rows of lost or damaged lines are removed,
and the run is flagged `damaged`)."""

from __future__ import annotations

import json
import time

from divrob.runs.provenance import read_provenance
from divrob.runs.rundir import RunDir

METRIC_COLUMNS = ("f1_macro", "acc", "recall_macro", "loss", "n", "score")  # score: the task's own metric
PROVENANCE_COLUMNS = ["run_id", "divrob_version", "git_commit", "git_dirty", "git_diff_hash", "host", "gpu_model",
                      "gpu_count", "slurm_job_id", "started", "ended", "gpu_seconds", "manifest_id", "manifest_rows",
                      "unreadable", "recipe_hash"]
RUN_COLUMNS = ["run_id", "arch", "seed", "downstream", "manifest_id", "state", "reason", "spec", "updated",
               "unreadable", "images"]


def ingest_run(con, rd: RunDir) -> int:
    """Upsert one run and its epoch rows; returns the number of epoch rows in the run dir."""
    return ingest_runs(con, [rd])


def _rows(rd: RunDir) -> tuple[list, list[list]]:
    """The run's row and its epoch rows."""
    spec = json.loads(rd.spec_path.read_text())
    check = rd.check_events()
    status = rd.status()
    damage = rd.damage(check)
    if damage:  # flagged, never silently kept as finished
        state, reason = "damaged", damage
    else:
        status = rd.observed() if status.state == "running" else status  # a dead process is reconciled
        state, reason = status.state, status.reason
    run = [rd.run_id, spec["arch"], spec["seed"], spec["downstream"], spec.get("manifest_id"), state,
           reason, json.dumps(spec, sort_keys=True), status.updated or time.time(), status.unreadable, status.images]
    epochs = [[rd.run_id, event["phase"], int(event["epoch"]), split, *[_metric(m, c) for c in METRIC_COLUMNS]]
              for event in check.events for split, m in event.get("metrics", {}).items()]
    return run, epochs


def _metric(m: dict, column: str):
    if column == "score" and "score" not in m:
        # events written before tasks had their own metric: iWildCam and camtrap-sim, macro-F1
        return m.get("f1_macro")
    return m.get(column)


def ingest_runs(con, rundirs) -> int:
    """Ingest many run directories in two bulk statements (the manager's batched flush); a
    directory without a readable spec.json is not a run yet and is passed over. Returns the
    number of epoch rows."""
    import pandas as pd

    runs, epochs, provenance = [], [], []
    for rd in rundirs:
        try:
            run, rows = _rows(rd)
        except (OSError, json.JSONDecodeError):
            continue
        runs.append(run)
        epochs += rows
        prov = read_provenance(rd.path)
        if prov:
            provenance.append([rd.run_id, *[prov.get(c) for c in PROVENANCE_COLUMNS[1:]],
                               json.dumps(prov, sort_keys=True)])
    if runs:
        run_df = pd.DataFrame(runs, columns=RUN_COLUMNS).drop_duplicates("run_id", keep="last")
        run_df = run_df.astype({"unreadable": "Int64", "images": "Int64"})
        con.register("_ingest_runs", run_df)
        try:
            cols = ", ".join(RUN_COLUMNS)
            con.execute(f"INSERT OR REPLACE INTO runs ({cols}) SELECT {cols} FROM _ingest_runs")
            # the run directory is the truth: epoch rows it no longer backs (a line lost or damaged
            # since the last ingest) go; the intact ones are inserted again below
            con.execute("DELETE FROM epochs WHERE run_id IN (SELECT run_id FROM _ingest_runs)")
        finally:
            con.unregister("_ingest_runs")
    if epochs:
        cols = ["run_id", "phase", "epoch", "split", *METRIC_COLUMNS]
        ep_df = pd.DataFrame(epochs, columns=cols).drop_duplicates(cols[:4], keep="last")
        ep_df = ep_df.astype({c: "float64" for c in METRIC_COLUMNS if c != "n"})
        ep_df["n"] = ep_df["n"].astype("Int64")
        con.register("_ingest_epochs", ep_df)
        try:
            con.execute(f"INSERT OR REPLACE INTO epochs ({', '.join(cols)}) SELECT {', '.join(cols)} FROM _ingest_epochs")
        finally:
            con.unregister("_ingest_epochs")
    if provenance:
        _ingest_provenance(con, provenance)
    return len(epochs)


def _ingest_provenance(con, rows: list[list]) -> None:
    import pandas as pd

    cols = [*PROVENANCE_COLUMNS, "data"]
    df = pd.DataFrame(rows, columns=cols).drop_duplicates("run_id", keep="last")
    df = df.astype({"git_dirty": "boolean", "gpu_count": "Int64", "manifest_rows": "Int64", "unreadable": "Int64",
                    "started": "float64", "ended": "float64", "gpu_seconds": "float64"})
    con.register("_ingest_provenance", df)
    try:
        con.execute(f"INSERT OR REPLACE INTO provenance ({', '.join(cols)}) SELECT {', '.join(cols)} FROM _ingest_provenance")
    finally:
        con.unregister("_ingest_provenance")


def record_recipe(con, recipe) -> None:
    con.execute(
        "INSERT OR REPLACE INTO recipes VALUES (?, ?, ?, ?, ?)",
        [recipe.hash, recipe.study.name, str(recipe.path), recipe.text, time.time()],
    )


def record_manifest(con, info, source: str) -> None:
    con.execute(
        "INSERT OR REPLACE INTO manifests VALUES (?, ?, ?, ?, ?, ?, ?)",
        [info.manifest_id, source, info.n_images, info.n_classes, info.min_per_class,
         info.max_per_class, str(info.path)],
    )


def record_study_run(con, study: str, planned) -> None:
    spec = planned.spec
    con.execute(
        "INSERT OR REPLACE INTO study_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [study, planned.distribution, spec.run_id, spec.arch, spec.seed, spec.manifest_id,
         planned.source, json.dumps(planned.sweep, sort_keys=True, default=str)],
    )
