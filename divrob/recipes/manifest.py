"""Materialise a distribution into a manifest: Parquet rows of (source, path, label, label_name).

The manifest id is a hash of the rows themselves, so the same recipe, source index and seed
always give the same id, and two recipes that select the same images share one manifest.

The id is SHA-256 over a canonical byte encoding of the rows that depends on nothing but
their values (not on pandas, numpy or dtypes), truncated to 16 hex digits:

    b"divrob-manifest\0v1\0", then the row count as u64 little-endian, then per column in
    MANIFEST_COLUMNS order: its name in UTF-8 and b"\0", then
      text columns (source, path, label_name): every value's UTF-8 byte length as u32 LE,
        then all values' UTF-8 bytes back to back;
      integer columns (label): every value as i64 LE.

Workspaces from before (ids from pandas.util.hash_pandas_object, whose output pandas does not
promise to keep) are re-keyed by divrob.runs.migrate; REKEYED_FILE records old -> new ids.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from divrob.apportion import largest_remainder
from divrob.errors import ManifestError
from divrob.fileio import atomic_path, write_json_atomic
from divrob.progress import SILENT, Reporter
from divrob.recipes.schema import Distribution
from divrob.workspace import Workspace

MANIFEST_COLUMNS = ("source", "path", "label", "label_name")
_INT_COLUMNS = frozenset({"label"})
ID_SCHEME = "sha256-canonical-v1"  # written into each manifest's .json; absent there: a legacy id
_ID_PREFIX = b"divrob-manifest\0v1\0"
REKEYED_FILE = "rekeyed.json"  # in the manifests folder: {"manifests": {old: new}, "runs": {old: new}}


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


def _spread(total: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """`total` split over `n` bins as evenly as possible; the remainder goes to random bins."""
    out = np.full(n, total // n, dtype=np.int64)
    out[np.sort(rng.choice(n, size=total - out.sum(), replace=False))] += 1
    return out


def label_quotas(dist: Distribution, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """Images per label; None means every image."""
    n = len(counts)
    if dist.per_class is not None:
        return np.full(n, dist.per_class, dtype=np.int64)
    if dist.total is None:
        return None
    if dist.balance == "none":
        return largest_remainder(dist.total, counts)  # proportional to the labels' sizes
    if dist.total < n:
        raise ManifestError(
            f"distribution {dist.name!r}: total = {dist.total} is fewer than its {n} classes; "
            "raise total or select fewer classes"
        )
    return _spread(dist.total, n, rng)


def stratum_quotas(label_of_stratum: np.ndarray, quotas: np.ndarray, stratum_counts: np.ndarray,
                   balance: str, rng: np.random.Generator) -> np.ndarray:
    """Each label's quota spread over its source classes: evenly (the paper's 'sample 3x more
    from each subclass when there are 3x fewer'), or in proportion to their sizes."""
    out = np.zeros(len(label_of_stratum), dtype=np.int64)
    for lab in np.unique(label_of_stratum):
        members = np.nonzero(label_of_stratum == lab)[0]
        if balance == "none":
            sizes = stratum_counts[members]
            raw = sizes / sizes.sum() * quotas[lab]
            q = np.floor(raw).astype(np.int64)
            q[np.argsort(-(raw - q), kind="stable")[: quotas[lab] - q.sum()]] += 1
        else:
            q = _spread(int(quotas[lab]), len(members), rng)
        out[members] = q
    return out


def _select_one(ws: Workspace, dist: Distribution, source: str, reporter: Reporter) -> pd.DataFrame:
    from divrob.sources import source_index

    return rows_from_index(source_index(ws, source, reporter), dist, source)


