"""`divrob generate fractaldb|diffusion`: synthetic pre-training sources."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from divrob.cli.common import RichReporter, WorkspaceOpt, console
from divrob.sources import fractaldb_1k as fdb

app = typer.Typer(help="Generate synthetic pre-training sources (FractalDB, Stable Diffusion images).",
                  no_args_is_help=True)

OutOpt = Annotated[Optional[Path], typer.Option(
    "--out", "-o", help="Directory to write (default: the source's root in divrob.toml, else <workspace>/data/<source>).")]
DeviceOpt = Annotated[Optional[str], typer.Option(
    help="cpu, cuda, cuda:N or auto (default: [compute] device in divrob.toml).")]


def _root(workspace, out: Optional[Path], name: str):
    from divrob.sources import generated_root
    from divrob.workspace import open_workspace

    ws = open_workspace(workspace)
    return ws, (out.expanduser().resolve() if out else generated_root(ws, name))


@app.command()
def fractaldb(
    categories: Annotated[int, typer.Option(help="Number of categories (fractal systems); FractalDB-1k: 1000.")] = fdb.CATEGORIES,
    instances: Annotated[int, typer.Option(help="Images per category: 25 weight variants x renders x 4 flips; FractalDB-1k: 1000 (x10 renders).")] = fdb.INSTANCES,
    size: Annotated[int, typer.Option(help="Image side in pixels; FractalDB-1k: 362.")] = fdb.SIZE,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same categories and images.")] = 0,
    points: Annotated[int, typer.Option(help="Chaos-game points (patches) per image; FractalDB-1k: 200,000.")] = fdb.RENDER_POINTS,
    weight_step: Annotated[float, typer.Option(help="Instance weights 1 ± s and 1 ± 2s; FractalDB-1k: 0.4 (weights_0.4.csv: 0.2, 0.6, 1.4, 1.8).")] = fdb.WEIGHT_STEP,
    device: DeviceOpt = None,
    out: OutOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """FractalDB (Kataoka et al.); the defaults make FractalDB-1k as their exe.sh did.

    Categories come from their filling-rate search (fixed): 2-7 affine maps with coefficients uniform in [-1, 1], kept when 100,000 points cover at least 20% of a 512 px image. Resumable: rerun the same command to finish an interrupted run.
    """
    from divrob.sources.fractaldb import fractaldb_params, generate_fractaldb

    ws, root = _root(workspace, out, "fractaldb")
    params = fractaldb_params(categories, instances, size, seed, points, weight_step)
    with RichReporter() as reporter:
        generate_fractaldb(root, params, reporter, device=device or ws.config.compute.device)
    console.print(f"fractaldb: {categories} categories x {instances} images in [bold]{root}[/]; "
                  "use it with source = \"fractaldb\"")


@app.command()
def diffusion(
    model: Annotated[str, typer.Option(help="A local diffusers StableDiffusionPipeline directory, or a model id already in the Hugging Face cache.")],
    classes: Annotated[str, typer.Option(help="'imagenet' (the 1000 ImageNet classes) or a text file with one class name a line.")] = "imagenet",
    per_class: Annotated[str, typer.Option(help="Images per class (prompt templates cycle through CLIP's 80), or 'imagenet': the workspace ImageNet's own per-class counts (with --classes imagenet).")] = "150",
    steps: Annotated[int, typer.Option(help="Denoising steps.")] = 50,
    guidance: Annotated[float, typer.Option(help="Classifier-free guidance scale.")] = 7.5,
    batch: Annotated[int, typer.Option(help="Images per pipeline call.")] = 8,
    size: Annotated[int, typer.Option(help="Image side in pixels (a multiple of 8).")] = 512,
    seed: Annotated[int, typer.Option(help="Seed: each image's seed derives from it, its class and its number.")] = 0,
    device: DeviceOpt = None,
    out: OutOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Text-to-image with Stable Diffusion: resumable; never downloads a model."""
    from divrob.sources.diffusion import PARAMS_FILE, diffusion_params, generate_diffusion, resolve_classes

    from divrob.errors import SourceError
    from divrob.sources.diffusion import class_counts, imagenet_per_class

    ws, root = _root(workspace, out, "diffusion")
    names = resolve_classes(classes)
    if per_class == "imagenet":
        counts: int | list[int] = imagenet_per_class(names, ws)
    elif per_class.isdigit():
        counts = int(per_class)
    else:
        raise SourceError(f"--per-class {per_class!r}: give a number of images or 'imagenet'")
    params = diffusion_params(names, per_class=counts, model=model, steps=steps, guidance=guidance, size=size,
                              seed=seed)
    with RichReporter() as reporter:
        generate_diffusion(root, params, reporter, device=device or ws.config.compute.device, batch=batch)
    done = json.loads((root / PARAMS_FILE).read_text())
    console.print(f"diffusion: {sum(class_counts(params)):,} images of {len(params['classes'])} classes in "
                  f"[bold]{root}[/] ({done.get('black_images_redrawn', 0)} safety-filtered image(s) redrawn, "
                  f"{done.get('still_black', 0)} still black); use it with source = \"diffusion\"")
