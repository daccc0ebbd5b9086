"""`divrob study plan|run|retry`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from divrob.cli.common import RichReporter, WorkspaceOpt, console

app = typer.Typer(help="Plan and run the (distribution x architecture x seed) grid of a recipe.", no_args_is_help=True)

FileArg = Annotated[Path, typer.Argument(help="A recipe .toml file.")]
ExecutorOpt = Annotated[Optional[str], typer.Option(
    "--executor", "-e", help="inline | local | submitit-local | slurm (default: [executor] default in divrob.toml).")]
SlotsPerGpuOpt = Annotated[Optional[int], typer.Option(help="local: jobs sharing one GPU.", min=1)]
CpuSlotsOpt = Annotated[Optional[int], typer.Option(help="local: job slots when no GPU is visible; submitit-local: jobs at once.", min=1)]
DetachOpt = Annotated[bool, typer.Option("--detach", "-d", help="Hand the queue to a background scheduler and return; it survives logout.")]
OnLostOpt = Annotated[Optional[str], typer.Option(help="A job whose process vanished: fail | requeue.")]
PartitionOpt = Annotated[Optional[str], typer.Option(help="slurm: partition.", rich_help_panel="SLURM")]
AccountOpt = Annotated[Optional[str], typer.Option(help="slurm: account.", rich_help_panel="SLURM")]
QosOpt = Annotated[Optional[str], typer.Option(help="slurm: QOS.", rich_help_panel="SLURM")]
GpusOpt = Annotated[Optional[int], typer.Option("--gpus", help="slurm: GPUs per run (DDP tasks per node).", rich_help_panel="SLURM", min=0)]
NodesOpt = Annotated[Optional[int], typer.Option("--nodes", help="slurm: nodes per run.", rich_help_panel="SLURM", min=1)]
CpusOpt = Annotated[Optional[int], typer.Option("--cpus-per-gpu", help="slurm: CPUs per task.", rich_help_panel="SLURM", min=1)]
MemOpt = Annotated[Optional[int], typer.Option("--mem-gb", help="slurm: memory per node, GB.", rich_help_panel="SLURM", min=0)]
TimeOpt = Annotated[Optional[int], typer.Option("--time-min", help="slurm: time limit per job, minutes.", rich_help_panel="SLURM", min=1)]
ParOpt = Annotated[Optional[int], typer.Option("--array-parallelism", help="slurm: array tasks at once.", rich_help_panel="SLURM", min=1)]

STATE_STYLE = {"finished": "green", "built": "green", "failed": "red", "cancelled": "yellow", "running": "cyan",
               "partly": "cyan", "queued": "blue"}


@app.command()
def plan(file: FileArg, workspace: WorkspaceOpt = None) -> None:
    """Every job the study needs, its dependencies, and what `study run` will do with it."""
    from divrob.dispatch.study import plan_rows
    from divrob.recipes.load import load_recipe
    from divrob.sources.generators import generation_job_id, pending_generations
    from divrob.runs.grid import plan_study
    from divrob.workspace import open_workspace

    ws = open_workspace(workspace)
    rec = load_recipe(file)
    gens = pending_generations(ws, rec)
    if gens:
        table = Table("job", "kind", "what", "state", title=f"{rec.study.name}: generation comes first")
        for g in gens:
            table.add_row(generation_job_id(g), "generate", f"generate {g['generator']}", "to run")
        console.print(table)
        console.print("its manifests and runs are planned once these finish (`divrob study run` does both)")
        return
    with RichReporter() as reporter:
        p = plan_study(ws, rec, reporter)
    rows = plan_rows(ws, p)
    table = Table(title=f"{rec.study.name}: {len(rows)} jobs")
    table.add_column("job", no_wrap=True)
    table.add_column("kind")
    table.add_column("what")
    table.add_column("after", overflow="fold")
    table.add_column("state", no_wrap=True)
    for r in rows:
        style = STATE_STYLE.get(r["state"].split()[0], "")
        state = f"[{style}]{r['state']}[/]" if style else r["state"]
        if r["reason"]:
            state += f"\n[dim]{r['reason'][:80]}[/]"
        table.add_row(r["job"], r["kind"], r["label"], ", ".join(r["deps"]) or "-", state)
    console.print(table)
    from divrob.runs.spec import precision_summary

    console.print(f"precision: {precision_summary(pr.spec for pr in p.runs)}", highlight=False)
    todo = sum(1 for r in rows if r["kind"] != "manifest" and not r["state"].startswith("finished"))
    console.print(f"{todo} of {sum(1 for r in rows if r['kind'] != 'manifest')} runs to do; finished runs are never redone")


def _options(**kw) -> dict:
    return {k: v for k, v in kw.items() if v is not None}


def _dispatch(file: Path, workspace, executor, detach: bool, retry: bool, opts: dict) -> None:
    from divrob.cli.basics import _summary
    from divrob.dispatch.generation import detach_study, run_generations
    from divrob.dispatch.inline import run_study
    from divrob.dispatch.study import dispatch_study
    from divrob.sources.generators import pending_generations
    from divrob.errors import DivrobError
    from divrob.recipes.load import load_recipe
    from divrob.runs.grid import plan_study
    from divrob.workspace import EXECUTORS, open_workspace

    ws = open_workspace(workspace)
    executor = executor or ws.config.executor.default
    if retry and executor == "inline":  # retrying needs the queue; inline has none
        executor = "local"
    if executor not in EXECUTORS:
        raise DivrobError(f"--executor {executor!r}: choose from {', '.join(EXECUTORS)}")
    if opts.get("on_lost") not in (None, "fail", "requeue"):
        raise DivrobError(f"--on-lost {opts['on_lost']!r}: choose fail or requeue")
    rec = load_recipe(file)
    gens = pending_generations(ws, rec)
    if gens and executor != "inline":
        if detach:
            pid, log = detach_study(ws, file, executor, opts, retry)
            console.print(f"the study first generates {', '.join(g['generator'] for g in gens)}; it runs in the "
                          f"background (pid {pid}, log {log}) and then queues its runs on {executor}")
            console.print("watch with `divrob jobs ls`; it keeps running after you log out")
            return
        with RichReporter() as reporter:
            run_generations(ws, rec.study.name, gens, executor, opts, reporter)
    if executor == "inline":
        if detach:
            raise DivrobError("--detach needs a queue: use --executor local, submitit-local or slurm")
        with RichReporter() as reporter:
            outcome = run_study(ws, rec, reporter)
        _summary(outcome)
        if outcome.failed:
            raise typer.Exit(1)
        return
    with RichReporter() as reporter:
        p = plan_study(ws, rec, reporter)
        out = dispatch_study(ws, p, executor, opts, detach=detach, retry=retry, reporter=reporter)
    n = sum(1 for j in p.jobs() if j.kind != "manifest")
    if detach:
        pid = (out.manager or {}).get("pid")
        console.print(f"{n} runs: {len(out.queued)} queued on {executor}, {len(out.skipped)} already finished, "
                      f"{len(out.waiting)} already queued or running; scheduler pid {pid}, log in "
                      f"{ws.root / 'logs' / f'scheduler-{executor}.log'}")
        console.print("watch with `divrob jobs ls`; it keeps running after you log out")
        return
    mine = [out.states[j] for j in out.queued + out.waiting if j in out.states]
    finished = sum(1 for j in mine if j.state == "finished")
    failed = [j for j in mine if j.state == "failed"]
    cancelled = sum(1 for j in mine if j.state == "cancelled")
    console.print(f"{n} runs: {finished} trained, {len(out.skipped)} already finished, {len(failed)} failed, "
                  f"{cancelled} cancelled" + (f", {len(mine) - finished - len(failed) - cancelled} still queued or running"
                                              if len(mine) > finished + len(failed) + cancelled else ""))
    for j in failed:
        console.print(f"[red]failed[/] {j.job_id} {j.label}: {j.reason} (`divrob jobs logs {j.job_id[:8]}`)")
    if failed:
        raise typer.Exit(1)


def _study_command(retry: bool, doc: str):
    """`study run` and `study retry` take the same options and differ only in what they queue."""

    def command(
        file: FileArg, workspace: WorkspaceOpt = None, executor: ExecutorOpt = None,
        slots_per_gpu: SlotsPerGpuOpt = None, cpu_slots: CpuSlotsOpt = None, detach: DetachOpt = False,
        on_lost: OnLostOpt = None, partition: PartitionOpt = None, account: AccountOpt = None, qos: QosOpt = None,
        gpus: GpusOpt = None, nodes: NodesOpt = None, cpus_per_gpu: CpusOpt = None, mem_gb: MemOpt = None,
        time_min: TimeOpt = None, array_parallelism: ParOpt = None,
    ) -> None:
        _dispatch(file, workspace, executor, detach, retry, _options(
            slots_per_gpu=slots_per_gpu, cpu_slots=cpu_slots, on_lost=on_lost, partition=partition, account=account,
            qos=qos, gpus_per_run=gpus, nodes_per_run=nodes, cpus_per_gpu=cpus_per_gpu, mem_gb=mem_gb,
            time_min=time_min, array_parallelism=array_parallelism))

    command.__doc__ = doc
    return command


app.command("run")(_study_command(
    False, "Build manifests, then run every unfinished run (failed ones resume; cancelled ones wait for `study retry`)."))
app.command("retry")(_study_command(
    True, "Re-queue the study's failed and cancelled jobs (they resume from their last checkpoint)."))
