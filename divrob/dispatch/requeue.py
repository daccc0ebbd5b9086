"""When a SLURM job ends without finishing its run: resubmit it (it resumes from the run's last
checkpoint), or give up with the reason.

An ending is one of three kinds. A *time-out*: the job stopped itself on SLURM's time-limit
warning or at the limit, or SLURM killed it (TIMEOUT); these count against `[slurm]
max_num_timeout`. A *preemption* (PREEMPTED) never counts. Anything else without a result is
*lost* (NODE_FAIL, BOOT_FAIL, OUT_OF_MEMORY, a vanished process) and counts against `[executor]
max_requeues`. A job with no window to work in (stopped within NO_WINDOW_S of its start, or timed
out without writing a checkpoint or an epoch) on NO_WINDOW_STARTS starts in a row fails with that
reason instead of being resubmitted forever.

The counts live in `<workspace>/logs/submitit/requeues.json` (written by the one manager of the
workspace's SLURM queue), so a restarted manager goes on counting; a job's entry goes when it ends.
It also holds each job's last submission, written right after sbatch: a manager killed before the
store heard of the job id lets the next one follow that job instead of submitting it twice.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from divrob.fileio import write_json_atomic

# slurmctld checks time limits about every 30 s, so a warning can come up to 30 s early; a job
# stopped within 45 s of its start had no useful window (the case: 1-10 s, every start)
NO_WINDOW_S = 45.0
NO_WINDOW_STARTS = 2
TIME_OUT, PREEMPTION, LOST = "time-out", "preemption", "lost"


@dataclass(frozen=True)
class Ending:
    kind: str  # TIME_OUT | PREEMPTION | LOST
    detail: str  # what happened, for the reason and the run's log
    window_s: float | None = None  # seconds between the job's start and its stop (or its end)
    progressed: bool | None = None  # did the run write a checkpoint or an epoch meanwhile (None: unknown)

    @property
    def no_window(self) -> bool:
        return self.kind == TIME_OUT and (
            (self.window_s is not None and self.window_s < NO_WINDOW_S) or self.progressed is False)


@dataclass
class History:
    timeouts: int = 0
    preemptions: int = 0
    lost: int = 0
    no_window: list[str] = field(default_factory=list)  # the last starts in a row that had no window


@dataclass(frozen=True)
class Limits:
    max_requeues: int  # [executor] max_requeues: lost jobs
    max_timeouts: int  # [slurm] max_num_timeout
    time_min: int
    warning_lead_s: int


@dataclass(frozen=True)
class Decision:
    requeue: bool
    reason: str


def decide(history: History, ending: Ending, limits: Limits) -> Decision:
    """Count `ending` in `history` (updated in place) and say whether to resubmit, and why."""
    if ending.kind == PREEMPTION:
        history.preemptions += 1
        return Decision(True, f"{ending.detail}; resubmitted (preemptions do not count against the limits)")
    if ending.kind == LOST:
        history.lost += 1
        if history.lost > limits.max_requeues:
            return Decision(False, f"lost: {ending.detail}; requeue limit reached "
                                   f"([executor] max_requeues = {limits.max_requeues})")
        return Decision(True, f"{ending.detail}; resubmitted (lost {history.lost} of at most {limits.max_requeues})")
    if ending.no_window:
        window = f"{ending.window_s:.0f} s" if ending.window_s is not None else "?"
        history.no_window.append(f"stopped {window} after it started" if ending.progressed is not False
                                 else f"ran {window} without writing a checkpoint or an epoch")
        if len(history.no_window) >= NO_WINDOW_STARTS:
            return Decision(False, (
                f"no window to work: on its last {len(history.no_window)} starts the job "
                f"{'; then '.join(history.no_window[-NO_WINDOW_STARTS:])} (time limit {limits.time_min} min, "
                f"warning {limits.warning_lead_s} s before it; SLURM checks limits only every 30 s or so, so "
                f"the warning may come that much earlier). Raise time_min or lower warning_lead_s under [slurm] "
                f"in divrob.toml, then `divrob study retry`"))
    else:
        history.no_window.clear()
    history.timeouts += 1
    if history.timeouts > limits.max_timeouts:
        return Decision(False, f"{ending.detail}; timed out {history.timeouts} times, more than [slurm] "
                               f"max_num_timeout = {limits.max_timeouts}: raise time_min")
    return Decision(True, f"{ending.detail}; resubmitted (time-out {history.timeouts} of at most "
                          f"{limits.max_timeouts})")


class RequeueLedger:
    """Per divrob job: its History and what it looked like when last submitted."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.entries: dict[str, dict] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.entries = {}

    def history(self, job_id: str) -> History:
        h = self.entries.get(job_id, {}).get("history", {})
        return History(**{k: v for k, v in h.items() if k in History.__dataclass_fields__})

    def submitted(self, job_id: str) -> dict:
        """What `note_submission` recorded: {"at": time, "external_id": the scheduler's job id,
        "progress": the run's fingerprint then}; {} once the job is to be submitted again."""
        return self.entries.get(job_id, {}).get("submitted", {})

    def note_submission(self, job_id: str, at: float, external_id: str, progress) -> None:
        self.entries.setdefault(job_id, {})["submitted"] = {"at": at, "external_id": external_id, "progress": progress}

    def to_submit_again(self, job_id: str) -> None:
        self.entries.get(job_id, {}).pop("submitted", None)

    def record(self, job_id: str, history: History) -> None:
        self.entries.setdefault(job_id, {})["history"] = asdict(history)

    def forget(self, job_id: str) -> None:
        self.entries.pop(job_id, None)

    def save(self) -> None:
        write_json_atomic(self.path, self.entries)
