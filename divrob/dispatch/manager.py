"""The manager: the one process that writes the store while jobs run (a `study run` in the
foreground or the detached scheduler). It feeds queued jobs whose dependencies are finished to a
backend (local slots or submitit), turns backend events and run directories into job states,
ingests run directories in batched transactions, detects lost jobs, and serves cancel requests."""

from __future__ import annotations

import os
import signal
import socket
import time

from divrob.dispatch.jobs import (
    ACTIVE, DONE, Job, ManagerLock, load_jobs, log_tail, pid_alive, remove_manager_pidfile,
    take_requests, upsert_jobs, wake_path, write_manager_pidfile,
)
from divrob.dispatch.local import Event
from divrob.dispatch.notify import failed_message, stalled_message, study_message
from divrob.progress import SILENT, Reporter
from divrob.runs.rundir import RunDir
from divrob.runs.status import RunStatus
from divrob.states import RUNDIR_KINDS, RUNNING
from divrob.store.db import write_connection
from divrob.store.ingest import ingest_runs
from divrob.workspace import Workspace


def _alive(status: RunStatus) -> bool:
    """Whether a running run's process lives: checked on this host; on another (SLURM) the
    backend, which still tracks the job, says so."""
    return status.host != socket.gethostname() or pid_alive(status.pid)


