"""The submitit backend: `slurm` (job arrays through sbatch) and `submitit-local` (the same code
path through submitit's LocalExecutor). Jobs are checkpointable: on preemption or time-out
submitit requeues them and they resume from the run directory's last checkpoint. Job ids live in
the store's jobs table, so a restarted divrob re-attaches with `submitit.SlurmJob(folder, id)`."""

from __future__ import annotations

import os
import re
import signal
import time
import zlib
from pathlib import Path
from typing import Any

import submitit

from divrob.dispatch.jobs import Job, logs_dir, pid_alive
from divrob.dispatch.local import Event
from divrob.runs.rundir import RunDir
from divrob.states import RUNDIR_KINDS
from divrob.workspace import SlurmConfig, Workspace

_RUNNING = ("RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SUSPENDED")
_WAITING = ("PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "UNKNOWN", "")
_TERMINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
             "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT", "FINISHED", "INTERRUPTED")


class _PrintReporter:
    def task(self, description: str, total: int | None = None):
        from divrob.progress import SILENT

        return SILENT.task(description, total)

    def log(self, message: str) -> None:
        print(message, flush=True)


def export_distributed_env(job_id: str) -> dict[str, str]:
    """One run on several GPUs/nodes = several submitit tasks; hand each task torch.distributed's
    env:// variables (the training engine reads them when it runs under DDP)."""
    env = submitit.JobEnvironment()
    if env.num_tasks <= 1:
        return {}
    values = {"RANK": str(env.global_rank), "LOCAL_RANK": str(env.local_rank), "WORLD_SIZE": str(env.num_tasks),
              "LOCAL_WORLD_SIZE": str(env.num_tasks // max(1, env.num_nodes)),
              "MASTER_ADDR": env.hostnames[0], "MASTER_PORT": str(20000 + zlib.crc32(job_id.encode()) % 20000)}
    os.environ.update(values)
    return values


class DivrobJob(submitit.helpers.Checkpointable):
    """The submitted callable. `checkpoint` (called by submitit on preemption or time-out) only
    resubmits: the run directory already holds the last checkpoint, which execute_run resumes."""

    def __init__(self) -> None:
        self.requeueing = False

    def __call__(self, ws_root: str, job_id: str, kind: str, params: dict[str, Any]) -> str:
        from divrob.dispatch.kinds import run_job
        from divrob.workspace import open_workspace

        self.requeueing = False
        export_distributed_env(job_id)
        ws = open_workspace(ws_root)
        try:
            run_job(ws, job_id, kind, params, _PrintReporter())
        except SystemExit:
            if self.requeueing and kind in RUNDIR_KINDS:  # execute_run marked it failed on the way out
                RunDir(ws.runs / job_id).set_status("queued", reason="requeued after preemption or time-out")
            raise
        return job_id

    def checkpoint(self, ws_root: str, job_id: str, kind: str, params: dict[str, Any]):
        self.requeueing = True
        if kind in RUNDIR_KINDS:
            try:
                RunDir(Path(ws_root) / "runs" / job_id).log("preempted or timed out: requeued, will resume")
            except OSError:  # a log line is not worth losing the requeue
                pass
        return submitit.helpers.DelayedSubmission(self, ws_root, job_id, kind, params)


def slurm_parameters(cfg: SlurmConfig, job_name: str = "divrob") -> dict[str, Any]:
    gpus = cfg.gpus_per_run
    p: dict[str, Any] = {
        "job_name": job_name, "nodes": cfg.nodes_per_run, "ntasks_per_node": max(1, gpus),
        "cpus_per_task": cfg.cpus_per_gpu, "time": cfg.time_min, "array_parallelism": cfg.array_parallelism,
    }
    if gpus:
        p["gpus_per_node"] = gpus
    for key in ("partition", "account", "qos"):
        if getattr(cfg, key):
            p[key] = getattr(cfg, key)
    if cfg.mem_gb:
        p["mem"] = f"{cfg.mem_gb}GB"
    if cfg.setup:
        p["setup"] = list(cfg.setup)
    if cfg.extra:
        p["additional_parameters"] = dict(cfg.extra)
    return p


class SubmititBackend:
    def __init__(self, ws: Workspace, name: str, cfg: SlurmConfig, parallelism: int | None = None):
        assert name in ("slurm", "submitit-local"), name
        self.ws, self.name, self.cfg = ws, name, cfg
        self.folder = str(logs_dir(ws, "submitit") / "%j")
        self.parallelism = parallelism or (10_000 if name == "slurm" else cfg.array_parallelism)
        self.poll_interval = cfg.poll_s if name == "slurm" else 0.2
        self.tracked: dict[str, Any] = {}  # divrob job id → submitit job
        self.seen_running: set[str] = set()
        self._last_poll = 0.0

    def executor(self):
        if self.name == "slurm":
            ex = submitit.SlurmExecutor(folder=self.folder, max_num_timeout=self.cfg.max_num_timeout)
            ex.update_parameters(**slurm_parameters(self.cfg))
        else:
            ex = submitit.LocalExecutor(folder=self.folder, max_num_timeout=self.cfg.max_num_timeout)
            gpus = self.cfg.gpus_per_run
            ex.update_parameters(timeout_min=self.cfg.time_min, tasks_per_node=max(1, gpus), gpus_per_node=gpus)
        return ex

    def capacity(self) -> int:
        return max(0, self.parallelism - len(self.tracked))

    def busy(self) -> bool:
        return bool(self.tracked)

    def start(self, jobs: list[Job]) -> None:
        ex = self.executor()
        with ex.batch():  # one sbatch: a job array
            handles = [ex.submit(DivrobJob(), str(self.ws.root), j.job_id, j.kind, j.params) for j in jobs]
        for job, h in zip(jobs, handles):
            job.external_id, job.folder, job.slot, job.pid = str(h.job_id), self.folder, self.name, None
            self.tracked[job.job_id] = h
        self._last_poll = 0.0

    def attach(self, job: Job) -> None:
        """Follow a job submitted by an earlier divrob process."""
        if self.name == "slurm":
            h = submitit.SlurmJob(folder=job.folder or self.folder, job_id=job.external_id)
        else:
            h = submitit.local.local.LocalJob(folder=job.folder or self.folder, job_id=job.external_id)
        self.tracked[job.job_id] = h
        if job.state == "running":
            self.seen_running.add(job.job_id)

    def _state(self, h) -> str:
        if self.name == "slurm":  # one sacct per poll for every tracked job (see poll)
            state = h.watcher.get_state(h.job_id, mode="cache")
            return str(state).split()[0].upper() if state else "UNKNOWN"
        if h._process is None:  # re-attached: the submitit job id of a local job is its pid
            return "FINISHED" if h.paths.result_pickle.exists() else (
                "RUNNING" if pid_alive(int(h.job_id)) else "INTERRUPTED")
        return h.state

    def poll(self, timeout: float) -> list[Event]:
        now = time.monotonic()
        if now - self._last_poll < self.poll_interval:
            time.sleep(timeout)
            return []
        self._last_poll = now
        events: list[Event] = []
        if self.name == "slurm" and self.tracked:
            submitit.SlurmJob.watcher.update()
        for job_id, h in list(self.tracked.items()):
            state = self._state(h)
            if state in _RUNNING and job_id not in self.seen_running:
                self.seen_running.add(job_id)
                events.append(Event(job_id, "started", {}))
            elif state in _WAITING and job_id in self.seen_running and state != "UNKNOWN":
                self.seen_running.discard(job_id)
                events.append(Event(job_id, "requeued", {"reason": f"requeued by SLURM ({state})"}))
            elif state in _TERMINAL:
                del self.tracked[job_id]
                self.seen_running.discard(job_id)
                events.append(self._outcome(job_id, h, state))
        return events

    def _outcome(self, job_id: str, h, state: str) -> Event:
        if h.paths.result_pickle.exists():
            try:
                exc = h.exception()
            except Exception as e:  # noqa: BLE001 - an unreadable outcome is a failure, not a crash
                exc = e
            return Event(job_id, "ended", {"ok": exc is None, "error": None if exc is None else _short(exc)})
        if state == "CANCELLED":
            return Event(job_id, "ended", {"ok": False, "error": "cancelled (scancel)"})
        return Event(job_id, "lost", {"reason": f"submitit job {h.job_id} ended {state} without a result "
                                                f"(see {h.paths.stderr})"})

    def cancel(self, job_id: str) -> bool:
        h = self.tracked.get(job_id)
        if h is None:
            return False
        if self.name == "submitit-local" and h._process is None:
            if pid_alive(int(h.job_id)):
                os.kill(int(h.job_id), signal.SIGINT)
        else:
            h.cancel(check=False)
        return True

    def close(self) -> None:
        pass  # SLURM jobs outlive divrob; the next `study run` re-attaches to them by job id


def _short(exc: BaseException) -> str:
    """The error line of a submitit FailedJobError (whose text is a whole traceback)."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception|Interrupt|Exit)\b", ln)]
    return (errors[-1] if errors else lines[-1] if lines else type(exc).__name__)[:500]
