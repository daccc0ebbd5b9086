"""The submitit backend: `slurm` (job arrays through sbatch) and `submitit-local` (the same code
path through submitit's LocalExecutor).

The job (DivrobJob): SLURM's time-limit warning (USR2, `[slurm] warning_lead_s` before the limit)
and SIGTERM (the limit itself, preemption, scancel) ask the training loop to checkpoint at its
next step and stop (divrob.train.interrupt); the job then returns a "stopped" result.

The manager's side (SubmititBackend): ready jobs go out as job arrays, split where the cluster's
MaxArraySize requires; one sacct call per poll follows them all (sacct.py). A job that ends without
finishing its run -- stopped, TIMEOUT, PREEMPTED, NODE_FAIL, lost -- is resubmitted and resumes from
the run's last checkpoint, or fails with the reason (requeue.py decides). Job ids live in the
store's jobs table, so a restarted divrob re-attaches to running jobs instead of submitting again.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit

from divrob.dispatch.jobs import Job, logs_dir, pid_alive
from divrob.dispatch.local import Event
from divrob.dispatch.requeue import LOST, PREEMPTION, TIME_OUT, Ending, Limits, RequeueLedger, decide
from divrob.dispatch.sacct import CommandFailed, JobInfo, StatePoller, check_cluster, run_command
from divrob.errors import DivrobError
from divrob.runs.rundir import RunDir
from divrob.states import RUNDIR_KINDS
from divrob.workspace import SlurmConfig, Workspace

UNKNOWN_GRACE_S = 300.0  # a job neither sacct nor squeue knows (and no result) is lost after this long
WARNING_SIGNAL = submitit.JobEnvironment._usr_sig()  # what `--signal=USR2@N` sends (SUBMITIT_PREEMPT_SIGNAL)


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


def _process_started() -> float:
    """When SLURM launched this task: the start of this process (the shell that exec'd python),
    from /proc; now where /proc does not tell. A warning's lead is counted from here."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(ln.split()[1]) for ln in Path("/proc/stat").read_text().splitlines() if ln.startswith("btime"))
        return min(time.time(), boot + ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


class DivrobJob:
    """The submitted callable. Returns {"finished": id}, or {"stopped": signal, "window_s": seconds from
    the task's launch to the stop request, "at": where it stopped} when a signal stopped training."""

    def __call__(self, ws_root: str, job_id: str, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        from divrob.dispatch.kinds import run_job
        from divrob.train import interrupt
        from divrob.workspace import open_workspace

        started = _process_started()
        # instead of submitit's handlers (requeue at once on USR2, ignore SIGTERM): stop at the next step
        interrupt.listen((WARNING_SIGNAL, signal.SIGTERM))
        export_distributed_env(job_id)
        ws = open_workspace(ws_root)
        try:
            run_job(ws, job_id, kind, params, _PrintReporter())
        except interrupt.StopRequested as stop:
            return {"stopped": stop.request.signal, "window_s": round(stop.request.at - started, 1),
                    "at": f"{stop.phase} epoch {stop.epoch} step {stop.step}"}
        return {"finished": job_id}


def _python_ignoring_early_warning() -> str:
    """The job's python command, started with the warning signal ignored: a warning that comes while
    the interpreter starts (SLURM checks limits every 30 s, so it can come at once) must not kill
    it; the job listens once DivrobJob runs, and the limit's SIGTERM still stops it."""
    script = f"trap '' {signal.Signals(WARNING_SIGNAL).name[3:]}; exec \"$0\" \"$@\""
    return f"/bin/sh -c {shlex.quote(script)} {shlex.quote(sys.executable)}"


def slurm_parameters(cfg: SlurmConfig, job_name: str = "divrob") -> dict[str, Any]:
    gpus = cfg.gpus_per_run
    p: dict[str, Any] = {
        "job_name": job_name, "nodes": cfg.nodes_per_run, "ntasks_per_node": max(1, gpus),
        "cpus_per_task": cfg.cpus_per_gpu, "time": cfg.time_min, "array_parallelism": cfg.array_parallelism,
        "signal_delay_s": cfg.warning_lead_s,
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


def array_chunks(n: int, max_size: int, parallelism: int) -> list[tuple[int, int, int]]:
    """Split n jobs into arrays of at most `max_size` tasks: (start, stop, tasks at once) each,
    sharing `parallelism` (the `%N` of `--array`) in proportion to their sizes, at least 1 each."""
    from divrob.apportion import largest_remainder

    if n <= 0:
        return []
    k = -(-n // max_size)
    sizes = [int(s) for s in largest_remainder(n, [1] * k)]
    shares = largest_remainder(parallelism, sizes) if parallelism >= k else [1] * k
    out, start = [], 0
    for size, share in zip(sizes, shares):
        out.append((start, start + size, max(1, min(size, int(share)))))
        start += size
    return out


def run_progress(ws: Workspace, job: Job) -> list | None:
    """A fingerprint of what a run has saved (events and last checkpoint): equal before and after
    an attempt means the attempt saved nothing."""
    if job.kind not in RUNDIR_KINDS:
        return None
    rd = RunDir(ws.runs / job.job_id)
    out = []
    for p in (rd.events_path, rd.checkpoints / "last.pt"):
        try:
            st = p.stat()
            out.append([st.st_size, st.st_mtime_ns])
        except OSError:
            out.append(None)
    return out


@dataclass
class _Tracked:
    job: Job  # the manager's Job: the backend sets its job id when it submits, clears it to resubmit
    handle: Any  # the submitit job (paths of its pickles and logs)
    running: bool = False
    unknown_since: float | None = None


class SubmititBackend:
    def __init__(self, ws: Workspace, name: str, cfg: SlurmConfig, parallelism: int | None = None):
        assert name in ("slurm", "submitit-local"), name
        self.ws, self.name, self.cfg = ws, name, cfg
        self.what = "SLURM job" if name == "slurm" else "submitit-local job"
        if cfg.warning_lead_s >= cfg.time_min * 60:
            raise DivrobError(f"[slurm] warning_lead_s = {cfg.warning_lead_s} is not shorter than the time limit "
                              f"(time_min = {cfg.time_min} min): jobs would be told to stop as they start; lower "
                              f"warning_lead_s or raise time_min in {ws.config_path}")
        self.folder = str(logs_dir(ws, "submitit") / "%j")
        self.parallelism = parallelism or (10_000 if name == "slurm" else cfg.array_parallelism)
        self.tracked: dict[str, _Tracked] = {}
        self.cancelled: set[str] = set()
        self.ledger = RequeueLedger(logs_dir(ws, "submitit") / "requeues.json")
        self.limits = Limits(ws.config.executor.max_requeues, cfg.max_num_timeout, cfg.time_min, cfg.warning_lead_s)
        self.max_array = check_cluster().max_array_size if name == "slurm" else 10_000
        self.poller = StatePoller(min(2.0, cfg.poll_s), cfg.poll_s) if name == "slurm" else None
        self._last_local_poll = 0.0

    def executor(self, array_parallelism: int | None = None):
        if self.name == "slurm":
            ex = submitit.SlurmExecutor(folder=self.folder, max_num_timeout=self.cfg.max_num_timeout,
                                        python=_python_ignoring_early_warning())
            ex.update_parameters(**slurm_parameters(self.cfg))
            if array_parallelism:
                ex.update_parameters(array_parallelism=array_parallelism)
        else:
            ex = submitit.LocalExecutor(folder=self.folder, max_num_timeout=self.cfg.max_num_timeout,
                                        python=_python_ignoring_early_warning())
            gpus = self.cfg.gpus_per_run
            ex.update_parameters(timeout_min=self.cfg.time_min, tasks_per_node=max(1, gpus), gpus_per_node=gpus,
                                 signal_delay_s=self.cfg.warning_lead_s)
        return ex

    def capacity(self) -> int:
        return max(0, self.parallelism - len(self.tracked))

    def busy(self) -> bool:
        return bool(self.tracked)

    # ---- submitting ----------------------------------------------------------------------

    def start(self, jobs: list[Job]) -> None:
        """Submit jobs as arrays (one sbatch each): all of them, or none (a failed sbatch cancels
        the arrays this call already submitted, then raises). A job that a killed manager submitted
        after it was queued, but never recorded in the store, is followed instead."""
        for job in [j for j in jobs if self._submitted_before(j)]:
            job.external_id, job.folder = self.ledger.submitted(job.job_id)["external_id"], self.folder
            job.slot, job.pid = self.name, None
            self.attach(job)
        jobs = [j for j in jobs if j.external_id is None]
        submitted: list[tuple[Job, Any]] = []
        try:
            for lo, hi, share in array_chunks(len(jobs), self.max_array, self.cfg.array_parallelism):
                ex = self.executor(share)
                with ex.batch():
                    handles = [ex.submit(DivrobJob(), str(self.ws.root), j.job_id, j.kind, j.params)
                               for j in jobs[lo:hi]]
                submitted += zip(jobs[lo:hi], handles)
        except Exception as e:  # noqa: BLE001 - sbatch's refusal (QOS, partition ...) is the user's to fix
            for _, h in submitted:
                self._scancel(h)
            lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
            raise DivrobError(f"submitting {len(jobs)} jobs to {self.name} failed: "
                              f"{lines[-1] if lines else type(e).__name__}; check [slurm] in "
                              f"{self.ws.config_path}") from None
        now = time.time()
        for job, h in submitted:
            job.external_id, job.folder, job.slot, job.pid = str(h.job_id), self.folder, self.name, None
            self.tracked[job.job_id] = _Tracked(job, h)
            self.ledger.note_submission(job.job_id, now, job.external_id, run_progress(self.ws, job))
        self.ledger.save()
        if self.poller is not None:
            self.poller.kick()

    def _submitted_before(self, job: Job) -> bool:
        sub = self.ledger.submitted(job.job_id)
        return bool(sub.get("external_id")) and sub.get("at", 0.0) >= (job.queued or 0.0)

    def attach(self, job: Job) -> None:
        """Follow a job submitted by an earlier divrob process."""
        if self.name == "slurm":
            h = submitit.SlurmJob(folder=job.folder or self.folder, job_id=job.external_id)
        else:
            h = submitit.local.local.LocalJob(folder=job.folder or self.folder, job_id=job.external_id)
        self.tracked[job.job_id] = _Tracked(job, h, running=job.state == "running")
        if self.poller is not None:
            self.poller.kick()

    # ---- following -----------------------------------------------------------------------

    def poll(self, timeout: float) -> list[Event]:
        infos = self._states()
        if infos is None:
            time.sleep(timeout)
            return []
        events: list[Event] = []
        for job_id, t in list(self.tracked.items()):
            events += self._follow(job_id, t, infos.get(str(t.handle.job_id)))
        return events

    def _states(self) -> dict[str, JobInfo] | None:
        """Job states by submitit job id, or None when it is not yet time to ask."""
        if not self.tracked:
            return None
        if self.poller is not None:
            return self.poller.poll(str(t.handle.job_id) for t in self.tracked.values()) if self.poller.due() else None
        now = time.monotonic()
        if now - self._last_local_poll < 0.2:
            return None
        self._last_local_poll = now
        return {str(t.handle.job_id): JobInfo(self._local_state(t.handle)) for t in self.tracked.values()}

    @staticmethod
    def _local_state(h) -> str:
        if h._process is None:  # re-attached: the submitit job id of a local job is its pid
            return "COMPLETED" if h.paths.result_pickle.exists() else (
                "RUNNING" if pid_alive(int(h.job_id)) else "FAILED")
        return {"RUNNING": "RUNNING", "FINISHED": "COMPLETED"}.get(h.state, "FAILED")

    def _follow(self, job_id: str, t: _Tracked, info: JobInfo | None) -> list[Event]:
        if info is None:  # SLURM does not know it: not yet (accounting lags), or not any more
            if self._result(t.handle) is not None:
                info = JobInfo("COMPLETED")
            else:
                t.unknown_since = t.unknown_since or time.monotonic()
                if time.monotonic() - t.unknown_since < UNKNOWN_GRACE_S:
                    return []
                info = JobInfo("UNKNOWN")
        t.unknown_since = None
        if info.running:
            if t.running:
                return []
            t.running = True
            return [Event(job_id, "started", {})]
        if info.active:
            if t.running:  # SLURM requeued it itself (same job id): it resumes when it starts again
                t.running = False
                return [Event(job_id, "requeued", {"reason": f"requeued by SLURM ({info.state})"})]
            return []
        del self.tracked[job_id]
        return [self._ended(job_id, t, info)]

    @staticmethod
    def _result(h) -> tuple[str, Any] | None:
        """submitit's outcome pickle: ("success", value) or ("error", traceback); None if absent."""
        path = h.paths.result_pickle
        if not path.exists():
            return None
        try:
            return submitit.core.utils.pickle_load(path)
        except Exception as e:  # noqa: BLE001 - an unreadable outcome is a failure, not a crash
            return ("error", f"{type(e).__name__}: unreadable result {path}: {e}")

    def _ended(self, job_id: str, t: _Tracked, info: JobInfo) -> Event:
        outcome = self._result(t.handle)
        if job_id in self.cancelled or info.state == "CANCELLED":
            self.cancelled.discard(job_id)
            self._settle(t.job, "cancelled", "cancelled (scancel)")
            return Event(job_id, "ended", {"ok": False, "error": "cancelled (scancel)"})
        if outcome is not None and outcome[0] == "error":
            self.ledger.forget(job_id)
            self.ledger.save()
            return Event(job_id, "ended", {"ok": False, "error": _short(outcome[1])})
        value = outcome[1] if outcome is not None else None
        if outcome is not None and not (isinstance(value, dict) and value.get("stopped")):
            self.ledger.forget(job_id)
            self.ledger.save()
            return Event(job_id, "ended", {"ok": True, "error": None})
        history = self.ledger.history(job_id)
        decision = decide(history, self._ending(t, info, value), self.limits)
        self.ledger.record(job_id, history)
        self.ledger.to_submit_again(job_id)
        self.ledger.save()
        if not decision.requeue:
            self._settle(t.job, "failed", decision.reason)
            return Event(job_id, "ended", {"ok": False, "error": decision.reason})
        reason = f"requeued: {decision.reason}"
        if t.job.kind in RUNDIR_KINDS:
            rd = RunDir(self.ws.runs / job_id)
            rd.log(reason)
            if not rd.is_finished:  # (killed after it finished but before submitit saved its result)
                rd.set_status("queued", reason=reason)
        t.job.external_id = None  # the manager submits it again with the next batch of ready jobs
        return Event(job_id, "requeued", {"reason": reason})

    def _ending(self, t: _Tracked, info: JobInfo, stopped: dict | None) -> Ending:
        where = f"{self.what} {t.handle.job_id}"
        if stopped is not None:
            sig = stopped.get("stopped")
            kind = PREEMPTION if info.state == "PREEMPTED" else (
                TIME_OUT if sig == signal.Signals(WARNING_SIGNAL).name or info.state == "TIMEOUT" else LOST)
            what = "time-limit warning" if sig == signal.Signals(WARNING_SIGNAL).name else sig
            return Ending(kind, f"{where} stopped on {what} {stopped.get('window_s', 0):.0f} s after it started "
                                f"({stopped.get('at')}, checkpoint written)",
                          window_s=stopped.get("window_s"), progressed=True)
        before = self.ledger.submitted(t.job.job_id).get("progress")
        progressed = None if before is None else run_progress(self.ws, t.job) != before
        if info.state == "TIMEOUT":
            return Ending(TIME_OUT, f"{where} reached its time limit ({self.cfg.time_min} min) without stopping "
                                    f"in time", window_s=info.elapsed_s, progressed=progressed)
        if info.state == "PREEMPTED":
            return Ending(PREEMPTION, f"{where} was preempted", progressed=progressed)
        if info.state == "UNKNOWN":
            return Ending(LOST, f"SLURM no longer knows {where} (neither sacct nor squeue lists it) and it left no "
                                f"result", progressed=progressed)
        return Ending(LOST, f"{where} ended {info.state} without a result (see {t.handle.paths.stderr})",
                      progressed=progressed)

    def _settle(self, job: Job, state: str, reason: str) -> None:
        """A job that will not be resubmitted: its run directory says how it ended, the ledger forgets it."""
        self.ledger.forget(job.job_id)
        self.ledger.save()
        if job.kind in RUNDIR_KINDS:
            rd = RunDir(self.ws.runs / job.job_id)
            if not rd.is_finished:
                rd.log(f"{state}: {reason}")
                rd.set_status(state, reason=reason)

    # ---- cancelling ----------------------------------------------------------------------

    def _scancel(self, h) -> None:
        try:
            run_command(["scancel", str(h.job_id)])
        except CommandFailed:  # it ended meanwhile; the next poll says how
            pass

    def cancel(self, job_id: str) -> bool:
        t = self.tracked.get(job_id)
        if t is None:
            return False
        self.cancelled.add(job_id)
        h = t.handle
        if self.name == "slurm":
            self._scancel(h)
            self.poller.kick()
        elif h._process is None:
            if pid_alive(int(h.job_id)):
                os.kill(int(h.job_id), signal.SIGINT)
        else:
            h.cancel(check=False)
        return True

    def close(self) -> None:
        pass  # SLURM jobs outlive divrob; the next `study run` re-attaches to them by job id


def _short(exc: BaseException | str) -> str:
    """The error line of a job's traceback (submitit's error outcome is the whole traceback)."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception|Interrupt|Exit)\b", ln)]
    return (errors[-1] if errors else lines[-1] if lines else type(exc).__name__)[:500]
