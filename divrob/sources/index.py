"""SourceIndex: one table of every image of a source, cached as Parquet per tree fingerprint.

Columns (always): path (relative to the source root, '/'-separated), class_id (int32, dense,
in sorted class_name order), class_name (str). Sources may add hierarchy columns
(e.g. iNat's `supercategory`). Rows are sorted by (class_id, path) so an index is
deterministic for a given tree.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pandas as pd

from divrob.errors import SourceError
from divrob.fileio import atomic_path, short_hash
from divrob.progress import SILENT, Reporter

INDEX_COLUMNS = ("path", "class_id", "class_name")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff"})


def finalize_index(df: pd.DataFrame) -> pd.DataFrame:
    """Give an index its canonical dtypes, dense class ids and row order."""
    for col in ("path", "class_name"):
        if col not in df.columns:
            raise ValueError(f"index is missing column {col!r}")
    names = sorted(df["class_name"].unique())
    ids = {n: i for i, n in enumerate(names)}
    df = df.copy()
    df["class_id"] = df["class_name"].map(ids).astype("int32")
    extra = [c for c in df.columns if c not in INDEX_COLUMNS]
    df = df[list(INDEX_COLUMNS) + extra]
    return df.sort_values(["class_id", "path"], kind="stable").reset_index(drop=True)


def dir_fingerprint(root: Path, subdirs: list[str]) -> str:
    """A fingerprint of a two-level tree from directory mtimes only (no per-file stat):
    adding, removing or renaming an image changes its directory's mtime."""
    parts = [str(root.resolve()), os.stat(root).st_mtime_ns]
    for d in subdirs:
        parts.append((d, os.stat(root / d).st_mtime_ns))
    return short_hash(parts)


def cached_index(
    cache_dir: Path,
    key: str,
    fingerprint: str,
    build: Callable[[], pd.DataFrame],
) -> pd.DataFrame:
    """Load `<cache_dir>/<key>-<fingerprint>.parquet`, or build, finalize and write it."""
    path = cache_dir / f"{key}-{fingerprint}.parquet"
    if path.exists():
        return pd.read_parquet(path)
    df = finalize_index(build())
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    for stale in cache_dir.glob(f"{key}-*.parquet"):
        if stale != path:
            stale.unlink(missing_ok=True)
    return df


def list_class_dirs(root: Path, layout: str) -> list[str]:
    if not root.is_dir():
        raise SourceError(f"{root} is not a directory; expected {layout}")
    with os.scandir(root) as it:
        dirs = sorted(e.name for e in it if e.is_dir(follow_symlinks=True) and not e.name.startswith("."))
    if not dirs:
        raise SourceError(f"{root} holds no class directories; expected {layout}")
    return dirs


def scan_image_folder(
    root: Path,
    class_dirs: list[str],
    layout: str,
    reporter: Reporter = SILENT,
    description: str = "indexing",
) -> pd.DataFrame:
    """Rows for `<root>/<class>/<image>` using os.scandir (names only, no stat per file)."""
    paths: list[str] = []
    names: list[str] = []
    task = reporter.task(f"{description} {root.name}", total=len(class_dirs))
    try:
        for d in class_dirs:
            with os.scandir(root / d) as it:
                files = sorted(
                    e.name for e in it
                    if not e.name.startswith(".") and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES
                )
            paths.extend(f"{d}/{f}" for f in files)
            names.extend([d] * len(files))
            task.advance()
    finally:
        task.close()
    if not paths:
        raise SourceError(f"{root} holds no images; expected {layout}")
    return pd.DataFrame({"path": paths, "class_name": names})


FOLDER_LAYOUT = "an ImageFolder: <root>/<class>/<image>.jpg|png"


def index_image_folder(root: Path, cache_dir: Path, key: str, reporter: Reporter = SILENT) -> pd.DataFrame:
    """Index any ImageFolder, cached until the tree changes."""
    root = Path(root)
    class_dirs = list_class_dirs(root, FOLDER_LAYOUT)
    fp = dir_fingerprint(root, class_dirs)
    return cached_index(
        cache_dir, key, fp, lambda: scan_image_folder(root, class_dirs, FOLDER_LAYOUT, reporter)
    )
