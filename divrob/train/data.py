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

Why this format. Bytes per image and the rate of turning them into model input, measured by
`benchmarks/bench_train_cache.py` on real 640 x 427 and 512 x 600 photos (CPU figures from a
2-core machine under load: lower bounds; GPU figures: `benchmarks/gpu_suite.sh`):

| cache                           | bytes/image | into model input                                   |
|---------------------------------|-------------|----------------------------------------------------|
| uint8 square C = 2S = 448       | 602,112     | gather 1,300-2,800 img/s per thread, then a copy   |
| (divrob's default)              |             | to the GPU and two batched matmuls there           |
| uint8 square C = S = 224        | 150,528     | same, 4x fewer bytes; small crops upsampled        |
|                                 |             | up to 3.5x and blurred (mean error 2.7-6.6 levels) |
| JPEG q90 of the 448 square      | ~51,000     | PIL decode 1,000-1,800 img/s per core; JPEG loss   |
| the original JPEG               | ~78,000     | PIL decode + RandomResizedCrop 290-590 img/s/core  |

Against torchvision's crops of the original photos, the 448 square's crops differ by 1.0-2.9
grey levels on average (re-saving the photos as quality-75 JPEGs changes them by 1.2-2.7), the
224 square's by 2.7-6.6.

The raw square costs disk and page cache (ImageNet-1k at C = 448: 771 GB; at C = 256: 252 GB;
iWildCam's 203k frames at 448: 122 GB) but costs no CPU decode at all: gathering a batch is a
memory copy split over the phase's `workers` threads, the copy to the GPU moves uint8, and the
crop-and-resize is a few percent of a ResNet-50 step. Its fine-tuning input is WILDS's bit for
bit. A JPEG cache of the same squares is 12x smaller and would need ~4-7 CPU cores per GPU
decoding to feed ResNet-50 (4.7-6.8k img/s on an H200), or GPU time for nvJPEG (~10k img/s on
an H200, time the model then does not get), and it adds its own compression error. The original
JPEGs (the reference recipe's loader) need ~12-25 cores per GPU. `decode_size` (a recipe's phase
key) trades bytes against the resolution of small crops.
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
