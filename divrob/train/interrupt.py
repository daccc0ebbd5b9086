"""Stop requests: a signal asks training to stop at its next step, after a checkpoint.

SLURM warns a job before its time limit (sbatch `--signal=USR2@N`) and sends SIGTERM when the
limit is reached or the job is preempted or cancelled (then SIGKILL after `KillWait`). A job that
listens (`listen`) has its handler set one process-wide flag and return; the training loop checks
the flag once per step, writes its mid-epoch checkpoint and raises `StopRequested`, so the job
exits cleanly at a point it resumes from exactly. Nothing here imports torch.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class StopRequest:
    signal: str  # e.g. "SIGUSR2"
    at: float  # time.time() when the first signal arrived


_request: StopRequest | None = None


class StopRequested(Exception):
    """Training stopped on request after writing a checkpoint at (phase, epoch, step): resumable,
    not a failure. `epoch` is the epoch in progress, `step` the steps of it already done."""

    def __init__(self, request: StopRequest, phase: str, epoch: int, step: int):
        self.request, self.phase, self.epoch, self.step = request, phase, epoch, step
        super().__init__(f"stopped on {request.signal} at {phase} epoch {epoch} step {step} (checkpoint written)")


def request_stop(signum: int | str = "request") -> None:
    """Ask the training loop to stop at its next step (the first request's time is kept)."""
    global _request
    if _request is None:
        name = signal.Signals(signum).name if isinstance(signum, int) else str(signum)
        _request = StopRequest(name, time.time())


def stop_requested() -> StopRequest | None:
    return _request


def clear() -> None:
    global _request
    _request = None


def _handler(signum, frame) -> None:
    request_stop(signum)


def listen(signals: tuple[int, ...]) -> None:
    """From now on these signals request a stop instead of their usual effect (main thread only)."""
    clear()
    for s in signals:
        signal.signal(s, _handler)


def stop_here(phase: str, epoch: int, step: int, agree: Callable[[bool], bool] = bool) -> None:
    """Raise StopRequested if a stop was requested; the training loop calls it right after a
    checkpoint of (phase, epoch, step). `agree` makes the ranks of a DDP run decide together (an
    all-reduce of the flag): every rank stops at the same step, also those that got no signal."""
    if agree(_request is not None):
        request_stop("a stop request of another rank")  # kept only if this rank has none of its own
        raise StopRequested(_request, phase, epoch, step)
