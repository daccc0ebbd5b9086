"""Downstream tasks with a natural distribution shift: iWildCam-WILDS and the offline camtrap-sim.

Both give the same interface: image paths and labels per WILDS split, so training and scoring
never know which one they run on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from divrob.errors import SourceError
from divrob.progress import SILENT, Reporter
from divrob.workspace import Workspace

TASKS = ("iwildcam", "camtrap-sim")
EVAL_SPLITS = ("id_val", "id_test", "val", "test")


@dataclass(frozen=True)
class Split:
    paths: list[Path]
    labels: np.ndarray


@dataclass(frozen=True)
class DownstreamTask:
    name: str
    num_classes: int
    splits: dict[str, Split]

    def split(self, name: str) -> Split:
        if name not in self.splits:
            raise SourceError(f"downstream task {self.name!r} has no split {name!r}")
        return self.splits[name]


def _from_table(name: str, root: Path, filenames, labels, split_names, num_classes: int) -> DownstreamTask:
    filenames = np.asarray(filenames)
    labels = np.asarray(labels, dtype=np.int64)
    split_names = np.asarray(split_names)
    splits = {}
    for s in ("train", *EVAL_SPLITS):
        mask = split_names == s
        splits[s] = Split([root / f for f in filenames[mask]], labels[mask])
    return DownstreamTask(name=name, num_classes=num_classes, splits=splits)


def get_task(ws: Workspace, name: str, reporter: Reporter = SILENT) -> DownstreamTask:
    if name == "camtrap-sim":
        from divrob.downstream.camtrap_sim import ensure_camtrap_sim, load_camtrap_metadata

        root = ensure_camtrap_sim(ws.data / "camtrap-sim", reporter=reporter)
        meta = load_camtrap_metadata(root)
        n = int(meta["y"].max()) + 1
        return _from_table(name, root, meta["filename"], meta["y"], meta["split"], n)
    if name == "iwildcam":
        from divrob.downstream.iwildcam import load_iwildcam

        root = ws.dataset_root("iwildcam")
        if root is None:
            raise SourceError(
                f"downstream 'iwildcam': set `iwildcam = \"/path/to/wilds-root\"` under [datasets] in "
                f"{ws.config_path} (the directory holding iwildcam_v2.0/)"
            )
        data_dir, filenames, labels, split_names, n = load_iwildcam(root)
        return _from_table(name, data_dir / "train", filenames, labels, split_names, n)
    raise SourceError(f"unknown downstream task {name!r}; choose from {', '.join(TASKS)}")
