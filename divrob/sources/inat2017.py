"""iNaturalist 2017: `<root>/train2017.json` (COCO-style) and the image tree it points to,
`<root>/train_val_images/<Supercategory>/<Species name>/<hash>.jpg`.

The index comes from the json alone: columns path (the json's `file_name`, relative to
root), class_id, class_name (the species name), category_id (the json's id) and
supercategory. It is cached until the json's size or mtime changes; images are never
stat'ed. Only the image tree's top-level folder and one image are checked to exist —
checking all 579K files would take minutes on a network file system — so a partially
extracted tree shows up later, when an image fails to open.

Class names: a species name that more than one category carries becomes
`<supercategory>/<name>` for every category carrying it, and, if that is still not unique,
`<supercategory>/<name> (<category_id>)`. Names are made unique over all categories in the
json, so a class's name does not depend on which images are present.

Images without an annotation are left out; an image with several annotations keeps the
first (iNat 2017 has exactly one per image).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pandas as pd

from divrob.errors import SourceError
from divrob.fileio import short_hash
from divrob.progress import SILENT, Reporter
from divrob.sources.index import cached_index

INAT2017_LAYOUT = (
    "the iNaturalist 2017 layout: <root>/train2017.json (COCO-style, with images, "
    "annotations and categories) and <root>/train_val_images/<Supercategory>/<Species>/<hash>.jpg"
)
SPLIT_FILES = {"train": "train2017.json", "val": "val2017.json"}
_READ_CHUNK = 8 << 20


def _read_json(path: Path, reporter: Reporter) -> dict:
    size = path.stat().st_size
    task = reporter.task(f"reading {path.name}", total=size)
    chunks: list[bytes] = []
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_READ_CHUNK):
                chunks.append(chunk)
                task.advance(len(chunk))
        task.update(description=f"parsing {path.name}")
        try:
            data = json.loads(b"".join(chunks))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SourceError(f"{path} is not valid JSON ({e}); expected {INAT2017_LAYOUT}") from None
    finally:
        task.close()
    if not isinstance(data, dict):
        raise SourceError(f"{path} is not a JSON object; expected {INAT2017_LAYOUT}")
    return data


def _records(data: dict, key: str, fields: tuple[str, ...], json_path: Path) -> list[tuple]:
    """The `fields` of every record of `data[key]`, as tuples; SourceError naming what is missing."""
    records = data.get(key)
    if not isinstance(records, list):
        raise SourceError(f"{json_path} has no {key!r} list; expected {INAT2017_LAYOUT}")
    try:
        return [tuple(r[f] for f in fields) for r in records]
    except (KeyError, TypeError):
        for i, r in enumerate(records):
            missing = [f for f in fields if not isinstance(r, dict) or f not in r]
            if missing:
                raise SourceError(
                    f"{json_path}: {key}[{i}] lacks {', '.join(missing)}; expected {INAT2017_LAYOUT}"
                ) from None
        raise


def unique_class_names(categories: list[tuple[int, str, str]]) -> dict[int, str]:
    """category id -> a class name unique over all categories (see the module docstring)."""
    name_count = Counter(name for _, name, _ in categories)
    qualified = {cid: (f"{sup}/{name}" if name_count[name] > 1 else name) for cid, name, sup in categories}
    q_count = Counter(qualified.values())
    return {cid: (f"{q} ({cid})" if q_count[q] > 1 else q) for cid, q in qualified.items()}


def _build(json_path: Path, reporter: Reporter) -> pd.DataFrame:
    data = _read_json(json_path, reporter)
    images = _records(data, "images", ("id", "file_name"), json_path)
    annotations = _records(data, "annotations", ("image_id", "category_id"), json_path)
    categories = _records(data, "categories", ("id", "name", "supercategory"), json_path)
    del data

    names = unique_class_names(categories)
    supers = {cid: sup for cid, _, sup in categories}
    category_of: dict = {}
    for image_id, category_id in annotations:
        category_of.setdefault(image_id, category_id)

    task = reporter.task(f"indexing {json_path.name}", total=len(images))
    paths: list[str] = []
    cat_ids: list[int] = []
    try:
        for i, (image_id, file_name) in enumerate(images):
            cid = category_of.get(image_id)
            if cid is None:
                continue
            if cid not in names:
                raise SourceError(
                    f"{json_path}: image {image_id} has category_id {cid}, which is not among "
                    f"its categories; expected {INAT2017_LAYOUT}"
                )
            paths.append(str(file_name).replace("\\", "/").removeprefix("./"))
            cat_ids.append(int(cid))
            if i % 65536 == 65535:
                task.advance(65536)
        task.advance(len(images) % 65536)
    finally:
        task.close()
    if not paths:
        raise SourceError(f"{json_path} lists no annotated images; expected {INAT2017_LAYOUT}")
    skipped = len(images) - len(paths)
    if skipped:
        reporter.log(f"{json_path.name}: {skipped} images without an annotation left out")
    return pd.DataFrame(
        {
            "path": paths,
            "class_name": [names[c] for c in cat_ids],
            "category_id": pd.Series(cat_ids, dtype="int64"),
            "supercategory": [str(supers[c]) for c in cat_ids],
        }
    )


def _check_tree(root: Path, first_path: str) -> None:
    top = first_path.split("/", 1)[0]
    if not (root / top).is_dir():
        raise SourceError(
            f"image tree {root / top} not found (the json's file_names point there); "
            f"expected {INAT2017_LAYOUT}"
        )
    if not (root / first_path).is_file():
        raise SourceError(
            f"image {root / first_path} listed in the json is missing (is the image archive fully "
            f"extracted into {root}?); expected {INAT2017_LAYOUT}"
        )


def index_inat2017(
    root: Path, cache_dir: Path, reporter: Reporter = SILENT, *, split: str = "train"
) -> pd.DataFrame:
    """Index iNaturalist 2017 (`split` "train" reads train2017.json, "val" val2017.json):
    columns path, class_id, class_name, category_id, supercategory."""
    root = Path(root)
    if split not in SPLIT_FILES:
        raise SourceError(f"unknown iNaturalist 2017 split {split!r}; choose one of {sorted(SPLIT_FILES)}")
    if not root.is_dir():
        raise SourceError(f"iNaturalist 2017 root {root} is not a directory; expected {INAT2017_LAYOUT}")
    json_path = root / SPLIT_FILES[split]
    if not json_path.is_file():
        raise SourceError(f"{json_path} not found; expected {INAT2017_LAYOUT}")
    st = os.stat(json_path)
    fingerprint = short_hash([str(json_path.resolve()), st.st_size, st.st_mtime_ns])
    key = "inat2017" if split == "train" else f"inat2017-{split}"
    df = cached_index(Path(cache_dir), key, fingerprint, lambda: _build(json_path, reporter))
    _check_tree(root, str(df["path"].iloc[0]))
    return df
