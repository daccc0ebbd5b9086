"""`divrob bench train`: end-to-end vs model-bound training throughput on this machine."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from divrob.cli.common import console, one_of
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
) -> None:
    """Images/s end-to-end (synthetic JPEGs on disk through divrob's data path and training loop)
    and model-bound (random tensors already on the device), and their ratio."""
    from divrob.cli.common import RichReporter
    from divrob.train.bench import bench_train

    with RichReporter() as reporter:
        result = bench_train(arch, res, batch, steps, device, compile, reporter, phase=phase)
    for line in result.lines():
        console.print(line, highlight=False, soft_wrap=True)
