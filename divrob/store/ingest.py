"""Ingest run directories and study plans into the store. Ingesting twice changes nothing."""

from __future__ import annotations

import json
import time

from divrob.runs.rundir import RunDir

METRIC_COLUMNS = ("f1_macro", "acc", "recall_macro", "loss", "n")


def ingest_run(con, rd: RunDir) -> int:
    """Upsert one run and its epoch rows; returns the number of epoch rows in the run dir."""
    spec = json.loads(rd.spec_path.read_text())
    status = rd.status()
    con.execute(
        "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [rd.run_id, spec["arch"], spec["seed"], spec["downstream"], spec.get("manifest_id"),
         status.get("state", "queued"), status.get("reason"), json.dumps(spec, sort_keys=True),
         status.get("updated", time.time())],
    )
    rows = []
    for event in rd.events():
        for split, m in event.get("metrics", {}).items():
            rows.append([rd.run_id, event["phase"], int(event["epoch"]), split,
                         *[m.get(c) for c in METRIC_COLUMNS]])
    if rows:
        con.executemany("INSERT OR REPLACE INTO epochs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return len(rows)


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
