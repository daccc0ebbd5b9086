"""Sources: datasets on disk in their native layout, or generators, each giving a SourceIndex.

Names a recipe may use: `demo-shapes` (generated offline), `imagenet`, `inat2017`,
`folder:<name>` (an ImageFolder named in divrob.toml), `fractaldb`, `diffusion`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from divrob.errors import SourceError
from divrob.progress import SILENT, Reporter
from divrob.workspace import Workspace

BUILTIN = ("demo-shapes", "imagenet", "inat2017", "fractaldb", "diffusion")


def known_source(name: str) -> bool:
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
    if name in ("imagenet", "inat2017", "fractaldb", "diffusion"):
        root = ws.dataset_root(name)
        if root is None and name in ("fractaldb", "diffusion"):
            root = ws.data / name
        if root is None:
            raise SourceError(
                f"source {name!r}: its root is not set; put `{name} = \"/path/to/{name}\"` "
                f"under [datasets] in {ws.config_path}"
            )
        if not root.exists():
            raise SourceError(f"source {name!r}: root {root} does not exist (set in {ws.config_path})")
        if name == "imagenet":
            from divrob.sources.imagenet import train_dir

            return train_dir(root)
        return root
    raise SourceError(f"unknown source {name!r}; choose from {', '.join(BUILTIN)} or folder:<name>")


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
    from divrob.sources.index import index_image_folder

    return index_image_folder(root, ws.indexes, key, reporter=reporter)
