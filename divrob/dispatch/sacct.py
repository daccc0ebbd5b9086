"""What SLURM says about divrob's jobs, asked politely.

One `sacct` call covers every tracked job (array tasks are asked for by their array's id), spaced
out with back-off: soon after a submission or a change, then doubling up to `[slurm] poll_s`
while nothing changes. When accounting does not answer, `squeue --states=all` stands in (it
knows running jobs and those ended in the last `MinJobAge`); when neither knows a job, the caller
decides how long to wait. Before divrob submits, `check_cluster` makes sure the commands exist and
accounting answers, and reads the cluster's array limits from `scontrol show config`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from divrob.errors import DivrobError

Runner = Callable[[list[str]], str]  # runs a command, returns stdout, raises CommandFailed

COMMAND_TIMEOUT_S = 60.0
DEFAULT_MAX_ARRAY_SIZE = 1001  # SLURM's default MaxArraySize

ACTIVE_STATES = ("PENDING", "RUNNING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "SUSPENDED",
                 "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING", "RESV_DEL_HOLD", "SPECIAL_EXIT")
RUNNING_STATES = ("RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING", "SUSPENDED")


class CommandFailed(Exception):
    pass


def run_command(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as e:
        raise CommandFailed(f"`{' '.join(cmd[:2])}` could not run: {e}") from None
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()
        raise CommandFailed(f"`{' '.join(cmd[:2])}` failed: {why[-1] if why else f'exit status {done.returncode}'}")
    return done.stdout


@dataclass(frozen=True)
class JobInfo:
    state: str  # the first word of SLURM's state: RUNNING, TIMEOUT, CANCELLED (from "CANCELLED by 0") ...
    elapsed_s: int | None = None  # seconds it ran (sacct's ElapsedRaw); None when squeue answered

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES


def expand_job_id(field: str) -> list[str]:
    """Job ids in one sacct/squeue id field: "12", "12_3", or a pending array's "12_[4-6,9%2]"."""
    m = re.fullmatch(r"(\d+)_\[([\d,\-]+)(?:%\d+)?\]", field)
    if m is None:
        return [field] if re.fullmatch(r"\d+(_\d+)?", field) else []  # steps ("12.batch"), het jobs ("12+0")
    out = []
    for part in m.group(2).split(","):
        lo, _, hi = part.partition("-")
        out += [f"{m.group(1)}_{k}" for k in range(int(lo), int(hi or lo) + 1)]
    return out


def parse_table(text: str, with_elapsed: bool) -> dict[str, JobInfo]:
    """`-n -P` output of `sacct -o JobID,State,ElapsedRaw` or `squeue -o %i|%T` by job id."""
    out: dict[str, JobInfo] = {}
    for line in text.splitlines():
        cols = line.strip().split("|")
        if len(cols) < 2 or not cols[1].strip():
            continue
        state = cols[1].split()[0].upper()
        elapsed = int(cols[2]) if with_elapsed and len(cols) > 2 and cols[2].strip().isdigit() else None
        for job_id in expand_job_id(cols[0].strip()):
            out[job_id] = JobInfo(state, elapsed)
    return out


def _base_ids(ids: Iterable[str]) -> list[str]:
    return sorted({i.split("_")[0] for i in ids}, key=int)


class StatePoller:
    """States of SLURM jobs: one sacct call per poll for all of them, with back-off."""

    def __init__(self, min_s: float, max_s: float, run: Runner = run_command,
                 clock: Callable[[], float] = time.monotonic):
        self.min_s, self.max_s = min(min_s, max_s), max_s
        self.run, self.clock = run, clock
        self.interval = self.min_s
        self.next_at = 0.0
        self.last: dict[str, JobInfo] = {}
        self.source = "sacct"  # or "squeue" while accounting does not answer
        self.error: str | None = None  # why sacct did not answer, last time it did not

    def kick(self) -> None:
        """Poll at the next chance and then often again (after a submission or a cancel)."""
        self.interval, self.next_at = self.min_s, 0.0

    def due(self) -> bool:
        return self.clock() >= self.next_at

    def poll(self, ids: Iterable[str]) -> dict[str, JobInfo]:
        """The states of `ids` that SLURM knows (jobs it has forgotten are absent)."""
        ids = sorted(set(ids))
        if not ids:
            return {}
        bases = _base_ids(ids)
        try:
            got = parse_table(self.run(["sacct", "-X", "-n", "-P", "-o", "JobID,State,ElapsedRaw",
                                        "-j", ",".join(bases)]), with_elapsed=True)
            self.source, self.error = "sacct", None
        except CommandFailed as e:
            got, self.source, self.error = {}, "squeue", str(e)
        missing = [i for i in ids if i not in got]
        if missing:  # accounting is down, or has not heard of a new job yet
            try:
                text = self.run(["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T", "-j", ",".join(_base_ids(missing))])
                queued = parse_table(text, with_elapsed=False)
                got.update({i: queued[i] for i in missing if i in queued})
            except CommandFailed as e:  # "Invalid job id specified": none of them is known any more
                if "invalid job id" not in str(e).lower():
                    self.error = f"{self.error}; {e}" if self.error else str(e)
        states = {i: got[i] for i in ids if i in got}
        changed = any(self.last.get(i) != s for i, s in states.items()) or len(states) != len(self.last)
        self.interval = self.min_s if changed else min(self.max_s, self.interval * 2)
        self.next_at = self.clock() + self.interval
        self.last = states
        return states


@dataclass(frozen=True)
class ClusterLimits:
    max_array_size: int  # tasks in one array (indices 0 .. MaxArraySize - 1)


def check_cluster(run: Runner = run_command) -> ClusterLimits:
    """Fail now, with what to do, if this machine cannot submit to SLURM or SLURM keeps no accounts."""
    missing = [c for c in ("sbatch", "sacct", "squeue", "scancel", "scontrol", "srun") if shutil.which(c) is None]
    if missing:
        raise DivrobError(f"--executor slurm: {', '.join(missing)} not found on PATH; run divrob on a login node "
                          f"of your SLURM cluster, or choose --executor local")
    try:
        run(["sacct", "-X", "-n", "-P", "-o", "JobID", "-j", "1"])
    except CommandFailed as e:
        raise DivrobError(f"--executor slurm: SLURM accounting does not answer ({e}); divrob follows its jobs "
                          f"with sacct, which needs slurmdbd (AccountingStorageType=accounting_storage/slurmdbd). "
                          f"Ask your administrators to enable accounting, or use --executor local") from None
    try:
        config = run(["scontrol", "show", "config"])
    except CommandFailed as e:
        raise DivrobError(f"--executor slurm: cannot read the cluster's configuration ({e})") from None
    return ClusterLimits(max_array_size=max_array_size(config))


def max_array_size(config: str) -> int:
    """Tasks one array may hold, from `scontrol show config`: MaxArraySize, and max_array_tasks in
    SchedulerParameters if that is smaller."""
    m = re.search(r"^MaxArraySize\s*=\s*(\d+)", config, re.M)
    size = int(m.group(1)) if m else DEFAULT_MAX_ARRAY_SIZE
    m = re.search(r"^SchedulerParameters\s*=.*\bmax_array_tasks=(\d+)", config, re.M)
    if m:
        size = min(size, int(m.group(1)))
    return max(1, size)  # 0 disables arrays: then every job is submitted on its own
