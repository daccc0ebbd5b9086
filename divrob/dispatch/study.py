"""A study's jobs in the queue: what the next launch would do with each (`plan_rows`), queueing
the unfinished ones (`enqueue`), and following them (`follow`). divrob.dispatch.launch serves them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from divrob.dispatch.jobs import ACTIVE, Job, live_manager, load_jobs, upsert_jobs, wake
from divrob.progress import SILENT, Reporter
from divrob.runs.grid import StudyPlan
from divrob.runs.rundir import RunDir
from divrob.store.db import read_connection, write_connection
from divrob.workspace import Workspace


@dataclass
class Queued:
    queued: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # finished before this call
    waiting: list[str] = field(default_factory=list)  # already queued or running under a live manager


def job_states(ws: Workspace, ids: list[str]) -> dict[str, Job]:
    with read_connection(ws.db_path) as con:
        return {j.job_id: j for j in load_jobs(con, ids=ids)}


def plan_rows(ws: Workspace, plan: StudyPlan) -> list[dict[str, Any]]:
    """Every job of the plan with what the next `study run` would do with it."""
    from divrob.runs.spec import precision_summary

    stored = job_states(ws, [j.job_id for j in plan.jobs()])
    specs = {pr.spec.run_id: pr.spec for pr in plan.runs}
    rows = []
    for pj in plan.jobs():
        job = stored.get(pj.job_id)
        if pj.kind == "manifest":
            state = "built"
        else:
            rd = RunDir(ws.runs / pj.job_id)
            observed = rd.observed()
            disk = observed.state
            if disk == "finished":
                state = "finished (never redone)"
            elif disk == "damaged":
                state = "damaged (will repair and resume)"
            elif job is not None and job.state in ACTIVE:
                state = f"{job.state} ({job.executor})"
            elif job is not None and job.state == "cancelled":
                state = "cancelled (study retry)"
            elif rd.events_path.exists() or (rd.checkpoints / "last.pt").exists():
                state = "partly done (will resume)" + (f", {disk}" if disk in ("failed", "cancelled") else "")
            elif disk == "failed":
                state = "failed (will rerun)"
            else:
                state = "to run"
        rows.append({"job": pj.job_id, "kind": pj.kind, "label": pj.label, "deps": list(pj.deps), "state": state,
                     "reason": observed.reason if pj.kind != "manifest" and disk == "damaged" else
                     job.reason if job is not None and job.state in ("failed", "cancelled") else None,
                     "precision": precision_summary([specs[pj.job_id]]) if pj.job_id in specs else None})
    return rows


def enqueue(ws: Workspace, plan: StudyPlan, executor: str, *, retry: bool = False) -> Queued:
    """Queue the study's unfinished jobs for `executor`. Finished runs are never redone; failed ones
    are resumed; cancelled ones stay cancelled unless `retry` (which queues only failed/cancelled)."""
    from divrob.dispatch.inline import record_plan
    from divrob.runs.provenance import note_recipe

    record_plan(ws, plan)
    study = plan.recipe.study.name
    out = Queued()
    planned = plan.jobs()
    specs = {pr.spec.run_id: pr.spec for pr in plan.runs}
    now = time.time()
    with write_connection(ws.db_path) as con:
        stored = {j.job_id: j for j in load_jobs(con, ids=[p.job_id for p in planned])}
        rows = []
        for pj in planned:
            old = stored.get(pj.job_id)
            base = Job(pj.job_id, pj.kind, study, pj.label, tuple(pj.deps), dict(pj.params), executor, queued=now)
            if pj.kind == "manifest":  # built while planning
                if old is None or old.state != "finished":
                    base.state, base.started, base.ended = "finished", now, now
                    rows.append(base)
                continue
            if RunDir(ws.runs / pj.job_id).is_finished:
                out.skipped.append(pj.job_id)
                if old is None or old.state != "finished":
                    base.state, base.ended = "finished", now
                    rows.append(base)
                continue
            if old is not None and old.state in ACTIVE and _still_managed(ws, old):
                out.waiting.append(pj.job_id)
                continue
            if old is not None and old.state == "cancelled" and not retry:
                continue
            if retry and (old is None or old.state not in ("failed", "cancelled")):
                continue
            if old is not None:
                base.attempts = 0 if retry else old.attempts
            if pj.job_id in specs:  # the job reads its spec from the run dir
                note_recipe(RunDir.for_spec(ws.runs, specs[pj.job_id]).path, plan.recipe)
            rows.append(base)
            out.queued.append(pj.job_id)
        upsert_jobs(con, rows)
    wake(ws)
    return out


def _still_managed(ws: Workspace, job: Job) -> bool:
    """An active job some manager still owns: SLURM jobs (re-attached by id) or a live scheduler's."""
    return bool(job.external_id and job.executor == "slurm") or live_manager(ws, job.executor) is not None


def follow(ws: Workspace, ids: list[str], reporter: Reporter = SILENT, every_s: float = 1.0,
           timeout_s: float | None = None) -> dict[str, Job]:
    """Watch jobs in the store until none is queued or running."""
    task = reporter.task("jobs", total=len(ids))
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        while True:
            states = job_states(ws, ids)
            done = sum(1 for j in states.values() if j.state not in ACTIVE)
            task.update(description=f"jobs: {done}/{len(ids)} done")
            if done == len(states) or (deadline is not None and time.monotonic() > deadline):
                return states
            time.sleep(every_s)
    except KeyboardInterrupt:
        reporter.log("stopped following; the jobs go on (see `divrob jobs ls`)")
        return job_states(ws, ids)
    finally:
        task.close()
