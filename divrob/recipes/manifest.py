"""Materialise a distribution into a manifest: Parquet rows of (source, path, label, label_name).

The manifest id is a hash of the rows themselves, so the same recipe, source index and seed
always give the same id, and two recipes that select the same images share one manifest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from divrob.errors import ManifestError
from divrob.fileio import atomic_path, sha256_hex, write_json_atomic
from divrob.progress import SILENT, Reporter
from divrob.recipes.schema import Distribution
from divrob.workspace import Workspace

MANIFEST_COLUMNS = ("source", "path", "label", "label_name")


@dataclass(frozen=True)
class ManifestInfo:
    manifest_id: str
    path: Path
    n_images: int
    n_classes: int
    min_per_class: int
    max_per_class: int
    class_counts: tuple[int, ...]


def sample_balanced(
    class_ids: np.ndarray, quotas: np.ndarray, rng: np.random.Generator, replace: bool, what: str
) -> np.ndarray:
    """Row positions: `quotas[c]` rows drawn uniformly from class c (vectorised, no per-class loop
    over rows). Without `replace`, a class with fewer rows than its quota is an error."""
    n_classes = len(quotas)
    counts = np.bincount(class_ids, minlength=n_classes)
    short = np.nonzero((counts < quotas) & (quotas > 0))[0]
    if len(short) and not replace:
        c = short[0]
        raise ManifestError(
            f"{what}: asks for {quotas[c]} images of a class that has only {counts[c]} "
            f"({len(short)} class(es) too small); lower total/per_class or set replace = true"
        )
    order = np.lexsort((rng.random(len(class_ids)), class_ids))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    take_plain = np.minimum(quotas, counts)
    rank = np.arange(len(order)) - starts[class_ids[order]]
    chosen = order[rank < take_plain[class_ids[order]]]
    if not replace or not len(short):
        return np.sort(chosen)
    extra = []
    for c in short:  # only the too-small classes: top up with draws with replacement
        members = np.nonzero(class_ids == c)[0]
        extra.append(rng.choice(members, size=quotas[c] - counts[c], replace=True))
    return np.sort(np.concatenate([chosen, *extra]))


def class_quotas(n_classes: int, dist: Distribution, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if dist.per_class is not None:
        return np.full(n_classes, dist.per_class, dtype=np.int64)
    if dist.total is None:
        return counts.astype(np.int64)  # everything
    if dist.balance == "none":
        # proportional to the classes' sizes, largest remainders first
        raw = counts / counts.sum() * dist.total
        quotas = np.floor(raw).astype(np.int64)
        rest = dist.total - quotas.sum()
        quotas[np.argsort(-(raw - quotas), kind="stable")[:rest]] += 1
        return quotas
    if dist.total < n_classes:
        raise ManifestError(
            f"distribution {dist.name!r}: total = {dist.total} is fewer than its {n_classes} classes; "
            "raise total or select fewer classes"
        )
    quotas = np.full(n_classes, dist.total // n_classes, dtype=np.int64)
    rest = dist.total - quotas.sum()
    quotas[np.sort(rng.choice(n_classes, size=rest, replace=False))] += 1  # seeded, so deterministic
    return quotas


def select_rows(ws: Workspace, dist: Distribution, reporter: Reporter = SILENT) -> pd.DataFrame:
    """The manifest rows of a distribution (not yet written)."""
    from divrob.sources import source_index

    if dist.is_scratch:
        raise ManifestError(f"distribution {dist.name!r} has no pre-training, so it has no manifest")
    if dist.classes or dist.labels:
        from divrob.recipes.axes import apply_axes

        index = source_index(ws, dist.source, reporter)
        index = apply_axes(index, dist)
    else:
        index = source_index(ws, dist.source, reporter)
    if index.empty:
        raise ManifestError(f"distribution {dist.name!r}: the class selection is empty")
    label_names = index["label_name"] if "label_name" in index.columns else index["class_name"]
    names = np.array(sorted(label_names.unique()))
    label = np.searchsorted(names, label_names.to_numpy())
    counts = np.bincount(label, minlength=len(names))
    rng = np.random.default_rng([dist.seed, 0x5EED])
    quotas = class_quotas(len(names), dist, counts, rng)
    rows = sample_balanced(label, quotas, rng, dist.replace, f"distribution {dist.name!r}")
    return pd.DataFrame(
        {
            "source": dist.source,
            "path": index["path"].to_numpy()[rows],
            "label": label[rows].astype("int32"),
            "label_name": names[label[rows]],
        }
    )


def manifest_id(rows: pd.DataFrame) -> str:
    h = pd.util.hash_pandas_object(rows[list(MANIFEST_COLUMNS)], index=False).to_numpy()
    return sha256_hex(h.tobytes() + str(len(rows)).encode())[:16]


def build_manifest(ws: Workspace, dist: Distribution, reporter: Reporter = SILENT) -> ManifestInfo:
    rows = select_rows(ws, dist, reporter)
    mid = manifest_id(rows)
    path = ws.manifests / f"{mid}.parquet"
    if not path.exists():
        with atomic_path(path) as tmp:
            rows.to_parquet(tmp, index=False)
    meta_path = ws.manifests / f"{mid}.json"
    counts = np.bincount(rows["label"].to_numpy(), minlength=int(rows["label"].max()) + 1)
    info = ManifestInfo(
        manifest_id=mid, path=path, n_images=len(rows), n_classes=int((counts > 0).sum()),
        min_per_class=int(counts.min()), max_per_class=int(counts.max()), class_counts=tuple(int(c) for c in counts),
    )
    if not meta_path.exists():
        write_json_atomic(meta_path, {
            "manifest_id": mid, "distribution": dist.identity(), "n_images": info.n_images,
            "n_classes": info.n_classes, "min_per_class": info.min_per_class, "max_per_class": info.max_per_class,
        })
    return info


def load_manifest(ws: Workspace, mid: str) -> pd.DataFrame:
    path = ws.manifests / f"{mid}.parquet"
    if not path.exists():
        raise ManifestError(f"manifest {mid} is not in {ws.manifests}; rebuild it with `divrob recipes build RECIPE`")
    return pd.read_parquet(path)


def manifest_meta(ws: Workspace, mid: str) -> dict:
    return json.loads((ws.manifests / f"{mid}.json").read_text())
