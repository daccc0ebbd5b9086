"""`divrob recipes list|validate|show|build`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from divrob.cli.common import JsonOpt, WorkspaceOpt, console, print_json

app = typer.Typer(help="Validate, inspect and build recipes.", no_args_is_help=True)

FileArg = Annotated[Path, typer.Argument(help="A recipe .toml file, or a bundled recipe's name (see `divrob recipes list`).")]


@app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """The recipes shipped with divrob, by the name any recipe argument accepts."""
    from divrob.bundled import bundled_recipes

    if as_json:
        print_json(list(bundled_recipes()))
        return
    for name in bundled_recipes():
        console.print(name, highlight=False)


@app.command()
def validate(files: Annotated[list[Path], typer.Argument(help="Recipe .toml files or bundled recipe names.")]) -> None:
    """Check recipes against the schema; the first error names the file, the field and the reason."""
    from divrob.recipes.load import load_recipe

    for f in files:
        r = load_recipe(f)
        runs = (sum(len(ed.distribution.run_archs(r.study.archs)) for ed in r.distributions)
                * len(r.study.seeds) * len(r.study.tasks))
        console.print(f"[green]ok[/] {escape(str(f))}: study {escape(repr(r.study.name))}, {len(r.distributions)} distributions, {runs} runs")


@app.command()
def show(file: FileArg, as_json: JsonOpt = False) -> None:
    """The recipe's study and its expanded distributions, as tables."""
    from divrob.recipes.load import load_recipe

    r = load_recipe(file)
    s = r.study
    if as_json:
        print_json({"study": s.name, "downstream": s.downstream_label, "archs": list(s.archs), "seeds": list(s.seeds),
                    "distributions": [{"distribution": ed.distribution.name, **ed.distribution.summary(),
                                       "sweep": dict(ed.sweep)} for ed in r.distributions]})
        return
    console.print(f"study [bold cyan]{escape(s.name)}[/]: downstream {escape(s.downstream_label)}; archs {', '.join(s.archs)}; seeds {escape(str(s.seeds))}")
    table = Table("distribution", "source", "size", "classes", "labels", "sweep", title=str(file))
    for ed in r.distributions:
        d = ed.distribution.summary()
        sweep = ", ".join(f"{k}={v}" for k, v in ed.sweep.items()) or "-"
        table.add_row(ed.distribution.name, d["source"], d["size"], d["classes"], d["labels"], sweep)
    console.print(table)


@app.command()
def build(file: FileArg, as_json: JsonOpt = False, workspace: WorkspaceOpt = None) -> None:
    """Materialise every distribution of a recipe into a manifest and report its classes."""
    import plotext as plt

    from divrob.cli.common import RichReporter
    from divrob.recipes.load import load_recipe
    from divrob.recipes.manifest import build_manifest
    from divrob.workspace import open_workspace

    ws = open_workspace(workspace)
    r = load_recipe(file)
    if as_json:
        from divrob.progress import SILENT
        from divrob.runs.migrate import migrate_legacy_ids

        migrate_legacy_ids(ws, SILENT)
        out = []
        for ed in r.distributions:
            d = ed.distribution
            info = None if d.is_scratch else build_manifest(ws, d, SILENT)
            out.append({"distribution": d.name} | ({} if info is None else {
                "manifest": info.manifest_id, "classes": info.n_classes, "images": info.n_images,
                "min_per_class": info.min_per_class, "max_per_class": info.max_per_class}))
        print_json(out)
        return
    table = Table("distribution", "manifest", "classes", "images", "min/class", "max/class")
    infos = []
    with RichReporter() as reporter:
        from divrob.runs.migrate import migrate_legacy_ids

        migrate_legacy_ids(ws, reporter)  # so a build keeps a legacy workspace's manifests
        for ed in r.distributions:
            d = ed.distribution
            if d.is_scratch:
                table.add_row(d.name, "(no pre-training)", "-", "-", "-", "-")
                continue
            if d.weights is not None:
                table.add_row(d.name, f"(weights {d.weights})", "-", "-", "-", "-")
                continue
            info = build_manifest(ws, d, reporter)
            infos.append((d.name, info))
            table.add_row(d.name, info.manifest_id, str(info.n_classes), str(info.n_images),
                          str(info.min_per_class), str(info.max_per_class))
    console.print(table)
    for name, info in infos:
        plt.clear_figure()
        plt.hist(list(info.class_counts), bins=min(30, max(5, info.n_classes)))
        plt.title(f"{name}: images per class")
        plt.plotsize(min(console.width, 80), 12)
        console.print(Text.from_ansi(plt.build()))
