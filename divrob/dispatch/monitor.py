"""What a job monitor shows of each job, computed once for the TUI's Jobs screen and
`divrob jobs ls` (`--watch`): progress from steps, a percentage, epoch x/y, throughput, GPU
samples where the run reports them, elapsed time and an ETA from the measured rate.

The ETA divides the work left by the rate measured up to the run's last progress report (not up
to now, which would make it grow while no report arrives), minus the time since that report.
A run that stopped early (cancelled, failed) never reads as complete."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from divrob.dispatch.jobs import Job
from divrob.states import RUNDIR_KINDS
from divrob.workspace import Workspace

NOT_DONE_CAP = 0.99  # the most a run that did not finish can show


@dataclass(frozen=True)
class JobView:
    job_id: str
    kind: str
    study: str
    label: str
    state: str
    executor: str
    slot: str
    where: str  # the SLURM / submitit id, else the slot, else the executor
    phase: str
    epoch_text: str  # "ft 2/6", "pre 3/90", "done", or ""
    fraction: float | None  # of the whole run (pre-training + fine-tuning), steps included
    images_per_s: float | None
    gpu_util: float | None  # percent, where the run reports it
    gpu_mem: float | None  # GiB, where the run reports it
    elapsed: float | None
    eta: float | None
    reason: str
    updated: float | None

    @property
    def percent(self) -> int | None:
        return None if self.fraction is None else int(self.fraction * 100)


def run_epochs(ws: Workspace, run_id: str) -> tuple[int, int] | None:
    """(pre-training epochs, fine-tuning epochs) from the run's spec.json."""
    try:
        spec = json.loads((ws.runs / run_id / "spec.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    pre = (spec.get("pretrain") or {}).get("epochs") or 0
    fine = (spec.get("finetune") or {}).get("epochs") or 0
    return (int(pre), int(fine)) if pre or fine else None


def eta_of(fraction: float | None, started: float | None, reported: float | None, now: float) -> float | None:
    """Seconds left: the rate measured from the start to the last report, applied to the work
    left, less the time since that report (never below zero)."""
    if fraction is None or started is None or not 0 < fraction < 1:
        return None
    at = min(reported if reported is not None else now, now)
    spent = at - started
    if spent <= 0:
        return None
    return max(0.0, spent * (1 - fraction) / fraction - (now - at))


def job_view(ws: Workspace, j: Job, now: float | None = None) -> JobView:
    now = time.time() if now is None else now
    p = j.progress
    fraction = None
    if j.state == "finished":
        fraction = 1.0
    elif j.kind in RUNDIR_KINDS:
        total = run_epochs(ws, j.job_id)
        fraction = p.run_fraction(*total) if total else None
        if fraction is not None and (j.state != "running" or fraction >= 1.0):
            fraction = min(fraction, NOT_DONE_CAP)  # a run that stopped (or is saving) is not complete
    elapsed = max(0.0, (j.ended or now) - j.started) if j.started else None
    eta = eta_of(fraction, j.started, p.updated, now) if j.state == "running" else None
    return JobView(j.job_id, j.kind, j.study or "", j.label or j.kind, j.state, j.executor, j.slot or "-",
                   j.external_id or j.slot or j.executor, p.phase or "", "done" if j.state == "finished" else p.label(), fraction, p.images_per_s,
                   p.gpu_util, None if p.gpu_mem is None else p.gpu_mem / 1024, elapsed, eta, j.reason or "",
                   j.updated)


def job_views(ws: Workspace, *, study: str | None = None, state: str | None = None,
              include_manifests: bool = False, now: float | None = None) -> list[JobView]:
    from divrob.dispatch.control import list_jobs

    now = time.time() if now is None else now
    return [job_view(ws, j, now) for j in list_jobs(ws, study=study, state=state, include_manifests=include_manifests)]


def duration(s: float | None) -> str:
    """'4:05', '2h07', or '-'."""
    if s is None:
        return "-"
    s = int(s)
    if s < 3600:
        return f"{s // 60}:{s % 60:02d}"
    return f"{s // 3600}h{s % 3600 // 60:02d}"
