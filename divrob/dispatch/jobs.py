"""Jobs: their rows in the store, and the manager's state in the workspace (pid file, requests).

Only a manager (a `study run` process or the detached scheduler) writes job rows; readers open
short read-only connections. Other shells talk to a live scheduler through request files.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable

from divrob.fileio import write_json_atomic
from divrob.runs.status import Progress
from divrob.states import ACTIVE, DONE, STATES  # noqa: F401 - re-exported for callers of jobs
from divrob.workspace import Workspace


@dataclass
class Job:
    job_id: str
    kind: str  # run | noop | generate | manifest (built by the manager while planning)
    study: str | None = None
    label: str = ""
    deps: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    executor: str = "local"
    state: str = "queued"
    attempts: int = 0
    slot: str | None = None
    pid: int | None = None
    external_id: str | None = None  # SLURM / submitit job id, for re-attaching
    folder: str | None = None  # submitit folder
    reason: str | None = None
    log_tail: str | None = None
    queued: float | None = None
    started: float | None = None
    ended: float | None = None
    updated: float | None = None
    progress: Progress = field(default_factory=Progress)  # a run's, as its status last said


# the progress is stored in columns of its own; its time as progress_updated
_PROGRESS_COLUMNS = {f.name: "progress_updated" if f.name == "updated" else f.name for f in fields(Progress)}
COLUMNS = [f.name for f in fields(Job) if f.name != "progress"] + list(_PROGRESS_COLUMNS.values())
_JSON = {"deps", "params"}
_INTS = ("attempts", "pid", "epoch", "epochs", "step", "steps_per_epoch", "gpu_mem")
_FLOATS = ("queued", "started", "ended", "updated", "images_per_s", "progress_updated", "gpu_util")


def to_row(job: Job) -> list[Any]:
    values = {f.name: getattr(job, f.name) for f in fields(Job) if f.name != "progress"}
    values.update({col: getattr(job.progress, name) for name, col in _PROGRESS_COLUMNS.items()})
    return [json.dumps(list(values[c]) if c == "deps" else values[c], sort_keys=True) if c in _JSON else values[c]
            for c in COLUMNS]


def from_row(row: Iterable[Any]) -> Job:
    d = dict(zip(COLUMNS, row))
    d["deps"] = tuple(json.loads(d["deps"] or "[]"))
    d["params"] = json.loads(d["params"] or "{}")
    d["attempts"] = d["attempts"] or 0
    progress = Progress(**{name: d.pop(col) for name, col in _PROGRESS_COLUMNS.items()})
    return Job(**d, progress=progress)


def upsert_jobs(con, jobs: Iterable[Job]) -> None:
    now = time.time()
    rows = []
    for j in jobs:
        j.updated = now
        rows.append(to_row(j))
    if len(rows) == 1:
        marks = ", ".join("?" * len(COLUMNS))
        con.execute(f"INSERT OR REPLACE INTO jobs ({', '.join(COLUMNS)}) VALUES ({marks})", rows[0])
    elif rows:  # executemany is row by row in DuckDB; a registered frame is one statement
        import pandas as pd

        df = pd.DataFrame(rows, columns=COLUMNS).drop_duplicates("job_id", keep="last")
        df = df.astype({c: "Int64" for c in _INTS}).astype({c: "float64" for c in _FLOATS})
        df = df.astype({c: "object" for c in COLUMNS if c not in _INTS and c not in _FLOATS})
        con.register("_upsert_jobs", df)
        try:
            con.execute(f"INSERT OR REPLACE INTO jobs ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} FROM _upsert_jobs")
        finally:
            con.unregister("_upsert_jobs")


def has_jobs_table(con) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'jobs'").fetchall()[0][0])


def load_jobs(con, *, states: Iterable[str] | None = None, study: str | None = None,
              executor: str | None = None, ids: Iterable[str] | None = None) -> list[Job]:
    if not has_jobs_table(con):  # a store from before schema 2, opened read-only
        return []
    sql = f"SELECT {', '.join(COLUMNS)} FROM jobs WHERE 1 = 1"
    args: list[Any] = []
    if states is not None:
        states = list(states)
        sql += f" AND state IN ({', '.join('?' * len(states))})"
        args += states
    if study is not None:
        sql += " AND study = ?"
        args.append(study)
    if executor is not None:
        sql += " AND executor = ?"
        args.append(executor)
    if ids is not None:
        ids = list(ids)
        if not ids:
            return []
        sql += f" AND job_id IN ({', '.join('?' * len(ids))})"
        args += ids
    sql += " ORDER BY queued, job_id"
    return [from_row(r) for r in con.execute(sql, args).fetchall()]


# ---- the manager's state in the workspace -------------------------------------------------

def jobs_dir(ws: Workspace) -> Path:
    d = ws.root / "jobs"
    (d / "requests").mkdir(parents=True, exist_ok=True)
    return d


def logs_dir(ws: Workspace, *parts: str) -> Path:
    d = ws.root.joinpath("logs", *parts)
    d.mkdir(parents=True, exist_ok=True)
    return d


def pid_alive(pid: int | None) -> bool:
    from divrob.runs.claim import pid_alive as alive  # the one check (also behind run claims)

    return alive(pid)


def manager_pidfile(ws: Workspace, executor: str) -> Path:
    return jobs_dir(ws) / f"manager-{executor}.json"


def write_manager_pidfile(ws: Workspace, executor: str, detached: bool) -> None:
    write_json_atomic(manager_pidfile(ws, executor), {"pid": os.getpid(), "host": socket.gethostname(),
                                                      "executor": executor, "detached": detached,
                                                      "started": time.time()})


def live_manager(ws: Workspace, executor: str) -> dict | None:
    """The manager of this workspace's jobs on one executor, if one is alive on this host."""
    try:
        info = json.loads(manager_pidfile(ws, executor).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if info.get("host") != socket.gethostname() or not pid_alive(info.get("pid")):
        return None
    return info


def remove_manager_pidfile(ws: Workspace, executor: str) -> None:
    path = manager_pidfile(ws, executor)
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, json.JSONDecodeError):
        pass


class ManagerLock:
    """One manager per workspace and executor: an exclusive flock held for the manager's life."""

    def __init__(self, ws: Workspace, executor: str):
        self.path = jobs_dir(ws) / f"manager-{executor}.lock"
        self.fd: int | None = None

    def acquire(self) -> bool:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None


def request_cancel(ws: Workspace, job_id: str | None) -> None:
    """Ask the live scheduler to cancel one job (None: all of them)."""
    name = "cancel-all" if job_id is None else f"cancel-{job_id}"
    (jobs_dir(ws) / "requests" / name).touch()
    wake(ws)


def take_requests(ws: Workspace) -> list[str | None]:
    """Cancel requests (job ids; None means all), removed as they are taken."""
    out: list[str | None] = []
    for p in sorted((jobs_dir(ws) / "requests").glob("cancel-*")):
        name = p.name[len("cancel-"):]
        out.append(None if name == "all" else name)
        p.unlink(missing_ok=True)
    return out


def wake_path(ws: Workspace) -> Path:
    return jobs_dir(ws) / "wake"


def wake(ws: Workspace) -> None:
    """Tell a live scheduler that the queue in the store changed."""
    wake_path(ws).write_text(str(time.time()))


# ---- a job's log ------------------------------------------------------------------------------

def log_tail(path: Path, lines: int = 20, max_bytes: int = 64 * 1024) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
