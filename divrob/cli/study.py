"""`divrob study plan|run|retry`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from divrob.cli.common import JsonOpt, RichReporter, WorkspaceOpt, console, print_json, styled

app = typer.Typer(help="Plan and run the (distribution x architecture x seed) grid of a recipe.", no_args_is_help=True)

FileArg = Annotated[Path, typer.Argument(help="A recipe .toml file.")]
ExecutorOpt = Annotated[Optional[str], typer.Option(
    "--executor", "-e", help=r"inline | local | submitit-local | slurm (default: \[executor] default in divrob.toml).")]
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

@app.command()
def plan(
    file: FileArg, as_json: JsonOpt = False,
    gpus: Annotated[int, typer.Option("--gpus", min=1, help="GPUs to spread the estimated wall time over.")] = 1,
    gpu_model: Annotated[Optional[str], typer.Option("--gpu-model", help="Use throughputs `divrob bench train` measured on this GPU model.")] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Every job the study needs, its dependencies, what `study run` will do with it, and its estimated cost."""
    from divrob.dispatch.launch import preview_with_cost
    from divrob.workspace import open_workspace

    ws = open_workspace(workspace)
    if as_json:
        from divrob.progress import SILENT

        study, rows, cost = preview_with_cost(ws, file, SILENT, gpus, gpu_model)
        print_json({"study": study, "jobs": rows, "cost": cost.to_json() if cost is not None else None})
        return
    with RichReporter() as reporter:
        study, rows, cost = preview_with_cost(ws, file, reporter, gpus, gpu_model)
    generate_first = any(r["kind"] == "generate" for r in rows)
    table = Table(title=f"{study}: generation comes first" if generate_first else f"{study}: {len(rows)} jobs")
    table.add_column("job", no_wrap=True)
    table.add_column("kind")
    table.add_column("what")
    if not generate_first:  # generation waits for nothing
        table.add_column("after", overflow="fold")
    table.add_column("state", no_wrap=True)
    for r in rows:
        state = styled(r["state"])
        if r["reason"]:
            state.append(f"\n{r['reason'][:80]}", style="dim")
        after = [] if generate_first else [", ".join(r["deps"]) or "-"]
        table.add_row(r["job"], r["kind"], Text(r["label"]), *after, state)
    console.print(table)
    if generate_first:
        console.print("its manifests and runs are planned once these finish (`divrob study run` does both)")
        return
    runs = [r for r in rows if r["kind"] != "manifest"]
    precisions = sorted({r["precision"] for r in runs if r.get("precision")})
    if precisions:
        console.print(f"precision: {'; '.join(precisions)}", highlight=False)
    todo = sum(1 for r in runs if not r["state"].startswith("finished"))
    console.print(f"{todo} of {len(runs)} runs to do; finished runs are never redone")
    for line in cost.lines() if cost is not None else []:
        console.print(Text(line))


def _options(**kw) -> dict:
    return {k: v for k, v in kw.items() if v is not None}


def _launch(file: Path, workspace, executor, detach: bool, retry: bool, opts: dict) -> None:
    from divrob.dispatch.launch import LaunchRequest, launch_study

    request = LaunchRequest(file, workspace, executor, retry=retry, detach=detach, options=opts)
    with RichReporter() as reporter:
        out = launch_study(request, reporter)
    for line in out.summary():
        console.print(styled(line))
    if out.failed:
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
        _launch(file, workspace, executor, detach, retry, _options(
            slots_per_gpu=slots_per_gpu, cpu_slots=cpu_slots, on_lost=on_lost, partition=partition, account=account,
            qos=qos, gpus_per_run=gpus, nodes_per_run=nodes, cpus_per_gpu=cpus_per_gpu, mem_gb=mem_gb,
            time_min=time_min, array_parallelism=array_parallelism))

    command.__doc__ = doc
    return command


app.command("run")(_study_command(
    False, "Build manifests, then run every unfinished run (failed ones resume; cancelled ones wait for `study retry`)."))
app.command("retry")(_study_command(
    True, "Re-queue the study's failed and cancelled jobs (they resume from their last checkpoint)."))