def rows_from_index(index: pd.DataFrame, dist: Distribution, source: str) -> pd.DataFrame:
    """Apply the distribution's axes to one source's index and sample its rows."""
    from divrob.recipes.axes import apply_axes

    index = apply_axes(index, dist, source)
    # categorical codes hash strings instead of sorting them: 1.28M rows in milliseconds
    label_cat = pd.Categorical(index["label_name"])
    labels, label = np.asarray(label_cat.categories), label_cat.codes.astype(np.int64)
    stratum_cat = pd.Categorical(index["class_name"])
    stratum = stratum_cat.codes.astype(np.int64)
    stratum_counts = np.bincount(stratum, minlength=len(stratum_cat.categories))
    label_of_stratum = np.zeros(len(stratum_counts), dtype=np.int64)
    label_of_stratum[stratum] = label
    rng = np.random.default_rng([dist.seed, 0x5EED])
    quotas = label_quotas(dist, np.bincount(label, minlength=len(labels)), rng)
    if quotas is None:
        rows = np.arange(len(index))
    else:
        per_stratum = stratum_quotas(label_of_stratum, quotas, stratum_counts, dist.balance, rng)
        rows = sample_balanced(stratum, per_stratum, rng, dist.replace, f"distribution {dist.name!r}")
    return pd.DataFrame({
        "source": source,
        "path": index["path"].to_numpy()[rows],
        "label_name": labels[label[rows]],
    })


def select_rows(ws: Workspace, dist: Distribution, reporter: Reporter = SILENT) -> pd.DataFrame:
    """The manifest rows of a distribution (not yet written)."""
    if dist.is_scratch:
        raise ManifestError(f"distribution {dist.name!r} has no pre-training, so it has no manifest")
    if isinstance(dist.source, dict):
        # a mixture: each source gets its share of the total; labels stay apart per source
        weights = np.array([dist.source[s] for s in dist.sources], dtype=float)
        shares = np.floor(weights / weights.sum() * dist.total).astype(np.int64)
        shares[: dist.total - shares.sum()] += 1
        parts = []
        for src, share in zip(dist.sources, shares):
            part = _select_one(ws, dist.model_copy(update={"source": src, "total": int(share)}), src, reporter)
            parts.append(part.assign(label_name=src + "/" + part["label_name"]))
        rows = pd.concat(parts, ignore_index=True)
    else:
        rows = _select_one(ws, dist, dist.source, reporter)
    names = np.array(sorted(rows["label_name"].unique()))
    rows.insert(2, "label", np.searchsorted(names, rows["label_name"].to_numpy()).astype("int32"))
    return rows


def manifest_id(rows: pd.DataFrame) -> str:
    """The content id of manifest rows (the encoding is in the module docstring)."""
    h = hashlib.sha256(_ID_PREFIX)
    h.update(np.uint64(len(rows)).astype("<u8").tobytes())
    for col in MANIFEST_COLUMNS:
        values = rows[col]
        h.update(col.encode() + b"\0")
        if col in _INT_COLUMNS:
            h.update(values.to_numpy().astype("<i8").tobytes())
        else:
            encoded = [str(v).encode("utf-8") for v in values.tolist()]
            h.update(np.fromiter(map(len, encoded), dtype="<u4", count=len(encoded)).tobytes())
            h.update(b"".join(encoded))
    return h.hexdigest()[:16]


def read_rekeyed(ws: Workspace) -> dict[str, dict[str, str]]:
    """Legacy ids re-keyed in this workspace: {"manifests": {old: new}, "runs": {old: new}}."""
    path = ws.manifests / REKEYED_FILE
    data = json.loads(path.read_text()) if path.is_file() else {}
    return {"manifests": dict(data.get("manifests", {})), "runs": dict(data.get("runs", {}))}


def build_manifest(ws: Workspace, dist: Distribution, reporter: Reporter = SILENT) -> ManifestInfo:
    if dist.weights is not None:
        raise ManifestError(f"distribution {dist.name!r} starts from weights {dist.weights}: it has no manifest "
                            "(no images are sampled for it)")
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
            "manifest_id": mid, "id_scheme": ID_SCHEME, "distribution": dist.identity(), "n_images": info.n_images,
            "n_classes": info.n_classes, "min_per_class": info.min_per_class, "max_per_class": info.max_per_class,
        })
    return info


def load_manifest(ws: Workspace, mid: str) -> pd.DataFrame:
    path = ws.manifests / f"{mid}.parquet"
    if not path.exists():  # a legacy id (a job queued before its workspace was re-keyed)
        path = ws.manifests / f"{read_rekeyed(ws)['manifests'].get(mid, mid)}.parquet"
    if not path.exists():
        raise ManifestError(f"manifest {mid} is not in {ws.manifests}; rebuild it with `divrob recipes build RECIPE`")
    return pd.read_parquet(path)