class Manager:
    def __init__(self, ws: Workspace, backend, *, on_lost: str = "fail", max_requeues: int = 3,
                 reporter: Reporter = SILENT, flush_s: float = 0.5, poll_s: float = 0.05,
                 stall_s: float = 15 * 60.0, on_stall: str = "mark", notifier=None):
        from divrob.dispatch.notify import Notifier

        self.ws, self.backend, self.reporter = ws, backend, reporter
        self.stall_s, self.on_stall = stall_s, on_stall
        self.notifier = notifier or Notifier(ws.config.notify, reporter.log)
        self.stall_requeue: set[str] = set()  # stalled jobs being stopped to be requeued
        self.study_counts: dict[str, dict[str, int]] = {}  # runs ended per study, for its message
        self.executor = backend.name
        self.on_lost, self.max_requeues = on_lost, max_requeues
        self.flush_s, self.poll_s = flush_s, poll_s
        self.jobs: dict[str, Job] = {}  # active jobs (queued or running) this manager owns
        self.dep_states: dict[str, str] = {}
        self.dirty: set[str] = set()
        self.ingest: set[str] = set()  # run dirs with new events or a new state
        self.cancelling: set[str] = set()
        self.orphans: set[str] = set()  # running jobs of a dead manager whose process lives on
        self._events_mtime: dict[str, float] = {}
        self._wake_mtime = -1.0
        self._last_flush = 0.0
        self.counts = {"finished": 0, "failed": 0, "cancelled": 0}
        self._finished_rows: dict[str, Job] = {}  # ended since the last flush

    # ---- the store ------------------------------------------------------------------------

    def refresh(self) -> None:
        """Flush what changed, then (re)load the active jobs of this executor from the store."""
        with write_connection(self.ws.db_path) as con:
            self._flush(con)
            loaded = load_jobs(con, states=ACTIVE, executor=self.executor)
            deps = {d for j in loaded for d in j.deps}
            self.dep_states = {j.job_id: j.state for j in load_jobs(con, ids=deps)}
        for job in loaded:
            if job.job_id not in self.jobs:
                self.jobs[job.job_id] = job
                if job.state in RUNNING or job.external_id:
                    self._adopt(job)

    def flush(self) -> None:
        with write_connection(self.ws.db_path) as con:
            self._flush(con)

    def _flush(self, con) -> None:
        now = time.time()
        for job in self.jobs.values():  # running jobs: progress and new epochs
            if job.state in RUNNING and job.kind in RUNDIR_KINDS:
                rd = RunDir(self.ws.runs / job.job_id)
                status = rd.status()
                p = status.progress
                if p.updated is not None and p != job.progress:
                    job.progress = p
                    self.dirty.add(job.job_id)
                self._check_stall(job, status, now)
                try:
                    mtime = rd.events_path.stat().st_mtime
                except OSError:
                    mtime = 0.0
                if mtime != self._events_mtime.get(job.job_id):
                    self._events_mtime[job.job_id] = mtime
                    self.ingest.add(job.job_id)
        ingest_runs(con, [RunDir(self.ws.runs / r) for r in sorted(self.ingest)])
        upsert_jobs(con, [self._known[j] for j in sorted(self.dirty) if j in self._known])
        self.dirty.clear()
        self.ingest.clear()
        self._finished_rows.clear()
        self._last_flush = now

    @property
    def _known(self) -> dict[str, Job]:
        return {**self._finished_rows, **self.jobs}

    def _status(self, job: Job) -> RunStatus:
        """What the job's run directory says; a job without one (generate) says nothing."""
        return RunDir(self.ws.runs / job.job_id).status() if job.kind in RUNDIR_KINDS else RunStatus()

    def _check_stall(self, job: Job, status: RunStatus, now: float) -> None:
        """A running job whose heartbeat (progress or status time) is older than stall_s while its
        process lives becomes `stalled` (and requeued with on_stall = requeue); a heartbeat brings
        it back to running."""
        if status.state != "running" or job.job_id in self.cancelling:
            return
        try:  # a line in its log counts too (decoding a manifest logs before training reports)
            logged = (self.ws.runs / job.job_id / "log.txt").stat().st_mtime
        except OSError:
            logged = None
        beats = [t for t in (status.progress.updated, status.updated, job.started, logged) if t]
        if not beats:
            return
        quiet = now - max(beats)
        if job.state == "running" and quiet > self.stall_s and _alive(status):
            job.state = "stalled"
            job.reason = f"no heartbeat for {quiet / 60:.0f} min; process {status.pid} on {status.host} is alive"
            self._touch(job)
            requeue = self.on_stall == "requeue"
            self.reporter.log(f"stalled {job.job_id} {job.label}: {job.reason}" + ("; requeueing" if requeue else ""))
            self.notifier.send("stalled", job.study, stalled_message(job.study, job.label, job.job_id, quiet / 60, requeue))
            if requeue:
                self.stall_requeue.add(job.job_id)
                self.cancelling.add(job.job_id)
                if not self.backend.cancel(job.job_id) and _alive(status) and status.host == socket.gethostname():
                    os.kill(int(status.pid), signal.SIGTERM)
        elif job.state == "stalled" and quiet <= self.stall_s:
            job.state, job.reason = "running", None
            self._touch(job)

    def _touch(self, job: Job) -> None:
        self.dirty.add(job.job_id)
        if job.kind in RUNDIR_KINDS:
            self.ingest.add(job.job_id)

    # ---- state changes --------------------------------------------------------------------

    def _end(self, job: Job, state: str, reason: str | None) -> None:
        job.state, job.reason, job.ended = state, reason, time.time()
        if job.kind in RUNDIR_KINDS:
            rd = RunDir(self.ws.runs / job.job_id)
            if state == "cancelled" and rd.status().state not in DONE:
                # the process was stopped before it could say so (SLURM's SIGKILL after scancel),
                # or a stop request it met first left it queued: the run directory, which the
                # store reads, must agree with the job
                rd.log(f"cancelled: {reason or 'cancelled'}")
                rd.set_status("cancelled", reason=reason or "cancelled")
            p = rd.status().progress  # an ended run's status keeps its last progress
            if p.updated is not None:
                job.progress = p
            job.log_tail = None if state == "finished" else log_tail(rd.log_path)
        self.counts[state] += 1
        self._touch(job)
        self._finished_rows[job.job_id] = self.jobs.pop(job.job_id)
        self.dep_states[job.job_id] = state
        self.cancelling.discard(job.job_id)
        self.orphans.discard(job.job_id)
        self.reporter.log(f"{state} {job.job_id} {job.label}" + ("" if state == "finished" else f": {reason}"))
        if job.kind in RUNDIR_KINDS:
            self._alert(job, state, reason)

    def _alert(self, job: Job, state: str, reason: str | None) -> None:
        """A failed run now; its study's summary once none of its runs is left with this manager."""
        if state == "failed":
            self.notifier.send("failed", job.study, failed_message(job.study, job.label, job.job_id, reason))
        if not job.study:
            return
        counts = self.study_counts.setdefault(job.study, {"finished": 0, "failed": 0, "cancelled": 0})
        counts[state] += 1
        if not any(j.study == job.study and j.kind in RUNDIR_KINDS for j in self.jobs.values()):
            self.notifier.send("finished", job.study, study_message(job.study, self.study_counts.pop(job.study)))

    def _ended(self, job: Job, info: dict) -> None:
        if job.job_id in self.stall_requeue:  # stopped because it stalled: it resumes from its checkpoint
            self.stall_requeue.discard(job.job_id)
            self.cancelling.discard(job.job_id)
            return self._lost(job, "stalled: stopped to be requeued", policy="requeue")
        status = self._status(job)
        state = status.state
        if job.job_id in self.cancelling:
            state = "cancelled"
        elif state not in DONE:
            state = "finished" if info.get("ok", False) else "failed"
        reason = None if state == "finished" else (status.reason or info.get("error") or info.get("reason"))
        self._end(job, state, reason)

    def _lost(self, job: Job, reason: str, policy: str | None = None) -> None:
        """A job whose process vanished (SIGKILL, OOM killer, a dead node): fail it or requeue it
        (`policy`: on_lost unless given)."""
        if job.job_id in self.cancelling:
            return self._end(job, "cancelled", "cancelled")
        policy = policy or self.on_lost
        rd = RunDir(self.ws.runs / job.job_id) if job.kind in RUNDIR_KINDS else None
        if policy == "requeue" and job.attempts <= self.max_requeues:
            job.state, job.reason, job.slot, job.pid, job.external_id = "queued", f"requeued: {reason}", None, None, None
            if rd is not None:
                rd.log(f"lost ({reason}); requeued, will resume from the last checkpoint")
                rd.set_status("queued", reason=job.reason)
            self.reporter.log(f"requeued {job.job_id} {job.label}: {reason}")
            self._touch(job)
            return
        why = f"lost: {reason}" + ("; requeue limit reached" if policy == "requeue" else "")
        if rd is not None:
            rd.log(f"failed: {why}")
            if rd.status().state not in DONE:
                rd.set_status("failed", reason=why)
        self._end(job, "failed", why)

    def _adopt(self, job: Job) -> None:
        """A job that a previous manager left queued-with-an-id or running."""
        if hasattr(self.backend, "attach") and job.external_id:
            self.backend.attach(job)
            return
        if job.state not in RUNNING:
            return
        status = self._status(job)
        if status.state in DONE:
            self._ended(job, {})
        elif status.state == "running" and pid_alive(status.pid):
            self.orphans.add(job.job_id)  # its worker outlived its manager: watch the run dir
        else:
            self._lost(job, f"process {status.pid or job.pid} is gone")

    def cancel(self, job_id: str | None) -> None:
        for job in list(self.jobs.values()):
            if job_id is not None and job.job_id != job_id:
                continue
            if job.state == "queued" and not job.external_id:
                self._end(job, "cancelled", "cancelled before it started")
                if job.kind in RUNDIR_KINDS:
                    RunDir(self.ws.runs / job.job_id).set_status("cancelled", reason="cancelled before it started")
            else:
                self.cancelling.add(job.job_id)
                if not self.backend.cancel(job.job_id) and job.job_id in self.orphans:
                    pid = RunDir(self.ws.runs / job.job_id).status().pid
                    if pid_alive(pid):
                        os.kill(int(pid), signal.SIGTERM)

    # ---- the loop -------------------------------------------------------------------------

    def ready(self) -> list[Job]:
        out = []
        for job in list(self.jobs.values()):
            if job.state != "queued" or job.external_id:
                continue
            bad = [d for d in job.deps if self.dep_states.get(d) in ("failed", "cancelled")]
            if bad:
                self._end(job, "failed", f"dependency {bad[0]} is {self.dep_states[bad[0]]}")
            elif all(self.dep_states.get(d) == "finished" for d in job.deps):
                out.append(job)
        return out

    def tick(self) -> None:
        for req in take_requests(self.ws):
            self.cancel(req)
        try:
            wake = wake_path(self.ws).stat().st_mtime
        except OSError:
            wake = 0.0
        if wake != self._wake_mtime:
            self._wake_mtime = wake
            self.refresh()
        capacity = self.backend.capacity()
        if capacity:
            batch = self.ready()[:capacity]
            if batch:
                now = time.time()
                self.backend.start(batch)
                for job in batch:
                    job.attempts += 1
                    job.reason = None
                    job.started = now if job.external_id is None else job.started
                    job.state = "running" if job.external_id is None else "queued"
                    self._touch(job)
        for ev in self.backend.poll(self.poll_s):
            self.handle(ev)
        for job_id in list(self.orphans):
            job = self.jobs[job_id]
            status = RunDir(self.ws.runs / job_id).status()
            if status.state in DONE:
                self._ended(job, {})
            elif not pid_alive(status.pid):
                self._lost(job, f"process {status.pid} is gone")
        if time.time() - self._last_flush >= self.flush_s:
            self.flush()

    def handle(self, ev: Event) -> None:
        job = self.jobs.get(ev.job_id)
        if job is None:
            return
        if ev.kind == "started":
            job.state, job.pid = "running", ev.info.get("pid", job.pid)
            job.started = job.started or time.time()
            self._touch(job)
        elif ev.kind == "requeued":
            job.state, job.reason = "queued", ev.info.get("reason")
            self._touch(job)
        elif ev.kind == "ended":
            self._ended(job, ev.info)
        elif ev.kind == "lost" and ev.info.get("started") is False and job.job_id not in self.cancelling:
            job.state, job.attempts, job.slot, job.pid = "queued", max(0, job.attempts - 1), None, None
            self._touch(job)  # its worker died before taking it: not the job's fault, run it again
        elif ev.kind == "lost":
            self._lost(job, ev.info.get("reason", "its process is gone"))

    def idle(self) -> bool:
        return not self.jobs and not self.backend.busy()

    def run(self, detached: bool = False) -> dict[str, int]:
        """Serve this executor's queue until it is empty; one manager per workspace and executor."""
        lock = ManagerLock(self.ws, self.executor)
        if not lock.acquire():
            return {}
        write_manager_pidfile(self.ws, self.executor, detached)
        try:
            while True:
                self.refresh()
                while not self.idle():
                    self.tick()
                self.flush()
                # Hand over safely: release the lock, then look once more for jobs queued meanwhile;
                # keep serving only if no new manager took the lock.
                remove_manager_pidfile(self.ws, self.executor)
                lock.release()
                self.refresh()
                if not self.jobs or not lock.acquire():
                    return self.counts
                write_manager_pidfile(self.ws, self.executor, detached)
        except KeyboardInterrupt:
            for job_id in list(self.jobs):
                self.cancel(job_id)
            self.reporter.log("interrupted: cancelling running jobs")
            deadline = time.time() + 10
            while any(j.state in RUNNING for j in self.jobs.values()) and time.time() < deadline:
                for ev in self.backend.poll(0.1):
                    self.handle(ev)
            raise
        finally:
            try:
                self.flush()
            finally:
                self.backend.close()
                remove_manager_pidfile(self.ws, self.executor)
                lock.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.flush()
        self.backend.close()
