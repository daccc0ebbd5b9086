"""`divrob bench train`: end-to-end vs model-bound training throughput on this machine."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from divrob.cli.common import WorkspaceOpt, console, one_of
from divrob.train.bench import PHASES

app = typer.Typer(help="Measure speed on this machine.", no_args_is_help=True)


@app.command("train")
def train(
    arch: Annotated[str, typer.Option(help="Architecture (see `divrob models`).")] = "resnet50",
    res: Annotated[int, typer.Option(help="Image size in px.")] = 224,
    batch: Annotated[Optional[int], typer.Option(min=1, help="Batch size (default: 256 on CUDA, 64 at >= 448 px; 16 on CPU).")] = None,
    steps: Annotated[Optional[int], typer.Option(min=1, help="Timed steps (default: 30 on CUDA, 5 on CPU).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the model (CUDA only).")] = False,
    phase: Annotated[str, typer.Option(callback=one_of(PHASES),
        help="pretrain: RandomResizedCrop + flip over 4:3 frames; finetune: whole 16:9 frames, no augmentation.")] = "pretrain",
    workspace: WorkspaceOpt = None,
) -> None:
    """Images/s end-to-end (synthetic JPEGs on disk through divrob's data path and training loop)
    and model-bound (random tensors already on the device), and their ratio."""
    from divrob.cli.common import RichReporter
    from divrob.train.bench import bench_train

    with RichReporter() as reporter:
        result = bench_train(arch, res, batch, steps, device, compile, reporter, phase=phase)
    for line in result.lines():
        console.print(line, highlight=False, soft_wrap=True)
    _store(result, workspace)


def _store(result, workspace) -> None:
    """Keep the end-to-end rate for `study plan`'s cost estimates, per (GPU model, arch, resolution)."""
    from divrob.dispatch.cost import record_throughput, throughput_path
    from divrob.errors import WorkspaceError
    from divrob.workspace import open_workspace

    try:
        ws = open_workspace(workspace)
    except WorkspaceError:
        console.print("not stored for `study plan` estimates: no workspace here (pass --workspace)")
        return
    gpu = result.device.split("(", 1)[1].rstrip(")") if "(" in result.device else "cpu"
    record_throughput(ws, gpu, result.arch, result.res, result.phase, result.end_to_end)
    console.print(f"stored in {throughput_path(ws)} for `divrob study plan` ({gpu}, {result.arch} @ {result.res} px)",
                  highlight=False)
