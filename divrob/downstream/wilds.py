"""WILDS image-classification tasks (`wilds:iwildcam` = `iwildcam`, `wilds:fmow`,
`wilds:camelyon17`, `wilds:rxrx1`) through the `wilds` package itself (`download=False`), so
splits, labels and metadata are exactly WILDS's, and every split is scored by the dataset's own
`eval()` (its group-wise metrics need `torch-scatter`: the `wilds-metrics` extra).

Image paths are the files each dataset's `get_input(idx)` opens. Fine-tuning defaults are the
datasets' entries in WILDS's `examples/configs/datasets.py` (and `configs/scheduler.py`: StepLR
steps every epoch); where divrob's training loop cannot express one, the entry says so.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from pydantic import BaseModel

from divrob.downstream.task import DownstreamTask, Split, TaskKind
from divrob.errors import SourceError
from divrob.progress import SILENT, Reporter


@dataclass(frozen=True)
class WildsDataset:
    key: str  # the wilds dataset name
    version: str
    dataset_class: str  # module:class in the wilds package
    metric: str  # eval()'s entry that is the task's score (WILDS's `val_metric`)
    words: str
    id_split: str
    files: Callable[[Any], list[str]]  # each example's file, relative to the data dir
    layout: str
    finetune: dict[str, Any] = field(default_factory=dict)
    writes_series_values: bool = False  # its constructor writes into `Series.values` (see _writable_values)

    @property
    def data_dir(self) -> str:
        return f"{self.key}_v{self.version}"


def _input_array(prefix: str = "") -> Callable[[Any], list[str]]:
    return lambda ds: [f"{prefix}{f}" for f in ds._input_array]


DATASETS = {
    "iwildcam": WildsDataset(
        "iwildcam", "2.0", "iwildcam_dataset:IWildCamDataset", "F1-macro_all", "macro-F1", "id_test",
        _input_array("train/"),
        "RELEASE_v2.0.txt, metadata.csv (split, filename, y, location_remapped, sequence_remapped, "
        "datetime, ...) and train/<filename>",
        # divrob's base fine-tuning recipe is this one (train.config.finetune_config)
    ),
    "fmow": WildsDataset(
        "fmow", "1.1", "fmow_dataset:FMoWDataset", "acc_worst_region", "worst-region accuracy", "id_test",
        lambda ds: [f"images/rgb_img_{i}.png" for i in ds.full_idxs],
        "RELEASE_v1.1.txt, rgb_metadata.csv (split, category, country_code, timestamp, ...), "
        "country_code_mapping.csv (alpha-3, region) and images/rgb_img_<row>.png",
        # DenseNet-121 in WILDS; the whole 224 px image (image_base, no resize); StepLR(1, 0.96)
        {"image_size": 224, "optimizer": "adam", "lr": 1e-4, "weight_decay": 0.0, "batch_size": 32,
         "epochs": 60, "lr_step": 1, "lr_gamma": 0.96},
    ),
    "camelyon17": WildsDataset(
        "camelyon17", "1.0", "camelyon17_dataset:Camelyon17Dataset", "acc_avg", "accuracy", "id_val",
        _input_array(),
        "RELEASE_v1.0.txt, metadata.csv (patient, node, x_coord, y_coord, tumor, slide, center, split) "
        "and patches/patient_<p>_node_<n>/patch_patient_<p>_node_<n>_x_<x>_y_<y>.png",
        # DenseNet-121 from scratch in WILDS; 96 px patches; no scheduler. Camelyon17 has no ID
        # test split: its ID split is id_val, as in the WILDS paper.
        {"image_size": 96, "optimizer": "sgd", "momentum": 0.9, "lr": 1e-3, "weight_decay": 0.01,
         "batch_size": 32, "epochs": 10},
    ),
    "rxrx1": WildsDataset(
        "rxrx1", "1.0", "rxrx1_dataset:RxRx1Dataset", "acc_avg", "accuracy", "id_test",
        _input_array(),
        "RELEASE_v1.0.txt, metadata.csv (site_id, well_id, cell_type, dataset, experiment, plate, well, "
        "site, well_type, sirna, sirna_id) and images/<experiment>/Plate<plate>/<well>_s<site>.png",
        # WILDS also warms the lr up over 5,415 steps then decays it on a cosine, standardises each
        # image by its own mean and std, and rotates and flips training images; divrob keeps the lr
        # constant, normalises with ImageNet's statistics and does not augment (its loop has step
        # schedules and one input path for every task)
        {"image_size": 256, "optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-5, "batch_size": 72,
         "epochs": 90},
        writes_series_values=True,
    ),
}


class WildsKind(TaskKind):
    def __init__(self, dataset: WildsDataset, name: str | None = None) -> None:
        self.dataset = dataset
        self.name = name or f"wilds:{dataset.key}"
        self.metric = (dataset.metric, dataset.words)
        self.summary = f"{dataset.key}-WILDS ({dataset.data_dir}/); metric: eval()'s {dataset.metric}"

    def label(self, o: BaseModel) -> str:
        # iWildCam keeps its original name: runs planned before other tasks existed keep their ids
        return "iwildcam" if self.dataset.key == "iwildcam" else self.name

    def id_split(self, o: BaseModel) -> str:
        return self.dataset.id_split

    def finetune_defaults(self, o: BaseModel) -> dict[str, Any]:
        return dict(self.dataset.finetune)

    def load(self, ws, o: BaseModel, reporter: Reporter = SILENT) -> DownstreamTask:
        root = _root(ws, self.dataset, self.label(o))
        return load_wilds(root, self.dataset, self.label(o))


def _root(ws, d: WildsDataset, label: str) -> Path:
    """`[datasets] wilds` (iWildCam: `iwildcam` first, as before the other tasks existed)."""
    root = (ws.dataset_root("iwildcam") if d.key == "iwildcam" else None) or ws.dataset_root("wilds")
    if root is None:
        key = "`wilds` (or `iwildcam`)" if d.key == "iwildcam" else "`wilds`"
        raise SourceError(f"downstream {label!r}: set {key} = \"/path/to/wilds-root\" under [datasets] in "
                          f"{ws.config_path} (the directory holding {d.data_dir}/)")
    return root


def open_wilds(root: Path, d: WildsDataset, label: str):
    """The WILDS dataset object, after checking the layout wilds would otherwise try to download."""
    import importlib

    data_dir = Path(root) / d.data_dir
    where = f"expected <root>/{d.data_dir}/ with {d.layout}"
    if not data_dir.is_dir():
        raise SourceError(f"{label}: {root} does not hold {d.data_dir}/; {where}")
    if not (data_dir / f"RELEASE_v{d.version}.txt").exists():
        # wilds treats a data dir without its release marker as absent and would try to download
        raise SourceError(f"{label}: {data_dir} has no RELEASE_v{d.version}.txt, so wilds does not accept it "
                          f"as a complete download; re-extract the WILDS archive ({where})")
    module, cls = d.dataset_class.split(":")
    dataset_class = getattr(importlib.import_module(f"wilds.datasets.{module}"), cls)
    try:
        with _writable_values(d.writes_series_values):
            return dataset_class(root_dir=str(root), download=False)
    except (KeyError, ValueError, AssertionError, TypeError, IndexError, FileNotFoundError) as e:
        raise SourceError(f"{label}: {data_dir} is not in the WILDS format ({e!r}); {where}") from None


@contextmanager
def _writable_values(needed: bool) -> Iterator[None]:
    """wilds 2.0's RxRx1Dataset assigns into `df.dataset.apply(...).values`; under pandas >= 3
    (copy-on-write) that array is read-only and the constructor fails. While the dataset is built,
    `Series.values` returns a copy: a fresh array, as pandas < 3 gave there, so WILDS's own code
    runs unchanged and makes the same splits."""
    import numpy as np
    import pandas as pd

    if not needed or int(pd.__version__.split(".")[0]) < 3:
        yield
        return
    original = pd.Series.values
    with _PATCH_LOCK:
        pd.Series.values = property(lambda series: np.array(original.fget(series)))
        try:
            yield
        finally:
            pd.Series.values = original


def load_wilds(root: Path, d: WildsDataset, label: str) -> DownstreamTask:
    import numpy as np

    ds = open_wilds(root, d, label)
    data_dir = Path(ds.data_dir)
    files = np.asarray(d.files(ds))
    labels = ds.y_array.numpy().astype(np.int64)
    split_array = np.asarray(ds.split_array)
    metadata = ds.metadata_array.numpy()
    splits, meta = {}, {}
    for name, code in sorted(ds.split_dict.items(), key=lambda kv: kv[1]):  # train first
        rows = np.flatnonzero(split_array == code)
        splits[name] = Split([data_dir / f for f in files[rows]], labels[rows])
        meta[name] = metadata[rows]

    def score(split: str, preds, y, rows) -> dict[str, Any]:
        import torch

        if len(y) == 0:
            return {}
        results, _ = ds.eval(torch.as_tensor(np.asarray(preds)), torch.as_tensor(np.asarray(y)),
                             torch.as_tensor(meta[split][np.asarray(rows)]))
        values = {k: _number(v) for k, v in results.items()}
        return {"score": values[d.metric], "wilds": values}

    ood = tuple(s for s in ("test", "val") if s in splits)
    return DownstreamTask(label, int(ds.n_classes), splits, d.id_split, ood, d.metric, score)


def _number(v) -> float | None:
    v = float(v)
    return None if v != v else v  # NaN (an empty group) as null: events.jsonl stays strict JSON


KINDS = [WildsKind(d) for d in DATASETS.values()]
_PATCH_LOCK = threading.Lock()
