"""The local backend: one worker process per job slot (GPU slots with CUDA_VISIBLE_DEVICES set,
or CPU-only slots), each pulling jobs from the manager over a pipe."""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field

from divrob.dispatch.jobs import Job, logs_dir
from divrob.workspace import ExecutorConfig, Workspace


@dataclass(frozen=True)
class Slot:
    name: str
    env: dict[str, str]


@dataclass
class Event:
    job_id: str
    kind: str  # started | ended | lost
    info: dict = field(default_factory=dict)


def detect_gpus(setting) -> list[str]:
    """GPU ids without importing torch: the config list, else $CUDA_VISIBLE_DEVICES, else nvidia-smi."""
    if isinstance(setting, list):
        return [str(g) for g in setting]
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(l for l in out.splitlines() if l.startswith("GPU "))]


def local_slots(cfg: ExecutorConfig, slots_per_gpu: int | None = None, cpu_slots: int | None = None) -> list[Slot]:
    gpus = detect_gpus(cfg.gpus)
    if gpus:
        per = slots_per_gpu or cfg.slots_per_gpu
        return [Slot(f"gpu{g}.{k}", {"CUDA_VISIBLE_DEVICES": g}) for g in gpus for k in range(per)]
    return [Slot(f"cpu{k}", {"CUDA_VISIBLE_DEVICES": ""}) for k in range(cpu_slots or cfg.cpu_slots)]


def describe_exit(rc: int | None) -> str:
    if rc is None:
        return "still running"
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exited with status {rc}"


class _Worker:
    def __init__(self, ws: Workspace, slot: Slot):
        self.slot = slot
        self.job_id: str | None = None
        self.started = False  # the job in hand has reported "started"
        self.buf = b""
        log = open(logs_dir(ws, "local") / f"{slot.name}.log", "ab")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "divrob.dispatch.worker", str(ws.root), slot.name],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env={**os.environ, **slot.env},
            )
        finally:
            log.close()

    def send(self, job: Job) -> None:
        line = json.dumps({"job_id": job.job_id, "kind": job.kind, "params": job.params}) + "\n"
        self.proc.stdin.write(line.encode())
        self.proc.stdin.flush()
        self.job_id, self.started = job.job_id, False


class LocalBackend:
    name = "local"

    def __init__(self, ws: Workspace, slots: list[Slot]):
        self.ws = ws
        self.slots = slots
        self.workers: dict[str, _Worker] = {}
        self.sel = selectors.DefaultSelector()

    def capacity(self) -> int:
        return sum(1 for s in self.slots if s.name not in self.workers or self.workers[s.name].job_id is None)

    def busy(self) -> bool:
        return any(w.job_id for w in self.workers.values())

    def start(self, jobs: list[Job]) -> None:
        free = [s for s in self.slots if s.name not in self.workers or self.workers[s.name].job_id is None]
        for job, slot in zip(jobs, free):
            w = self.workers.get(slot.name)
            if w is None or w.proc.poll() is not None:
                w = self._spawn(slot)
            job.slot, job.pid = slot.name, w.proc.pid
            try:
                w.send(job)
            except (BrokenPipeError, OSError):  # the idle worker died: give the job a new one
                self._drop(w)
                w = self._spawn(slot)
                job.pid = w.proc.pid
                w.send(job)

    def _spawn(self, slot: Slot) -> _Worker:
        w = _Worker(self.ws, slot)
        self.workers[slot.name] = w
        self.sel.register(w.proc.stdout, selectors.EVENT_READ, w)
        return w

    def _drop(self, w: _Worker) -> None:
        try:
            self.sel.unregister(w.proc.stdout)
        except (KeyError, ValueError):
            pass
        for f in (w.proc.stdin, w.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        if self.workers.get(w.slot.name) is w:
            del self.workers[w.slot.name]

    def poll(self, timeout: float) -> list[Event]:
        events: list[Event] = []
        if not self.workers:
            return events
        for key, _ in self.sel.select(timeout):
            w: _Worker = key.data
            data = os.read(w.proc.stdout.fileno(), 65536)
            events += self._reap(w) if not data else self._messages(w, data)  # no data: EOF, it is gone
        for w in list(self.workers.values()):
            if w.proc.poll() is not None and w.job_id is not None:
                events += self._reap(w)
        return events

    def _messages(self, w: _Worker, data: bytes) -> list[Event]:
        events = []
        w.buf += data
        *lines, w.buf = w.buf.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            msg = json.loads(line)
            if w.job_id == msg["job_id"]:
                if msg["event"] == "started":
                    w.started = True
                elif msg["event"] == "ended":
                    w.job_id = None
            events.append(Event(msg["job_id"], msg["event"], msg))
        return events

    def _reap(self, w: _Worker) -> list[Event]:
        rc = w.proc.wait()
        try:  # what it said before it went: the process is gone, so this reads to EOF
            events = self._messages(w, w.proc.stdout.read() + b"\n")
        except (OSError, ValueError):
            events = []
        job_id, w.job_id = w.job_id, None
        self._drop(w)
        if job_id is not None:
            events.append(Event(job_id, "lost", {"reason": f"worker {w.proc.pid} ({w.slot.name}) {describe_exit(rc)}",
                                                 "started": w.started}))
        return events

    def cancel(self, job_id: str) -> bool:
        for w in self.workers.values():
            if w.job_id == job_id and w.proc.poll() is None:
                w.proc.send_signal(signal.SIGTERM)
                return True
        return False

    def close(self, timeout: float = 10.0) -> None:
        for w in list(self.workers.values()):
            try:
                w.proc.stdin.close()  # EOF: an idle worker exits
            except OSError:
                pass
        for w in list(self.workers.values()):
            try:
                w.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
            self._drop(w)
        self.sel.close()
