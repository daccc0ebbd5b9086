"""What `divrob jobs` does from any shell: list jobs (store rows, freshened from run dirs), find a
job's logs, cancel jobs (through the live manager's request files, or directly when none runs).
No torch here, and only short read-only connections except when no manager is alive."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from divrob.dispatch.jobs import (
    ACTIVE, DONE, Job, live_manager, load_jobs, pid_alive, request_cancel, upsert_jobs,
)
from divrob.errors import DivrobError
from divrob.runs.rundir import RunDir
from divrob.states import RUNDIR_KINDS, RUNNING
from divrob.store.db import read_connection, write_connection
from divrob.workspace import Workspace



def list_jobs(ws: Workspace, *, study: str | None = None, state: str | None = None,
              include_manifests: bool = False) -> list[Job]:
    with read_connection(ws.db_path) as con:
        jobs = load_jobs(con, study=study)
    managers = {e: live_manager(ws, e) is not None for e in {j.executor for j in jobs}}
    out = []
    for job in jobs:
        if job.kind == "manifest" and not include_manifests:
            continue
        if job.state in RUNNING and job.kind in RUNDIR_KINDS:  # fresher than the last flush
            status = RunDir(ws.runs / job.job_id).status()
            if status.progress.updated is not None:
                job.progress = status.progress
            if not managers.get(job.executor) and job.executor != "slurm" and not pid_alive(status.pid):
                job.reason = "lost? no manager and no process: `divrob study run` recovers it"
        if job.kind in RUNDIR_KINDS and job.state in ("running", "finished"):
            seen = RunDir(ws.runs / job.job_id).observed()  # a damaged dir, a dead process
            if seen.state in ("damaged", "failed") and seen.state != job.state:
                job.state, job.reason = seen.state, seen.reason
        if state is None or job.state == state:
            out.append(job)
    return out


def find_job(ws: Workspace, ref: str) -> Job:
    """A job by id or unique id prefix (runs are keyed by run id)."""
    with read_connection(ws.db_path) as con:
        jobs = [j for j in load_jobs(con) if j.job_id.startswith(ref)]
    exact = [j for j in jobs if j.job_id == ref]
    if exact:
        return exact[0]
    if not jobs:
        if (ws.runs / ref).is_dir():  # a run never dispatched through a queue (inline)
            status = RunDir(ws.runs / ref).status()
            return Job(ref, "run", executor="inline", state=status.state, reason=status.reason,
                       started=status.started, progress=status.progress)
        raise DivrobError(f"no job {ref!r} in {ws.root}; list them with `divrob jobs ls`")
    if len(jobs) > 1:
        raise DivrobError(f"{ref!r} matches {len(jobs)} jobs ({', '.join(j.job_id for j in jobs[:5])}); give more characters")
    return jobs[0]


def log_paths(ws: Workspace, job: Job) -> list[Path]:
    """Where a job's output is: its run's log.txt, then submitit's stdout/stderr if submitted."""
    paths = []
    if job.kind in RUNDIR_KINDS:
        paths.append(RunDir(ws.runs / job.job_id).log_path)
    if job.external_id and job.folder:
        folder = Path(job.folder.replace("%j", job.external_id))
        paths += [folder / f"{job.external_id}_0_log.out", folder / f"{job.external_id}_0_log.err"]
    return paths


def cancel(ws: Workspace, job_id: str | None, study: str | None = None) -> list[str]:
    """Cancel one job (None: every queued or running one); returns the ids asked to stop."""
    with read_connection(ws.db_path) as con:
        active = load_jobs(con, states=ACTIVE, study=study, ids=None if job_id is None else [job_id])
    if job_id is not None and not active:
        raise DivrobError(f"job {job_id} is not queued or running; nothing to cancel")
    direct = []
    for job in active:
        if live_manager(ws, job.executor) is not None:
            request_cancel(ws, job.job_id)
        else:
            direct.append(job)
    if direct:
        _cancel_unmanaged(ws, direct)
    return [j.job_id for j in active]


def _cancel_unmanaged(ws: Workspace, jobs: list[Job]) -> None:
    now = time.time()
    for job in jobs:
        if job.external_id and job.executor == "slurm":
            import submitit

            submitit.SlurmJob(folder=job.folder, job_id=job.external_id).cancel(check=False)
        elif job.kind in RUNDIR_KINDS:
            pid = RunDir(ws.runs / job.job_id).status().pid
            if job.state in RUNNING and pid_alive(pid):
                os.kill(int(pid), signal.SIGTERM)  # an orphaned worker: it records `cancelled` itself
        if job.kind in RUNDIR_KINDS:
            rd = RunDir(ws.runs / job.job_id)
            if rd.status().state not in DONE:
                rd.set_status("cancelled", reason="cancelled with `divrob jobs cancel`")
        job.state, job.reason, job.ended = "cancelled", "cancelled with `divrob jobs cancel`", now
    with write_connection(ws.db_path) as con:  # no manager alive: this process may write
        upsert_jobs(con, jobs)
