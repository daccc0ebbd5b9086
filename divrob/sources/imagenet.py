"""ImageNet ILSVRC-2012 train split: `<root>/train/<wnid>/<wnid>_<n>.JPEG`.

The index is built from directory listings only (os.scandir names, no per-file stat) and
cached as Parquet until a directory mtime in the tree changes, so re-indexing the 1.28M
images is a Parquet read.

Paths in the index are relative to the `root` the caller passed, so `root / path` always
opens the image: `train/<wnid>/<file>` for the ILSVRC root, `<wnid>/<file>` when the caller
passed the `train/` directory itself.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from divrob.errors import SourceError
from divrob.fileio import short_hash
from divrob.progress import SILENT, Reporter
from divrob.sources.index import cached_index, dir_fingerprint, list_class_dirs, scan_image_folder

IMAGENET_LAYOUT = (
    "the ILSVRC-2012 train split: <root>/train/<wnid>/*.JPEG (wnid = 'n' + 8 digits, "
    "e.g. n01440764), or that train/ directory itself"
)
WNID_RE = re.compile(r"n\d{8}")
CACHE_KEY = "imagenet"


def is_wnid(name: str) -> bool:
    return WNID_RE.fullmatch(name) is not None


def _subdir_names(path: Path) -> list[str]:
    with os.scandir(path) as it:
        return [e.name for e in it if e.is_dir(follow_symlinks=True) and not e.name.startswith(".")]


def train_dir(root: Path) -> Path:
    """The directory holding the wnid folders: `root` itself if it holds wnid folders,
    else `root/train`."""
    root = Path(root)
    if not root.is_dir():
        raise SourceError(f"ImageNet root {root} is not a directory; expected {IMAGENET_LAYOUT}")
    if any(is_wnid(n) for n in _subdir_names(root)):
        return root
    train = root / "train"
    if train.is_dir():
        return train
    raise SourceError(
        f"ImageNet root {root} holds neither train/ nor wnid class folders; expected {IMAGENET_LAYOUT}"
    )


def index_imagenet(root: Path, cache_dir: Path, reporter: Reporter = SILENT) -> pd.DataFrame:
    """Index the ImageNet train split: columns path, class_id, class_name (= the wnid).

    `root` is the ILSVRC-2012 root holding `train/`, or `train/` itself. Every class folder
    must be a wnid; other folders raise SourceError (a wrong root is the usual cause).
    Hidden entries and files without an image suffix are ignored; empty class folders give
    no rows (so no class id).
    """
    root = Path(root)
    train = train_dir(root)
    class_dirs = list_class_dirs(train, IMAGENET_LAYOUT)
    bad = [d for d in class_dirs if not is_wnid(d)]
    if bad:
        shown = ", ".join(bad[:5]) + (f" (and {len(bad) - 5} more)" if len(bad) > 5 else "")
        raise SourceError(
            f"{train} holds folders that are not wnids: {shown}; expected {IMAGENET_LAYOUT}"
        )
    prefix = "" if train == root else f"{train.name}/"
    # The prefix is part of the key: the two root forms give different paths for one tree.
    fingerprint = short_hash([dir_fingerprint(train, class_dirs), prefix])

    def build() -> pd.DataFrame:
        df = scan_image_folder(train, class_dirs, IMAGENET_LAYOUT, reporter, "indexing ImageNet")
        if prefix:
            df["path"] = prefix + df["path"]
        return df

    return cached_index(Path(cache_dir), CACHE_KEY, fingerprint, build)
