"""Shared fixtures: tiny datasets in their real on-disk layouts, with real 8x8 JPEG files.

Session-scoped trees (`tiny_imagenet`, `tiny_inat2017`) are shared by every test: do not
modify them. A test that changes a tree builds its own with the factories
(`imagenet_factory`, `inat2017_factory`), which write a fresh tree on every call.

Each class's images have one colour of their own (class index k in sorted-name order), so a
model trained on a tiny set has something it can learn.
"""

from __future__ import annotations

import hashlib
import io
import json
from functools import lru_cache
from pathlib import Path
from typing import Callable

import pytest
from PIL import Image

IMAGE_SIZE = 8

# wnid -> number of train images (deliberately uneven and not in sorted order)
TINY_IMAGENET_COUNTS: dict[str, int] = {
    "n01443537": 2,  # goldfish
    "n01440764": 3,  # tench
    "n01491361": 1,  # tiger shark
    "n01484850": 4,  # great white shark
}
TINY_IMAGENET_VAL = 4  # flat val/ILSVRC2012_val_XXXXXXXX.JPEG files, as in the original tar

# (category_id, supercategory, species name, train images, val images); category ids are
# deliberately not in name order, as in the real json.
TINY_INAT2017_SPECIES: list[tuple[int, str, str, int, int]] = [
    (3, "Plantae", "Aconitum napellus", 3, 1),
    (0, "Aves", "Turdus migratorius", 2, 1),
    (7, "Insecta", "Danaus plexippus", 4, 1),
    (1, "Mammalia", "Odocoileus virginianus", 1, 1),
    (5, "Aves", "Cardinalis cardinalis", 2, 1),
]
INAT_IMAGE_DIR = "train_val_images"


def _colour(k: int) -> tuple[int, int, int]:
    return ((k * 97) % 256, (k * 53 + 80) % 256, (k * 31 + 160) % 256)


@lru_cache(maxsize=None)
def jpeg_bytes(k: int, size: int = IMAGE_SIZE) -> bytes:
    """A real JPEG of one colour (number k), encoded with PIL."""
    buf = io.BytesIO()
    Image.new("RGB", (size, size), _colour(k)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def write_imagenet(root: Path, counts: dict[str, int] | None = None, val: int = TINY_IMAGENET_VAL) -> Path:
    """Write `<root>/train/<wnid>/<wnid>_<n>.JPEG` and a flat `<root>/val/`; return root."""
    counts = TINY_IMAGENET_COUNTS if counts is None else counts
    colour = {wnid: k for k, wnid in enumerate(sorted(counts))}
    for wnid, n in counts.items():
        d = root / "train" / wnid
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            (d / f"{wnid}_{1000 + 7 * i}.JPEG").write_bytes(jpeg_bytes(colour[wnid]))
    (root / "val").mkdir(parents=True, exist_ok=True)
    for i in range(1, val + 1):
        (root / "val" / f"ILSVRC2012_val_{i:08d}.JPEG").write_bytes(jpeg_bytes(i % max(len(counts), 1)))
    return root


def _inat_file_name(cid: int, sup: str, name: str, split: str, i: int) -> str:
    digest = hashlib.md5(f"{cid}/{split}/{i}".encode()).hexdigest()
    return f"{INAT_IMAGE_DIR}/{sup}/{name}/{digest}.jpg"


def write_inat2017(root: Path, species: list[tuple[int, str, str, int, int]] | None = None) -> Path:
    """Write `<root>/train2017.json`, `<root>/val2017.json` and the images they list under
    `<root>/train_val_images/<Supercategory>/<Species>/<hash>.jpg`; return root."""
    species = TINY_INAT2017_SPECIES if species is None else species
    colour = {cid: k for k, (cid, *_rest) in enumerate(sorted(species, key=lambda s: (s[2], s[1])))}
    categories = [{"id": cid, "name": name, "supercategory": sup} for cid, sup, name, _, _ in species]
    next_id = {"image": 100, "ann": 5000}

    def split_json(split: str, count_of: Callable[[tuple], int]) -> dict:
        # Interleave species round-robin so the json's image order is not the index's order.
        queues = [[(s, i) for i in range(count_of(s))] for s in species]
        images, annotations = [], []
        while any(queues):
            for q in queues:
                if not q:
                    continue
                (cid, sup, name, _, _), i = q.pop(0)
                file_name = _inat_file_name(cid, sup, name, split, i)
                path = root / file_name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(jpeg_bytes(colour[cid]))
                image_id = next_id["image"]
                next_id["image"] += 1
                images.append({
                    "id": image_id, "width": IMAGE_SIZE, "height": IMAGE_SIZE, "file_name": file_name,
                    "license": 1, "rights_holder": "tiny fixture",
                })
                annotations.append({"id": next_id["ann"], "image_id": image_id, "category_id": cid})
                next_id["ann"] += 1
        return {
            "info": {"year": 2017, "version": "1.0", "description": "tiny iNaturalist 2017 fixture"},
            "licenses": [{"id": 1, "name": "CC BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"}],
            "images": images,
            "annotations": annotations,
            "categories": categories,
        }

    root.mkdir(parents=True, exist_ok=True)
    for split, col in (("train", 3), ("val", 4)):
        data = split_json(split, lambda s, col=col: s[col])
        (root / f"{split}2017.json").write_text(json.dumps(data))
    return root


def inat2017_counts(species: list[tuple[int, str, str, int, int]], split: str = "train") -> dict[str, int]:
    col = 3 if split == "train" else 4
    return {s[2]: s[col] for s in species}


@pytest.fixture
def anyio_backend():
    """Async tests (those marked anyio) run on asyncio only: Textual runs on asyncio."""
    return "asyncio"


@pytest.fixture(scope="session")
def tiny_imagenet(tmp_path_factory) -> Path:
    """An ILSVRC-2012 root (`train/<wnid>/*.JPEG`, flat `val/`) with TINY_IMAGENET_COUNTS images."""
    return write_imagenet(tmp_path_factory.mktemp("imagenet"))


@pytest.fixture(scope="session")
def tiny_imagenet_counts() -> dict[str, int]:
    """wnid -> train images in `tiny_imagenet`."""
    return dict(TINY_IMAGENET_COUNTS)


@pytest.fixture(scope="session")
def tiny_inat2017(tmp_path_factory) -> Path:
    """An iNaturalist 2017 root (train2017.json, val2017.json, train_val_images/) with
    TINY_INAT2017_SPECIES."""
    return write_inat2017(tmp_path_factory.mktemp("inat2017"))


@pytest.fixture(scope="session")
def tiny_inat2017_counts() -> dict[str, int]:
    """species name -> train images in `tiny_inat2017`."""
    return inat2017_counts(TINY_INAT2017_SPECIES)


@pytest.fixture(scope="session")
def imagenet_factory(tmp_path_factory) -> Callable[..., Path]:
    """`make(counts=None, val=4) -> root`: a fresh ILSVRC-2012 tree per call (safe to modify)."""
    def make(counts: dict[str, int] | None = None, val: int = TINY_IMAGENET_VAL) -> Path:
        return write_imagenet(tmp_path_factory.mktemp("imagenet"), counts, val)
    return make


@pytest.fixture(scope="session")
def inat2017_factory(tmp_path_factory) -> Callable[..., Path]:
    """`make(species=None) -> root`: a fresh iNaturalist 2017 tree per call (safe to modify);
    species rows are (category_id, supercategory, name, n_train, n_val)."""
    def make(species: list[tuple[int, str, str, int, int]] | None = None) -> Path:
        return write_inat2017(tmp_path_factory.mktemp("inat2017"), species)
    return make
