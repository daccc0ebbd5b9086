"""Connections and schema. DuckDB allows one writing process: the manager writes in short
transactions; readers (CLI, TUI) use short read-only connections that retry on a lock."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from divrob.errors import DivrobError

SCHEMA_VERSION = 6

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    """CREATE TABLE IF NOT EXISTS recipes (
        recipe_hash VARCHAR PRIMARY KEY, study VARCHAR, path VARCHAR, text VARCHAR, added DOUBLE)""",
    """CREATE TABLE IF NOT EXISTS manifests (
        manifest_id VARCHAR PRIMARY KEY, source VARCHAR, n_images INTEGER, n_classes INTEGER,
        min_per_class INTEGER, max_per_class INTEGER, path VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS study_runs (
        study VARCHAR, distribution VARCHAR, run_id VARCHAR, arch VARCHAR, seed INTEGER,
        manifest_id VARCHAR, source VARCHAR, sweep VARCHAR,
        PRIMARY KEY (study, distribution, run_id))""",
    """CREATE TABLE IF NOT EXISTS runs (
        run_id VARCHAR PRIMARY KEY, arch VARCHAR, seed INTEGER, downstream VARCHAR, manifest_id VARCHAR,
        state VARCHAR, reason VARCHAR, spec VARCHAR, updated DOUBLE, unreadable INTEGER, images INTEGER)""",
    """CREATE TABLE IF NOT EXISTS epochs (
        run_id VARCHAR, phase VARCHAR, epoch INTEGER, split VARCHAR,
        f1_macro DOUBLE, acc DOUBLE, recall_macro DOUBLE, loss DOUBLE, n INTEGER, score DOUBLE,
        PRIMARY KEY (run_id, phase, epoch, split))""",
    # v2: the dispatch queue and job states (written by the manager: `study run` or the scheduler);
    # v3: a run's whole progress (divrob.runs.status.Progress), throughput renamed images_per_s
    """CREATE TABLE IF NOT EXISTS jobs (
        job_id VARCHAR PRIMARY KEY, kind VARCHAR, study VARCHAR, label VARCHAR, deps VARCHAR,
        params VARCHAR, executor VARCHAR, state VARCHAR, attempts INTEGER, slot VARCHAR, pid INTEGER,
        external_id VARCHAR, folder VARCHAR, reason VARCHAR, log_tail VARCHAR, phase VARCHAR,
        epoch INTEGER, step BIGINT, images_per_s DOUBLE, queued DOUBLE, started DOUBLE, ended DOUBLE,
        updated DOUBLE, epochs INTEGER, steps_per_epoch BIGINT, progress_updated DOUBLE,
        gpu_util DOUBLE, gpu_mem BIGINT)""",
    # v6: what ran on what (divrob.runs.provenance; the whole record in `data`, as JSON)
    """CREATE TABLE IF NOT EXISTS provenance (
        run_id VARCHAR PRIMARY KEY, divrob_version VARCHAR, git_commit VARCHAR, git_dirty BOOLEAN,
        git_diff_hash VARCHAR, host VARCHAR, gpu_model VARCHAR, gpu_count INTEGER, slurm_job_id VARCHAR,
        started DOUBLE, ended DOUBLE, gpu_seconds DOUBLE, manifest_id VARCHAR, manifest_rows BIGINT,
        unreadable BIGINT, recipe_hash VARCHAR, data VARCHAR)""",
]


def _jobs_v3(con) -> None:
    """2 → 3. A v1 store gets its jobs table from SCHEMA already in the v3 layout: alter only
    what a v2 table lacks."""
    have = {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'jobs'").fetchall()}
    if "throughput" in have:
        con.execute("ALTER TABLE jobs RENAME COLUMN throughput TO images_per_s")
    for name, kind in (("epochs", "INTEGER"), ("steps_per_epoch", "BIGINT"), ("progress_updated", "DOUBLE")):
        if name not in have:
            con.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")


def _epochs_score_v4(con) -> None:
    """3 → 4: the downstream task's own metric per split (`score`). Rows recorded before are all
    iWildCam or camtrap-sim, whose metric is macro-F1."""
    have = {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'epochs'").fetchall()}
    if "score" not in have:
        con.execute("ALTER TABLE epochs ADD COLUMN score DOUBLE")
        con.execute("UPDATE epochs SET score = f1_macro WHERE split != 'train'")


def _runs_unreadable_v5(con) -> None:
    """4 → 5: a run's unreadable images and the images of the splits it decoded (None: not counted)."""
    have = {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'runs'").fetchall()}
    for name in ("unreadable", "images"):
        if name not in have:
            con.execute(f"ALTER TABLE runs ADD COLUMN {name} INTEGER")


def _ops_v6(con) -> None:
    """5 → 6: the GPU use a job reports (Progress.gpu_util, gpu_mem); the provenance table comes
    from SCHEMA."""
    have = {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'jobs'").fetchall()}
    for name, kind in (("gpu_util", "DOUBLE"), ("gpu_mem", "BIGINT")):
        if name not in have:
            con.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")


# Steps from version N to N+1 beyond the idempotent CREATE TABLE IF NOT EXISTS above.
MIGRATIONS = {1: (), 2: (_jobs_v3,), 3: (_epochs_score_v4,), 4: (_runs_unreadable_v5,), 5: (_ops_v6,)}  # 1 → 2: the jobs table only


class StoreError(DivrobError):
    pass


def _migrate(con) -> None:
    for stmt in SCHEMA:
        con.execute(stmt)
    rows = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
    row = rows[0] if rows else None
    if row is None:
        con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
    elif int(row[0]) > SCHEMA_VERSION:
        raise StoreError(
            f"the store was written by a newer divrob (schema {row[0]} > {SCHEMA_VERSION}); upgrade divrob"
        )
    elif int(row[0]) < SCHEMA_VERSION:
        for version in range(int(row[0]), SCHEMA_VERSION):
            for step in MIGRATIONS.get(version, ()):
                step(con)
        con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION)])


@contextmanager
def write_connection(path: Path) -> Iterator:
    """The manager's connection: one transaction, committed on success, rolled back on error."""

    con = _connect(path, read_only=False)
    try:
        con.execute("BEGIN TRANSACTION")
        _migrate(con)
        yield con
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.close()


@contextmanager
def read_connection(path: Path) -> Iterator:
    """A short read-only connection; None-safe for a store that does not exist yet."""
    if not Path(path).exists():
        with write_connection(path):
            pass
    con = _connect(path, read_only=True)
    try:
        yield con
    finally:
        con.close()


def _connect(path: Path, read_only: bool, timeout: float = 10.0):
    import duckdb

    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except (duckdb.IOException, duckdb.ConnectionException) as e:
            # another process holds the write lock, or (in this process) a connection of the other
            # mode is open: both are short-lived, so wait for them
            transient = "lock" in str(e).lower() or "different configuration" in str(e).lower()
            if not transient or time.monotonic() > deadline:
                raise StoreError(f"cannot open the store {path}: {e}") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
