"""`divrob data index|show SOURCE`, `divrob data preview SOURCE_OR_TASK` and `divrob taxonomy depths`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from divrob.cli.common import RichReporter, WorkspaceOpt, console, one_of
from divrob.train.preview import PHASES as PREVIEW_PHASES  # torch-free

app = typer.Typer(help="Index and inspect pre-training sources.", no_args_is_help=True)
taxonomy_app = typer.Typer(help="Label hierarchies: WordNet depths of the ImageNet classes.", no_args_is_help=True)

SourceArg = Annotated[str, typer.Argument(help="demo-shapes | imagenet | inat2017 | fractaldb | diffusion | folder:<name>")]


def _index(source: str, workspace):
    from divrob.sources import source_index
    from divrob.workspace import open_workspace

    ws = open_workspace(workspace)
    with RichReporter() as reporter:
        return source_index(ws, source, reporter)


@app.command()
def index(source: SourceArg, workspace: WorkspaceOpt = None) -> None:
    """Build (or refresh) a source's index; cached until its tree changes."""
    df = _index(source, workspace)
    console.print(f"{source}: {len(df):,} images in {df['class_name'].nunique():,} classes", markup=False)


@app.command()
def show(
    source: SourceArg,
    top: Annotated[int, typer.Option(help="How many classes to list (largest first).")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON, nothing else.")] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Classes, images and per-class counts of a source."""
    import plotext as plt

    df = _index(source, workspace)
    counts = df.groupby("class_name").size().sort_values(ascending=False)
    if as_json:
        import json

        doc = {"source": source, "images": len(df), "classes": len(counts),
               "top_classes": {str(k): int(v) for k, v in counts.head(top).items()}}
        if "supercategory" in df.columns:
            doc["supercategories"] = {str(k): int(v) for k, v in df.groupby("supercategory").size().items()}
        typer.echo(json.dumps(doc, indent=2))
        return
    console.print(f"[bold]{source}[/]: {len(df):,} images, {len(counts):,} classes, "
                  f"{counts.min()}–{counts.max()} per class (median {int(counts.median())})")
    if "supercategory" in df.columns:
        sup = df.groupby("supercategory").agg(images=("path", "size"), classes=("class_name", "nunique"))
        t = Table("supercategory", "classes", "images", title="supercategories")
        for name, r in sup.sort_values("images", ascending=False).iterrows():
            t.add_row(str(name), f"{r.classes:,}", f"{r.images:,}")
        console.print(t)
    table = Table("class", "images", title=f"largest {min(top, len(counts))} classes")
    for name, n in counts.head(top).items():
        table.add_row(str(name), f"{n:,}")
    console.print(table)
    plt.clear_figure()
    plt.hist(counts.to_list(), bins=min(40, max(5, len(counts))))
    plt.title("images per class")
    plt.plotsize(min(console.width, 80), 12)
    console.print(Text.from_ansi(plt.build()))


@app.command()
def preview(
    name: Annotated[str, typer.Argument(help="A source (see `data index`) or a downstream task (see `divrob models`), e.g. iwildcam, wilds:fmow, domainnet:sketch.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the PNGs.")],
    phase: Annotated[str, typer.Option(callback=one_of(PREVIEW_PHASES), help=f"Whose input to show: {' | '.join(PREVIEW_PHASES)}.")] = "finetune",
    n: Annotated[int, typer.Option("--n", min=1, help="How many images (the first N).")] = 16,
    split: Annotated[Optional[str], typer.Option(help="A task's split (default: train).")] = None,
    recipe: Annotated[Optional[Path], typer.Option(help="Take the phase settings (image_size, crop_scale, ...) from this recipe's study table.")] = None,
    image_size: Annotated[Optional[int], typer.Option(min=16, help="Override the phase's image_size.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the crops (pretrain).")] = 0,
    workspace: WorkspaceOpt = None,
) -> None:
    """Write what the model sees (de-normalised, at model resolution) for the first N images, made
    by the training code itself, and print the PNGs' paths."""
    from divrob.train.config import finetune_config, pretrain_config
    from divrob.train.preview import images_of, write_preview
    from divrob.workspace import open_workspace

    ws = open_workspace(workspace)
    overrides: dict = {}
    if recipe is not None:
        from divrob.recipes.load import load_recipe

        study = load_recipe(recipe).study
        overrides = (study.pretrain if phase == "pretrain" else study.finetune).model_dump(exclude_none=True)
    if image_size is not None:
        overrides["image_size"] = image_size
    make = pretrain_config if phase == "pretrain" else finetune_config
    cfg = make("resnet50", overrides)  # the arch sets only the learning rate, which a preview does not use
    with RichReporter() as reporter:
        paths, labels = images_of(ws, name, split, reporter)
        written = write_preview(paths, labels, cfg, phase, n, out, seed, reporter)
    for p in written:
        typer.echo(str(p))


@taxonomy_app.command()
def depths(as_json: Annotated[bool, typer.Option("--json", help="Print {depth: classes} as JSON.")] = False) -> None:
    """How many labels ImageNet-1k has when contracted to each WordNet depth (paper 4.2)."""
    from divrob.taxonomy.imagenet import PAPER_DEPTH_COUNTS, depth_counts

    counts = depth_counts()
    if as_json:
        typer.echo(json.dumps({str(d): n for d, n in counts.items()}))
        return
    table = Table("depth", "labels", "paper", title="ImageNet-1k labels per WordNet depth")
    for d, n in counts.items():
        table.add_row(str(d), str(n), str(PAPER_DEPTH_COUNTS.get(d, "")))
    console.print(table)
