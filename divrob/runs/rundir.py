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

from divrob.errors import DivrobError
from divrob.fileio import (append_jsonl, canonical_json, sha256_hex, truncate_torn_tail, write_json_atomic,
                           write_text_atomic)
from divrob.runs.claim import pid_alive
from divrob.runs.spec import RunSpec
from divrob.runs.status import RunStatus, read_status, with_progress, write_status
from divrob.states import STATES


@dataclass(frozen=True)
class EventCheck:
    """events.jsonl as read and verified: the events whose line is intact, the first damage
    (a line that is not JSON, fails its checksum or is out of sequence), and whether the last
    line lacks its newline (a writer killed mid-append: expected in a run that was running)."""

    events: list[dict[str, Any]]
    damage: str | None = None
    first_bad: int | None = None  # 1-based line number of the first damaged line
    torn_tail: bool = False
    lines: int = 0  # complete lines


def event_sum(event: dict[str, Any]) -> str:
    """An event line's checksum: over every field but the checksum itself."""
    return sha256_hex(canonical_json({k: v for k, v in event.items() if k != "sum"}))[:16]


def check_event_bytes(data: bytes) -> EventCheck:
    """Verify events.jsonl's bytes. Lines written before lines had a sequence number and a
    checksum are read as they are; a line that has them must match."""
    parts = data.split(b"\n")
    tail = parts.pop()  # b"" when the file ends with a newline
    events: list[dict[str, Any]] = []
    damage, first_bad = None, None
    for i, raw in enumerate(parts, 1):
        problem = None
        try:
            event = json.loads(raw)
            if not isinstance(event, dict):
                raise ValueError("not an object")
        except ValueError:
            problem = f"line {i} is not a JSON object"
        else:
            if "sum" in event and event["sum"] != event_sum(event):
                problem = f"line {i} fails its checksum"
            elif "seq" in event and event["seq"] != i:
                problem = f"line {i} has sequence number {event['seq']} (a line is missing or repeated)"
        if problem is None:
            events.append(event)
        elif damage is None:
            damage, first_bad = problem, i
    return EventCheck(events, damage, first_bad, bool(tail.strip()), len(parts))


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

    def check_events(self) -> EventCheck:
        try:
            return check_event_bytes(self.events_path.read_bytes())
        except FileNotFoundError:
            return EventCheck([])

    def events(self) -> list[dict[str, Any]]:
        """The intact events (a damaged line is left out: `damage()` says so)."""
        return self.check_events().events

    def recorded_epochs(self, phase: str) -> set[int]:
        return {int(e["epoch"]) for e in self.events() if e.get("phase") == phase}

    def append_epoch(self, phase: str, epoch: int, metrics: dict[str, dict[str, float]], **extra: Any) -> bool:
        """Record a finished epoch once, with its line's sequence number and checksum; returns
        False if it was already recorded."""
        if not self.writer:
            return False
        check = self.check_events()
        if any(e.get("phase") == phase and int(e["epoch"]) == epoch for e in check.events):
            return False
        event = {"phase": phase, "epoch": epoch, "metrics": metrics, "time": time.time(), **extra,
                 "seq": check.lines + 1}
        event["sum"] = event_sum(json.loads(json.dumps(event, default=str)))  # as it reads back
        append_jsonl(self.events_path, event)
        return True

    def damage(self, check: EventCheck | None = None) -> str | None:
        """What is wrong with the run directory, None when nothing: a damaged event line, or a
        finished run whose events lack a line (its last one cut, an epoch missing)."""
        check = self.check_events() if check is None else check
        if check.damage:
            return f"{self.events_path.name}: {check.damage}"
        if self.status().state != "finished":
            return None  # a torn last line of a run that stopped is expected (cut on resume)
        if check.torn_tail:
            return f"{self.events_path.name}: its last line is cut short"
        try:
            epochs = self.spec().finetune.epochs
        except (OSError, ValueError, KeyError, TypeError, DivrobError):
            return None
        missing = sorted(set(range(1, epochs + 1)) - {int(e["epoch"]) for e in check.events
                                                        if e.get("phase") == "finetune"})
        if missing:
            return f"finished, but {self.events_path.name} lacks fine-tuning epoch(s) {', '.join(map(str, missing))}"
        return None

    def observed(self) -> RunStatus:
        """The run's status as readers should show it (`study plan`, `jobs ls`, ingest, the TUI):
        `damaged` with the reason when its directory is damaged; a `running` state whose process
        is gone from this host is recorded as failed (under the run's claim, so never a run that
        another process is starting)."""
        status = self.status()
        damage = self.damage()
        if damage:
            return replace(status, state="damaged", reason=damage)
        if status.state == "running" and status.pid and status.host == socket.gethostname() \
                and not pid_alive(status.pid):
            reason = f"its process (pid {status.pid}) ended without recording why (killed?); `divrob study run` resumes it"
            self._record_dead(status, reason)
            return replace(status, state="failed", reason=reason)
        return status

    def _record_dead(self, seen: RunStatus, reason: str) -> None:
        from divrob.runs.claim import RunClaimed, claim_run

        try:
            with claim_run(self.path):
                now = self.status()
                if now.state == "running" and now.pid == seen.pid:
                    self.log(f"failed: {reason}")
                    self.set_status("failed", reason=reason)
        except (RunClaimed, OSError):
            pass  # someone is starting it, or the directory is read-only to us: show, do not record

    def repair_events(self) -> str | None:
        """Make a damaged run resumable: keep the intact lines before the first damaged one,
        and drop the checkpoints the kept events no longer back, so the damaged phase is trained
        again (epochs already recorded are not recorded twice). Returns what it did."""
        check = self.check_events()
        damage = self.damage(check)
        if damage is None:
            return None
        keep = check.first_bad - 1 if check.first_bad else check.lines
        lines = self.events_path.read_bytes().split(b"\n")[:keep]
        write_text_atomic(self.events_path, "".join(line.decode() + "\n" for line in lines))
        kept = check_event_bytes(self.events_path.read_bytes()).events
        dropped = []
        last = self.checkpoints / "last.pt"
        try:
            spec = self.spec()
            ft_done = {int(e["epoch"]) for e in kept if e.get("phase") == "finetune"} >= set(range(1, spec.finetune.epochs + 1))
        except (OSError, ValueError, KeyError, TypeError, DivrobError):
            ft_done = False
        if not ft_done and last.exists():
            last.unlink()
            dropped.append("checkpoints/last.pt")
        what = f"repaired a damaged run ({damage}): kept {len(kept)} intact event line(s)" + (
            f", removed {', '.join(dropped)} (its phase is trained again)" if dropped else "")
        self.log(what)
        if self.status().state == "finished":
            self.set_status("failed", reason=f"damaged ({damage}); repaired: `divrob study run` trains what it lacks")
        return what

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

    def add_unreadable(self, what: str, unreadable: int, images: int) -> None:
        """Count a split's unreadable images into the status (once per split: a resumed run that
        decodes it again replaces its count; the per-split counts are kept in unreadable.json)."""
        if not self.writer:
            return
        from divrob.fileio import write_json_atomic as write

        path = self.path / "unreadable.json"
        try:
            per = json.loads(path.read_text())
        except (OSError, ValueError):
            per = {}
        per[what] = [unreadable, images]
        write(path, per)
        write_status(self.status_path, replace(self.status(), unreadable=sum(v[0] for v in per.values()),
                                               images=sum(v[1] for v in per.values())))

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

    def prepare_resume(self) -> list[str]:
        """Before (re)starting, as the run's claimed owner: remove the temporary files a killed
        writer left (a half-written checkpoint can be GBs) and cut a torn last line of
        events.jsonl (a kill mid-append). Returns what it did, for the log."""
        if not self.writer:
            return []
        done = []
        for d in (self.path, self.checkpoints):
            for tmp in sorted(d.glob(".*.tmp")) if d.is_dir() else ():
                if tmp.is_file():
                    tmp.unlink(missing_ok=True)
                    done.append(f"removed the orphan temporary file {tmp.name}")
        if truncate_torn_tail(self.events_path):
            done.append(f"cut a torn last line from {self.events_path.name}")
        repaired = self.repair_events()
        if repaired:
            done.append(repaired)
        for line in done:
            self.log(line)
        return done

    @property
    def is_finished(self) -> bool:
        """Finished and undamaged: a damaged run is resumed, never counted finished."""
        return self.status().state == "finished" and self.damage() is None

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
        except KeyboardInterrupt as e:  # a user's cancel (Ctrl-C, SIGTERM from `jobs cancel`): no traceback
            why = str(e) or "cancelled"
            self.log(why if why.startswith("cancelled") else f"cancelled: {why}")
            self.set_status("cancelled", reason=why)
            raise
        except BaseException as e:
            self.log("failed:\n" + traceback.format_exc())
            self.set_status("failed", reason=f"{type(e).__name__}: {e}")
            raise
