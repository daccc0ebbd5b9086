"""RandomResizedCrop boxes with torchvision's semantics, drawn for a whole batch at once.

For each frame, in its *original* pixels (width W, height H), as
`torchvision.transforms.RandomResizedCrop.get_params` does: up to 10 tries of an area uniform in
`scale` x W x H and an aspect ratio log-uniform in `ratio`, w = round(sqrt(area x ratio)),
h = round(sqrt(area / ratio)); the first try with 0 < w <= W and 0 < h <= H is placed uniformly
(top in [0, H - h], left in [0, W - w]); if none fits, the centre crop of the whole frame clamped
to the ratio range. Then a horizontal flip with probability 1/2 (RandomHorizontalFlip).

The draws come from one CPU generator for the whole global batch: data-parallel ranks draw the
same boxes and each keeps its own rows, so the augmentation does not depend on the number of
processes, and the generator's state in a checkpoint resumes it exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

RATIO = (3 / 4, 4 / 3)
TRIES = 10


@dataclass(frozen=True)
class Crops:
    """Boxes in original pixels, as torchvision's (i, j, h, w), plus a flip flag per box."""

    boxes: object  # torch.int64 (n, 4): top, left, height, width
    flip: object  # torch.bool (n,)

    def __getitem__(self, rows) -> "Crops":
        return Crops(self.boxes[rows], self.flip[rows])

    def __len__(self) -> int:
        return len(self.boxes)


def epoch_generator(seed: int, epoch: int):
    """The CPU generator of an epoch's crops (its state is checkpointed mid-epoch)."""
    import torch

    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def draw_crops(sizes, generator, scale: tuple[float, float] = (0.08, 1.0), ratio: tuple[float, float] = RATIO,
               flip: bool = True) -> Crops:
    """One RandomResizedCrop box (and flip) per row of `sizes`, an (n, 2) array of original
    (width, height)."""
    import torch

    wh = torch.as_tensor(sizes, dtype=torch.float64).reshape(-1, 2)
    n = len(wh)
    width, height = wh[:, 0], wh[:, 1]
    f64 = {"dtype": torch.float64}
    area = (width * height)[:, None] * torch.empty(n, TRIES, **f64).uniform_(scale[0], scale[1], generator=generator)
    log_r = torch.empty(n, TRIES, **f64).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    w = torch.round(torch.sqrt(area * torch.exp(log_r)))  # round half to even, as Python's round
    h = torch.round(torch.sqrt(area / torch.exp(log_r)))
    fits = (w > 0) & (w <= width[:, None]) & (h > 0) & (h <= height[:, None])
    first = fits.to(torch.uint8).argmax(1, keepdim=True)  # the first try that fits
    found = fits.any(1)
    w, h = w.gather(1, first)[:, 0], h.gather(1, first)[:, 0]

    # torchvision's fallback: the whole frame, clamped to the ratio range, centred
    in_ratio = width / height
    too_tall, too_wide = in_ratio < min(ratio), in_ratio > max(ratio)
    fw = torch.where(too_wide, torch.round(height * max(ratio)), width)
    fh = torch.where(too_tall, torch.round(width / min(ratio)), height)
    w, h = torch.where(found, w, fw), torch.where(found, h, fh)

    u = torch.rand(n, 2, generator=generator, **f64)
    top = torch.where(found, torch.floor(u[:, 0] * (height - h + 1)), torch.div(height - h, 2, rounding_mode="floor"))
    left = torch.where(found, torch.floor(u[:, 1] * (width - w + 1)), torch.div(width - w, 2, rounding_mode="floor"))
    flips = torch.rand(n, generator=generator) < 0.5
    if not flip:
        flips = torch.zeros(n, dtype=torch.bool)
    boxes = torch.stack([top, left, h, w], 1).to(torch.int64)
    return Crops(boxes, flips)


def whole_frames(sizes) -> Crops:
    """The box of each whole frame, unflipped: the input without augmentation."""
    import torch

    wh = torch.as_tensor(sizes, dtype=torch.int64).reshape(-1, 2)
    zeros = torch.zeros(len(wh), dtype=torch.int64)
    return Crops(torch.stack([zeros, zeros, wh[:, 1], wh[:, 0]], 1), torch.zeros(len(wh), dtype=torch.bool))
