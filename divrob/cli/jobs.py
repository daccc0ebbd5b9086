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


def _progress(v) -> str:
    """'55% ft 2/6' from the monitor's view of a job (`dispatch.monitor`, as the TUI shows it)."""
    parts = [f"{v.percent}%"] if v.percent is not None else []
    if v.epoch_text and v.epoch_text != "done":
        parts.append(v.epoch_text)
    return " ".join(parts) or "-"


def _jobs_table(ws, views) -> Table:
    from divrob.dispatch.monitor import duration

    table = Table(title=f"jobs in {ws.root}")
    table.add_column("job", no_wrap=True)
    for name in ("study", "what"):
        table.add_column(name)
    table.add_column("state", no_wrap=True)
    for name in ("where", "progress", "img/s", "gpu", "elapsed", "ETA", "reason"):
        table.add_column(name, overflow="fold" if name == "reason" else "ellipsis",
                         no_wrap=name in ("progress", "elapsed", "ETA"))
    for v in views:
        gpu = " ".join(x for x in (f"{v.gpu_util:.0f}%" if v.gpu_util is not None else "",
                                   f"{v.gpu_mem:.1f}G" if v.gpu_mem is not None else "") if x) or "-"
        table.add_row(v.job_id[:12], Text(v.study or "-"), Text(v.label), styled(v.state), Text(v.where),
                      _progress(v), "-" if v.images_per_s is None else f"{v.images_per_s:,.0f}", gpu,
                      duration(v.elapsed), duration(v.eta), Text((v.reason or "")[:60]))
    return table


@app.command("ls")
def ls(
    study: Annotated[Optional[str], typer.Option("--study", "-s", help="Study name or recipe file.")] = None,
    state: Annotated[Optional[str], typer.Option("--state", help="queued | running | finished | failed | cancelled")] = None,
    all_: Annotated[bool, typer.Option("--all", "-a", help="Also list manifest builds.")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Redraw every 2 s until Ctrl-C (a live monitor).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the jobs as JSON, nothing else.")] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Every job with its state, progress (% from steps, epoch x/y), images/s, GPU use where the
    run reports it, elapsed time, an ETA from the measured rate and, when it failed, why."""
    from divrob.dispatch.jobs import STATES, live_manager
    from divrob.dispatch.monitor import job_views
    from divrob.errors import UsageError
    from divrob.workspace import EXECUTORS, open_workspace

    if state is not None and state not in STATES:
        raise UsageError(f"--state {state!r}: choose from {', '.join(STATES)}")
    if watch and as_json:
        raise UsageError("--watch and --json do not go together: --json prints once")
    ws = open_workspace(workspace)
    name = _study_name(ws, study)

    def views():
        return job_views(ws, study=name, state=state, include_manifests=all_)

    if as_json:
        import json
        from dataclasses import asdict

        typer.echo(json.dumps([{**asdict(v), "percent": v.percent} for v in views()], indent=2))
        return
    if watch:
        from rich.live import Live

        try:
            with Live(_jobs_table(ws, views()), console=console, auto_refresh=False) as live:
                while True:
                    time.sleep(2)
                    live.update(_jobs_table(ws, views()), refresh=True)
        except KeyboardInterrupt:
            return
    jobs = views()
    console.print(_jobs_table(ws, jobs))
    counts = {s: sum(1 for j in jobs if j.state == s) for s in STATES}
    console.print(", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no jobs")
    _time_left(ws, jobs)
    for e in EXECUTORS:
        info = live_manager(ws, e)
        if info:
            console.print(f"{e} scheduler: pid {info['pid']}" + (" (detached)" if info.get("detached") else ""))


def _time_left(ws, views) -> None:
    """Estimated time left per study with unfinished runs (divrob.dispatch.cost: estimates)."""
    from divrob.dispatch.cost import time_left_lines

    for line in time_left_lines(ws, views):
        console.print(line, highlight=False)


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
