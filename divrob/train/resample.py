"""Crop-and-resize of a batch of cached squares in one go, with PIL's antialiased bilinear weights.

Each output row (and column) is a weighted sum of input rows (columns): the triangle filter
that PIL's (and torchvision's `antialias=True`) bilinear resize uses, widened by the scale factor
when shrinking, centred on the output pixel's centre mapped into the input, cut at the box's
border (torchvision crops, then resizes) and renormalised. Written as one (S x C) matrix per image and axis, the crop-and-resize
of a whole batch is two batched matmuls, for boxes of any (fractional) size and position; a
horizontal flip is the column matrix reversed.
"""

from __future__ import annotations


def to_device(t, device):
    """A small CPU tensor on `device` without making the CPU wait for the GPU: through pinned
    memory, asynchronously (a pageable copy may synchronise with the stream, and the CPU must
    stay a step ahead of the GPU)."""
    if device.type != "cuda":
        return t
    return t.pin_memory().to(device, non_blocking=True)


def axis_plan(start, length, out_size: int):
    """(n, out_size + 3) float32 on the CPU: where each output pixel's centre falls in the input,
    the filter's half-width, and the box's start and end (all in input pixels)."""
    import torch

    start = torch.as_tensor(start, dtype=torch.float64)
    length = torch.as_tensor(length, dtype=torch.float64)
    scale = length / out_size
    centre = start[:, None] + (torch.arange(out_size, dtype=torch.float64) + 0.5) * scale[:, None]
    support = scale.clamp(min=1.0)  # the triangle's half-width: wider when shrinking (antialias)
    return torch.cat([centre, support[:, None], start[:, None], (start + length)[:, None]], 1).float()


def axis_weights(plan, in_size: int, dtype):
    """(n, out_size, in_size) resampling weights from an `axis_plan` (on the weights' device);
    pixel k of the input covers [k, k + 1)."""
    import torch

    centre, support, start, end = plan[:, :-3], plan[:, -3:-2], plan[:, -2:-1], plan[:, -1:]
    pos = torch.arange(in_size, dtype=torch.float32, device=plan.device) + 0.5
    w = (1 - (pos[None, None, :] - centre[:, :, None]).abs() / support[:, :, None]).clamp_(min=0)
    # torchvision crops before it resizes, so the filter never reaches past the box: keep the
    # pixels whose centres lie inside it (all of them if a box is thinner than one pixel)
    cut = w * ((pos[None, :] >= start) & (pos[None, :] <= end))[:, None, :]
    w = torch.where(cut.sum(-1, keepdim=True) > 0, cut, w)
    return w.div_(w.sum(-1, keepdim=True)).to(dtype)


def resample_boxes(frames, x0, y0, x1, y1, out_size: int, flip=None):
    """Float (n, 3, out_size, out_size) in 0..255 from uint8 (n, C, C, 3) `frames` on any device:
    the box [x0, x1) x [y0, y1) of each (CPU values, in cached pixels) resized to out_size
    square, mirrored left-right where `flip`."""
    import torch

    n, c, device = frames.shape[0], frames.shape[1], frames.device
    # fp16 keeps 0..255 exact and the weights to ~5e-4: well under one grey level; the GPU's
    # tensor cores then make the resampling a small fraction of a training step
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    x0, y0 = torch.as_tensor(x0, dtype=torch.float64), torch.as_tensor(y0, dtype=torch.float64)
    plans = torch.stack([axis_plan(y0, torch.as_tensor(y1) - y0, out_size),
                         axis_plan(x0, torch.as_tensor(x1) - x0, out_size)])
    flips = torch.zeros(n, dtype=torch.bool) if flip is None else torch.as_tensor(flip, dtype=torch.bool)
    plans, flips = to_device(plans, device), to_device(flips, device)
    wy, wx = axis_weights(plans[0], c, dtype), axis_weights(plans[1], c, dtype)
    wx = torch.where(flips[:, None, None], wx.flip(1), wx)
    x = frames.permute(0, 3, 1, 2).to(dtype).reshape(n, 3 * c, c)  # rows of every channel
    x = torch.bmm(x, wx.transpose(1, 2)).reshape(n, 3, c, out_size)  # columns resampled
    return torch.matmul(wy[:, None], x).float()  # then rows: (n, 3, S, S)
