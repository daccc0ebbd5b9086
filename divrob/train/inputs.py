"""What the model sees: a batch of cached frames made into normalised model input on the device.

One function, `model_inputs`, serves the training loop, evaluation, `divrob data preview` and
the benchmarks, so what a preview shows is what training feeds:

- augmentation off: each whole frame resized to image_size square (WILDS's Resize((S, S)); the
  cache already holds exactly that when its side is S, so nothing is resampled);
- augmentation on: RandomResizedCrop boxes drawn in original pixels for the global batch
  (divrob.train.crops), this rank's rows mapped into the cached squares and resampled
  (divrob.train.resample), flipped where drawn;

then ToTensor's /255 and ImageNet's Normalize, in channels_last.
"""

from __future__ import annotations

import functools

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@functools.lru_cache(maxsize=8)
def _scale_shift(device):
    """(1 / (255 std), -mean / std) as (1, 3, 1, 1) tensors on `device`, made once per device
    (a fresh copy to the GPU every step could make the CPU wait for it)."""
    import torch

    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    return (1 / (255 * std)).view(1, 3, 1, 1).to(device), (-mean / std).view(1, 3, 1, 1).to(device)


def normalize(x):
    """Float NCHW in 0..255 → ImageNet-normalised float NCHW (channels_last), on x's device:
    ToTensor's /255, then Normalize(mean, std)."""
    import torch

    scale, shift = _scale_shift(x.device)
    return torch.addcmul(shift, x, scale).contiguous(memory_format=torch.channels_last)


def denormalize(x):
    """The inverse of `normalize`, as uint8 NHWC on the CPU (for looking at model input)."""
    import torch

    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x * std + mean).mul(255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu()


def crop_inputs(frames, sizes, crops, out_size: int):
    """Float (n, 3, S, S) in 0..255: each crop (in original pixels of a frame whose original
    size is the row of `sizes`) cut from its cached square `frames` (uint8 (n, C, C, 3), on the
    device) and resized to out_size, flipped where asked."""
    import torch

    from divrob.train.resample import resample_boxes

    side = frames.shape[1]
    wh = torch.as_tensor(sizes, dtype=torch.float64).reshape(-1, 2)
    sx, sy = side / wh[:, 0], side / wh[:, 1]  # original → cached pixels, per axis
    b = crops.boxes.to(torch.float64)
    top, left, h, w = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    return resample_boxes(frames, left * sx, top * sy, (left + w) * sx, (top + h) * sy, out_size, crops.flip)


def model_inputs(batch, out_size: int, device, *, augment: bool = False, generator=None,
                 crop_scale: float = 0.08):
    """Normalised model input for this rank's rows of a loader `Batch`.

    With `augment`, the crops of the whole global batch are drawn from `generator` (every rank
    draws the same ones) and this rank's rows are kept."""
    import torch

    from divrob.train.crops import draw_crops, whole_frames

    frames = batch.images.to(device, non_blocking=True)
    sizes = batch.sizes[batch.rows]
    if augment:
        crops = draw_crops(batch.sizes, generator, (crop_scale, 1.0))[batch.rows]
    elif frames.shape[1] == out_size:  # the cached square is the input: nothing to resample
        return normalize(frames.permute(0, 3, 1, 2).to(torch.float32))
    else:
        crops = whole_frames(sizes)
    return normalize(crop_inputs(frames, sizes, crops, out_size))
