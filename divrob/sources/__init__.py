"""Sources: datasets on disk in their native layout, or generators, each giving a SourceIndex.

Names a recipe may use: `demo-shapes` (generated offline), `imagenet`, `inat2017`,
`folder:<name>` (an ImageFolder named in divrob.toml), `domainnet:<domain>` (a DomainNet
domain's training list), `fractaldb`, `diffusion`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from divrob.errors import SourceError, SourceNameError
from divrob.progress import SILENT, Reporter
from divrob.workspace import Workspace

if TYPE_CHECKING:  # pandas is imported where an index is built: `divrob --help` stays light
    import pandas as pd

BUILTIN = ("demo-shapes", "imagenet", "inat2017", "fractaldb", "diffusion")


def known_source(name: str) -> bool:
    if name.startswith("domainnet:"):
        from divrob.sources.domainnet import DOMAINS

        return name.split(":", 1)[1] in DOMAINS
    return name in BUILTIN or (name.startswith("folder:") and len(name) > len("folder:"))


def source_root(ws: Workspace, name: str, reporter: Reporter = SILENT) -> Path:
    """The directory that a source's index paths are relative to (generating it if needed)."""
    if name == "demo-shapes":
        from divrob.sources.demo_shapes import ensure_demo_shapes

        d = ws.config.demo
        return ensure_demo_shapes(ws.data / "demo-shapes", classes=d.shapes_classes, per_class=d.shapes_per_class,
                                  size=d.shapes_size, seed=d.seed, reporter=reporter)
    if name.startswith("folder:"):
        key = name.split(":", 1)[1]
        root = ws.folder_root(key)
        if root is None:
            raise SourceError(
                f"source {name!r}: no folder named {key!r} in {ws.config_path}; "
                f"add `{key} = \"/path/to/imagefolder\"` under [datasets.folders]"
            )
        return root
    if name.startswith("domainnet:"):
        from divrob.sources.domainnet import LAYOUT, check_domain

        check_domain(name.split(":", 1)[1], f"source {name!r}:")
        root = ws.dataset_root("domainnet")
        if root is None or not root.is_dir():
            raise SourceError(
                f"source {name!r}: set `domainnet = \"/path/to/domainnet\"` under [datasets] in "
                f"{ws.config_path} (a directory with {LAYOUT})"
            )
        return root
    if name in ("fractaldb", "diffusion"):
        root = generated_root(ws, name)
        if not root.exists():
            raise SourceError(
                f"source {name!r}: {root} does not exist; generate it with `divrob generate {name} "
                f"-w {ws.root}` or set `{name} = \"/path/to/{name}\"` under [datasets] in {ws.config_path}"
            )
        _check_generated_complete(name, root)
        return root
    if name in ("imagenet", "inat2017"):
        root = ws.dataset_root(name)
        if root is None:
            raise SourceNameError(
                f"source {name!r}: its root is not set; put `{name} = \"/path/to/{name}\"` "
                f"under [datasets] in {ws.config_path}"
            )
        if not root.exists():
            raise SourceError(f"source {name!r}: root {root} does not exist (set in {ws.config_path})")
        if name == "imagenet":
            from divrob.sources.imagenet import train_dir

            return train_dir(root)
        return root
    raise SourceNameError(f"unknown source {name!r}; choose from {', '.join(BUILTIN)}, folder:<name> or domainnet:<domain>")


def generated_root(ws: Workspace, name: str) -> Path:
    """Where `fractaldb` / `diffusion` live: the root set in divrob.toml, else <workspace>/data/<name>."""
    return ws.dataset_root(name) or ws.data / name


def _check_generated_complete(name: str, root: Path) -> None:
    """A generator's directory that is still partly written must not be indexed as if whole
    (a manifest would silently lack its missing classes); a downloaded one has no status file."""
    if name == "fractaldb":
        from divrob.sources.fractaldb import fractaldb_status

        status = fractaldb_status(root)
        if status is not None and status[0] < status[1]:
            raise SourceError(
                f"source 'fractaldb' at {root} is incomplete ({status[0]} of {status[1]} categories); "
                "run `divrob generate fractaldb` again with the same parameters to finish it"
            )
    else:
        from divrob.sources.diffusion import diffusion_status

        status = diffusion_status(root)
        if status is not None and not status[0]:
            raise SourceError(
                f"source 'diffusion' at {root} is incomplete; run `divrob generate diffusion` again with "
                "the same parameters to finish it"
            )


def source_index(ws: Workspace, name: str, reporter: Reporter = SILENT) -> pd.DataFrame:
    """The cached SourceIndex of a source (built on first use, rebuilt when its tree changes)."""
    root = source_root(ws, name, reporter)
    key = name.replace(":", "_")
    if name == "imagenet":
        from divrob.sources.imagenet import index_imagenet

        return index_imagenet(root, ws.indexes, reporter=reporter)
    if name == "inat2017":
        from divrob.sources.inat2017 import index_inat2017

        return index_inat2017(root, ws.indexes, reporter=reporter)
    if name.startswith("domainnet:"):
        from divrob.sources.domainnet import index_domainnet

        return index_domainnet(root, name.split(":", 1)[1], ws.indexes, reporter=reporter)
    from divrob.sources.index import index_image_folder

    df = index_image_folder(root, ws.indexes, key, reporter=reporter)
    if name == "diffusion":
        df = _with_prompts(df, root)
    return df


def _with_prompts(df: pd.DataFrame, root: Path) -> pd.DataFrame:
    """Add the generator's prompt, seed and template columns to a diffusion index."""
    import pandas as pd

    from divrob.sources.diffusion import INDEX_FILE

    meta = root / INDEX_FILE
    if not meta.is_file():
        return df
    extra = pd.read_parquet(meta).drop(columns=["class_name"], errors="ignore")
    return df.merge(extra, on="path", how="left", validate="one_to_one")
