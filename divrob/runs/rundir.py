"""A run directory: spec.json, events.jsonl, status.json, log.txt and checkpoints/.

Jobs write only here (never the store); the manager ingests. Events are one JSON object per
finished epoch and are appended once: a resumed run skips epochs already recorded.
status.json is a `divrob.runs.status.RunStatus`: the state and, while training (every few
seconds), the progress; the progress keeps its last values once the run ends.

In a multi-process (DDP) run every rank holds a RunDir, but only rank 0's is a `writer`: the
others' write methods do nothing, so each event, status and log line is written once.
"""

from __future__ import annotations

import json
import socket
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

from divrob.fileio import append_jsonl, read_jsonl, write_json_atomic
from divrob.runs.spec import RunSpec
from divrob.runs.status import RunStatus, read_status, with_progress, write_status
from divrob.states import STATES


@dataclass(frozen=True)
class RunDir:
    path: Path
    writer: bool = True
    sample_gpus: bool = False  # a run on CUDA: progress reports carry its GPUs' use (NVML)

    @classmethod
    def for_spec(cls, runs_root: Path, spec: RunSpec, writer: bool = True) -> "RunDir":
        rd = cls(runs_root / spec.run_id, writer)
        if writer:
            rd.path.mkdir(parents=True, exist_ok=True)
            rd.checkpoints.mkdir(exist_ok=True)
            if not rd.spec_path.exists():
                write_json_atomic(rd.spec_path, spec.to_dict())
        return rd

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def spec_path(self) -> Path:
        return self.path / "spec.json"

    @property
    def events_path(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def log_path(self) -> Path:
        return self.path / "log.txt"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def spec(self) -> RunSpec:
        return RunSpec.from_dict(json.loads(self.spec_path.read_text()))

    def events(self) -> list[dict[str, Any]]:
        return read_jsonl(self.events_path)

    def recorded_epochs(self, phase: str) -> set[int]:
        return {int(e["epoch"]) for e in self.events() if e.get("phase") == phase}

    def append_epoch(self, phase: str, epoch: int, metrics: dict[str, dict[str, float]], **extra: Any) -> bool:
        """Record a finished epoch once; returns False if it was already recorded."""
        if not self.writer:
            return False
        if epoch in self.recorded_epochs(phase):
            return False
        append_jsonl(self.events_path, {"phase": phase, "epoch": epoch, "metrics": metrics, "time": time.time(), **extra})
        return True

    def status(self) -> RunStatus:
        return read_status(self.status_path)

    def set_status(self, state: str, *, reason: str | None = None, pid: int | None = None,
                   world_size: int | None = None) -> None:
        """A new state (with its reason; None clears the old one). The pid, start time and
        progress carry over; a run that starts records its pid and host."""
        assert state in STATES, state
        if not self.writer:
            return
        prev = self.status()
        now = time.time()
        new = replace(prev, state=state, reason=reason, updated=now,
                      world_size=world_size if world_size is not None else prev.world_size)
        if pid is not None:
            new = replace(new, pid=pid, host=socket.gethostname())
        if state == "running" and new.started is None:
            new = replace(new, started=now)
        write_status(self.status_path, new)

    def set_progress(self, **progress: Any) -> None:
        """Record a running run's progress: phase, epoch, epochs, step, steps_per_epoch,
        images_per_s (`divrob.train.recorder.PhaseRecorder`; callers rate-limit: one atomic write)."""
        if not self.writer:
            return
        if self.sample_gpus:
            from divrob.devices import gpu_use

            util, mem = gpu_use()
            if util is not None:
                progress.update(gpu_util=util, gpu_mem=mem)
        write_status(self.status_path, with_progress(self.status(), time.time(), **progress))

    @property
    def is_finished(self) -> bool:
        return self.status().state == "finished"

    def log(self, message: str) -> None:
        if not self.writer:
            return
        with open(self.log_path, "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    @contextmanager
    def recording_failure(self) -> Iterator[None]:
        """Whatever stops the body is logged and becomes the run's state (failed, or cancelled
        on Ctrl-C) with its reason, then re-raised: a job's error is one command away."""
        from divrob.errors import DivrobError
        from divrob.train.interrupt import StopRequested

        try:
            yield
        except StopRequested as e:  # asked to stop (SLURM's time-limit warning): checkpointed, resumable
            self.log(str(e))
            if self.status().state == "running":  # a cancel that came meanwhile stays
                self.set_status("queued", reason=str(e))
            raise
        except DivrobError as e:
            self.log(f"failed: {e}")
            self.set_status("failed", reason=str(e))
            raise
        except BaseException as e:
            self.log("failed:\n" + traceback.format_exc())
            state = "cancelled" if isinstance(e, KeyboardInterrupt) else "failed"
            self.set_status(state, reason=f"{type(e).__name__}: {e}")
            raise
