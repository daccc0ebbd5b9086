"""`divrob jobs ls|logs|cancel`: the queue from any shell (never imports torch)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from divrob.cli.common import WorkspaceOpt, console, styled

app = typer.Typer(help="Queued, running and finished jobs of this workspace, from any shell.", no_args_is_help=True)


def _study_name(ws, study: str | None) -> str | None:
    if study and study.endswith(".toml") and Path(study).exists():
        from divrob.recipes.load import load_recipe

        return load_recipe(study).study.name
    return study


def _ago(t: float | None) -> str:
    if not t:
        return "-"
    s = max(0, time.time() - t)
    return f"{s:.0f}s" if s < 90 else (f"{s / 60:.0f}m" if s < 5400 else f"{s / 3600:.1f}h")


def _progress(j) -> str:
    """'ft 2/6 step 40/120 812 img/s' from the job's run progress."""
    p = j.progress
    parts = [p.label()] if p.epoch is not None else []
    if p.step is not None:
        parts.append(f"step {p.step}" + (f"/{p.steps_per_epoch}" if p.steps_per_epoch else ""))
    if p.images_per_s:
        parts.append(f"{p.images_per_s:,.0f} img/s")
    if p.gpu_util is not None:
        parts.append(f"GPU {p.gpu_util:.0f}%" + (f" {p.gpu_mem / 1024:.1f} GiB" if p.gpu_mem is not None else ""))
    return " ".join(parts) or "-"


@app.command("ls")
def ls(
    study: Annotated[Optional[str], typer.Option("--study", "-s", help="Study name or recipe file.")] = None,
    state: Annotated[Optional[str], typer.Option("--state", help="queued | running | finished | failed | cancelled")] = None,
    all_: Annotated[bool, typer.Option("--all", "-a", help="Also list manifest builds.")] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Every job with its state, progress (epoch, step, images/s) and, when it failed, why."""
    from divrob.dispatch.control import list_jobs
    from divrob.dispatch.jobs import STATES, live_manager
    from divrob.errors import DivrobError
    from divrob.workspace import EXECUTORS, open_workspace

    if state is not None and state not in STATES:
        raise DivrobError(f"--state {state!r}: choose from {', '.join(STATES)}")
    ws = open_workspace(workspace)
    jobs = list_jobs(ws, study=_study_name(ws, study), state=state, include_manifests=all_)
    table = Table(title=f"jobs in {ws.root}")
    table.add_column("job", no_wrap=True)
    for name in ("study", "what"):
        table.add_column(name)
    table.add_column("state", no_wrap=True)
    for name in ("where", "tries", "progress", "updated", "reason"):
        table.add_column(name, overflow="fold" if name == "reason" else "ellipsis")
    for j in jobs:
        where = j.external_id or j.slot or j.executor
        table.add_row(j.job_id[:12], Text(j.study or "-"), Text(j.label), styled(j.state), Text(where),
                      str(j.attempts or 0), _progress(j), _ago(j.updated), Text((j.reason or "")[:60]))
    console.print(table)
    counts = {s: sum(1 for j in jobs if j.state == s) for s in STATES}
    console.print(", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no jobs")
    _time_left(ws, jobs)
    for e in EXECUTORS:
        info = live_manager(ws, e)
        if info:
            console.print(f"{e} scheduler: pid {info['pid']}" + (" (detached)" if info.get("detached") else ""))


def _time_left(ws, jobs) -> None:
    """Estimated time left per study with unfinished runs (divrob.dispatch.cost: estimates)."""
    from divrob.dispatch.cost import fmt_hours, time_left

    for study, t in sorted(time_left(ws, jobs).items()):
        console.print(f"time left for {study}: ~{fmt_hours(t['wall_hours'])} ({t['gpu_hours']:,.1f} GPU-h for "
                      f"{t['runs']} unfinished runs, {t['running']} running; an estimate)", highlight=False)


@app.command()
def logs(
    job: Annotated[str, typer.Argument(help="Job / run id (a unique prefix is enough).")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", help="Lines of each log to show.")] = 40,
    workspace: WorkspaceOpt = None,
) -> None:
    """A job's state, its failure reason, and the end of its logs."""
    from divrob.dispatch.control import find_job, log_paths
    from divrob.dispatch.jobs import ACTIVE, log_tail
    from divrob.workspace import open_workspace

    ws = open_workspace(workspace)
    j = find_job(ws, job)
    line = Text(f"job {j.job_id} ({j.label or j.kind}): ").append_text(styled(j.state))
    console.print(line.append(f" — {j.reason}" if j.reason else ""), highlight=False)
    paths = [p for p in log_paths(ws, j) if p.exists()]
    if not paths:
        console.print("[dim]no log yet[/]")
    for p in paths:
        console.rule(str(p), style="dim")
        console.out(log_tail(p, lines), highlight=False)
    if not follow:
        return
    paths = log_paths(ws, j)  # follow also the logs that do not exist yet
    sizes = {p: p.stat().st_size if p.exists() else 0 for p in paths}
    try:
        while find_job(ws, j.job_id).state in ACTIVE:
            time.sleep(0.5)
            for p in paths:
                size = p.stat().st_size if p.exists() else 0
                if size > sizes[p]:
                    with open(p, "rb") as f:
                        f.seek(sizes[p])
                        console.out(f.read().decode(errors="replace"), end="", highlight=False)
                    sizes[p] = size
    except KeyboardInterrupt:
        pass
    console.print(f"job {j.job_id}: {find_job(ws, j.job_id).state}")


@app.command()
def cancel(
    job: Annotated[Optional[str], typer.Argument(help="Job / run id or unique prefix.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Cancel every queued or running job.")] = False,
    study: Annotated[Optional[str], typer.Option("--study", "-s", help="With --all: only this study's jobs.")] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Cancel a job (or all); `divrob study retry FILE` queues cancelled jobs again."""
    from divrob.dispatch.control import cancel as cancel_jobs
    from divrob.dispatch.control import find_job
    from divrob.errors import DivrobError
    from divrob.workspace import open_workspace

    if (job is None) == (not all_):
        raise DivrobError("name one job to cancel, or pass --all")
    ws = open_workspace(workspace)
    ids = cancel_jobs(ws, None, _study_name(ws, study)) if all_ else cancel_jobs(ws, find_job(ws, job).job_id)
    console.print(f"cancelling {len(ids)} job(s)" + (": " + ", ".join(ids[:10]) if ids else ""))
