"""The data path: images decoded once into a uint8 cache (memory-mapped .npy, shared by every
run that uses the same images at the same resolution), then batched tensor augmentation.

Decoding once matters: a PIL decode per sample per epoch cannot feed a GPU (DESIGN.md), and on
the CPU it dominates small-model training. Augmentation is one batched affine warp.
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

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DecodedImages:
    images: np.ndarray  # (N, S, S, 3) uint8, memory-mapped
    labels: np.ndarray  # (N,) int64
    valid: np.ndarray  # (N,) bool: False where the file was corrupt or unreadable

    @property
    def n_skipped(self) -> int:
        return int((~self.valid).sum())


def _decode_one(path: Path, size: int) -> np.ndarray | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            scale = size / min(w, h)
            nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
            im = im.resize((nw, nh), Image.BILINEAR)
            left, top = (nw - size) // 2, (nh - size) // 2
            im = im.crop((left, top, left + size, top + size))
            return np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def decode_images(
    paths: Sequence[Path],
    labels: np.ndarray,
    size: int,
    cache_dir: Path,
    reporter: Reporter = SILENT,
    description: str = "decoding",
    workers: int | None = None,
) -> DecodedImages:
    """Decode `paths` (resize shorter side, centre crop to size x size) into a cached array."""
    key = short_hash([str(p) for p in paths] + [size])
    img_path = cache_dir / f"{key}-{size}px.npy"
    valid_path = cache_dir / f"{key}-{size}px-valid.npy"
    labels = np.asarray(labels, dtype=np.int64)
    if img_path.exists() and valid_path.exists():
        return DecodedImages(np.load(img_path, mmap_mode="r"), labels, np.load(valid_path))
    cache_dir.mkdir(parents=True, exist_ok=True)
    n = len(paths)
    valid = np.ones(n, dtype=bool)
    workers = workers or min(8, os.cpu_count() or 1)
    task = reporter.task(description, total=n)
    try:
        with atomic_path(img_path) as tmp:
            # open_memmap writes the .npy header, so the cache can be bigger than memory
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
            chunk = 256
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for start in range(0, n, chunk):
                    batch = list(pool.map(lambda p: _decode_one(p, size), paths[start:start + chunk]))
                    for j, arr in enumerate(batch):
                        if arr is None:
                            valid[start + j] = False
                        else:
                            out[start + j] = arr
                    task.advance(len(batch))
            out.flush()
            del out
        with atomic_path(valid_path) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, valid)
    finally:
        task.close()
    return DecodedImages(np.load(img_path, mmap_mode="r"), labels, valid)


def batch_order(valid: np.ndarray, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """The sample order of an epoch: a pure function of (seed, epoch), so a resumed run sees the
    same batches as one never interrupted."""
    idx = np.nonzero(valid)[0]
    if shuffle:
        idx = np.random.default_rng([seed, epoch, 0xBA7C4]).permutation(idx)
    return idx


def normalize(x_u8):
    """uint8 NHWC tensor → ImageNet-normalised float NCHW, on the tensor's device. NHWC viewed as
    NCHW already has channels_last strides, so no copy is needed for the layout."""
    import torch

    x = x_u8.permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def augment_theta(b: int, generator, min_scale: float = 0.08):
    """The (b, 2, 3) affine crop-and-flip matrices of a batch, drawn on the CPU from `generator`.

    Drawn separately from applying them so that data-parallel ranks can draw the whole global
    batch from one shared generator and each apply only its own rows: the augmentation then
    does not depend on the number of processes.
    """
    import math

    import torch

    scale = torch.empty(b).uniform_(min_scale, 1.0, generator=generator)
    log_r = torch.empty(b).uniform_(math.log(3 / 4), math.log(4 / 3), generator=generator)
    ratio = torch.exp(log_r)
    w = torch.sqrt(scale * ratio).clamp(max=1.0)
    h = torch.sqrt(scale / ratio).clamp(max=1.0)
    cx = (torch.rand(b, generator=generator) * 2 - 1) * (1 - w)
    cy = (torch.rand(b, generator=generator) * 2 - 1) * (1 - h)
    flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = w * flip
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    return theta


def apply_affine(x, theta):
    import torch
    import torch.nn.functional as F

    grid = F.affine_grid(theta.to(x.device, non_blocking=True), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out.contiguous(memory_format=torch.channels_last)
