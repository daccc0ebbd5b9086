"""The decode-once cache: every frame decoded once, whole, into a memory-mapped uint8 array shared
by every run that uses the same images at the same cache size.

Format. Frame k is stored once as a C x C RGB square: the whole frame resized to C x C (PIL,
bilinear with antialiasing: exactly torchvision's `Resize((C, C))` of the decoded file), beside
its original (width, height). Nothing is cropped. What the model sees is made from it on the
device, per batch (divrob.train.inputs):

- without augmentation (fine-tuning and evaluation, WILDS's `image_base`), C is the input size
  S, so the cached square *is* `Resize((S, S))` of the frame, bit for bit;
- with augmentation (pre-training), RandomResizedCrop boxes are drawn in the frame's original
  pixels (divrob.train.crops), mapped into the square by the per-axis factors C/width and
  C/height, and resampled to S x S with antialiased bilinear weights (divrob.train.resample).
  C defaults to 2S, so a crop of the smallest default area (8% of the frame) still spans 0.28 C
  = 127 cached pixels for S = 224: about the resolution torchvision's crop of a 500 x 375
  ImageNet original has (122 px), so small crops are not upsampled more than the reference does.

Why this format (bytes per image, and what it costs to turn them into model input):

| cache                          | bytes/image       | turned into model input                        |
|--------------------------------|-------------------|------------------------------------------------|
| uint8 square C = 2S = 448      | 602,112           | gather + copy + 2 batched matmuls on the GPU   |
| uint8 square C = S = 224       | 150,528           | same; small crops upsampled up to 3.5x         |
| JPEG (q 90) of the 448 square  | ~50-90 k (photos) | PIL decode ~150-300 img/s per core; nvJPEG     |
|                                |                   | ~10k img/s, but on the GPU the model needs     |
| the original JPEGs             | ~110 k (ImageNet) | decode + crop per image, ~360 img/s per core   |

The raw square costs disk and page cache (ImageNet-1k at C = 448: 771 GB; at C = 256: 252 GB)
but turns into model input at memory speed: the loader thread gathers rows with one numpy copy,
the copy to the GPU moves uint8, and the crop-and-resize is two small matmuls per batch, a few
percent of a ResNet-50 step. A JPEG cache is 7-10x smaller, but decoding it needs either ~20
CPU cores per GPU (PIL) or GPU time the model would otherwise use (nvJPEG decodes ~10k img/s on
an H200, against 4.7-6.8k img/s for ResNet-50 training): end-to-end would fall well below the
0.9 of model-bound that DESIGN.md asks. `decode_size` (a recipe's phase key) trades bytes for
resolution of small crops; `benchmarks/gpu_suite.sh` measures the images/s.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from divrob.fileio import atomic_path, short_hash
from divrob.progress import SILENT, Reporter

CACHE_FORMAT = "whole-frame-square/1"  # part of every cache key: other formats never collide


@dataclass(frozen=True)
class DecodedImages:
    images: np.ndarray  # (N, C, C, 3) uint8, memory-mapped: each whole frame resized to C x C
    labels: np.ndarray  # (N,) int64
    sizes: np.ndarray  # (N, 2) int32: each frame's original (width, height); (0, 0) if unreadable

    @property
    def valid(self) -> np.ndarray:
        """(N,) bool: False where the file was corrupt or unreadable."""
        return self.sizes[:, 0] > 0

    @property
    def n_skipped(self) -> int:
        return int((~self.valid).sum())

    @property
    def side(self) -> int:
        return int(self.images.shape[1])


def decode_frame(path: Path, side: int) -> tuple[np.ndarray, int, int] | None:
    """The whole frame resized to side x side (torchvision's `Resize((side, side))` on the PIL
    image: bilinear, antialiased) and its original width and height; None if unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            return np.asarray(im.resize((side, side), Image.BILINEAR), dtype=np.uint8), w, h
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def decode_images(
    paths: Sequence[Path],
    labels: np.ndarray,
    side: int,
    cache_dir: Path,
    reporter: Reporter = SILENT,
    description: str = "decoding",
    workers: int | None = None,
) -> DecodedImages:
    """Decode `paths` once into the cache (whole frames at side x side, original sizes beside)."""
    key = short_hash([CACHE_FORMAT] + [str(p) for p in paths] + [side])
    img_path = cache_dir / f"{key}-{side}px.npy"
    sizes_path = cache_dir / f"{key}-{side}px-sizes.npy"
    labels = np.asarray(labels, dtype=np.int64)
    if img_path.exists() and sizes_path.exists():  # sizes are written last: their presence = complete
        return DecodedImages(np.load(img_path, mmap_mode="r"), labels, np.load(sizes_path))
    cache_dir.mkdir(parents=True, exist_ok=True)
    n = len(paths)
    sizes = np.zeros((n, 2), dtype=np.int32)
    workers = workers or min(8, os.cpu_count() or 1)
    task = reporter.task(description, total=n)
    try:
        with atomic_path(img_path) as tmp:
            # open_memmap writes the .npy header, so the cache can be bigger than memory
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, side, side, 3))
            chunk = 256
            with ThreadPoolExecutor(max_workers=workers) as pool:  # PIL decodes without the GIL
                for start in range(0, n, chunk):
                    batch = list(pool.map(lambda p: decode_frame(p, side), paths[start:start + chunk]))
                    for j, got in enumerate(batch):
                        if got is not None:
                            out[start + j], sizes[start + j, 0], sizes[start + j, 1] = got
                    task.advance(len(batch))
            out.flush()
            del out
        with atomic_path(sizes_path) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, sizes)
    finally:
        task.close()
    return DecodedImages(np.load(img_path, mmap_mode="r"), labels, sizes)


def phase_images(paths: Sequence[Path], labels, cfg, cache_dir: Path, *, training: bool,
                 reporter: Reporter = SILENT, description: str = "decoding") -> DecodedImages:
    """A phase's images in the cache at the size its input is made from: training images at
    `cfg.train_decode_size`, evaluation images at `cfg.image_size` (WILDS's eval input)."""
    side = cfg.train_decode_size if training else cfg.image_size
    return decode_images(paths, labels, side, cache_dir, reporter, description)


def batch_order(valid: np.ndarray, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """The sample order of an epoch: a pure function of (seed, epoch), so a resumed run sees the
    same batches as one never interrupted."""
    idx = np.nonzero(valid)[0]
    if shuffle:
        idx = np.random.default_rng([seed, epoch, 0xBA7C4]).permutation(idx)
    return idx
