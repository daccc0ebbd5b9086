"""Crop-and-resize of a batch of cached squares in one go, with PIL's antialiased bilinear weights.

Each output row (and column) is a weighted sum of input rows (columns): the triangle filter
that PIL's (and torchvision's `antialias=True`) bilinear resize uses, widened by the scale factor
when shrinking, centred on the output pixel's centre mapped into the input, cut at the box's
border (torchvision crops, then resizes) and renormalised. Written as one (S x C) matrix per image and axis, the crop-and-resize
of a whole batch is two batched matmuls, for boxes of any (fractional) size and position; a
horizontal flip is the column matrix reversed.
"""

from __future__ import annotations


def axis_weights(start, length, in_size: int, out_size: int, device, dtype):
    """(n, out_size, in_size) weights that resample [start, start + length) of each row of an
    axis with `in_size` pixels to `out_size` pixels (pixel k covers [k, k + 1))."""
    import torch

    start = torch.as_tensor(start, dtype=torch.float64)
    length = torch.as_tensor(length, dtype=torch.float64)
    scale = length / out_size
    support = scale.clamp(min=1.0)  # the triangle's half-width in input pixels
    centre = start[:, None] + (torch.arange(out_size, dtype=torch.float64) + 0.5) * scale[:, None]
    pos = torch.arange(in_size, dtype=torch.float32, device=device) + 0.5
    centre = centre.to(device, torch.float32)
    dist = (pos[None, None, :] - centre[:, :, None]).abs_().div_(support.to(device, torch.float32)[:, None, None])
    w = (1 - dist).clamp_(min=0)
    # torchvision crops before it resizes, so the filter never reaches past the box: keep the
    # pixels whose centres lie inside it (all of them if a box is thinner than one pixel)
    end = (start + length).to(device, torch.float32)
    inside = (pos[None, :] >= start.to(device, torch.float32)[:, None]) & (pos[None, :] <= end[:, None])
    cut = w * inside[:, None, :]
    w = torch.where(cut.sum(-1, keepdim=True) > 0, cut, w)
    return w.div_(w.sum(-1, keepdim=True)).to(dtype)


def resample_boxes(frames, x0, y0, x1, y1, out_size: int, flip=None):
    """Float (n, 3, out_size, out_size) in 0..255 from uint8 (n, C, C, 3) `frames`: the box
    [x0, x1) x [y0, y1) of each (in cached pixels, per image) resized to out_size square,
    mirrored left-right where `flip`."""
    import torch

    n, c = frames.shape[0], frames.shape[1]
    # fp16 keeps 0..255 exact and the weights to ~5e-4: well under one grey level; the GPU's
    # tensor cores then make the resampling a small fraction of a training step
    dtype = torch.float16 if frames.device.type == "cuda" else torch.float32
    wy = axis_weights(y0, torch.as_tensor(y1) - torch.as_tensor(y0), c, out_size, frames.device, dtype)
    wx = axis_weights(x0, torch.as_tensor(x1) - torch.as_tensor(x0), c, out_size, frames.device, dtype)
    if flip is not None:
        flip = torch.as_tensor(flip).to(frames.device)
        wx = torch.where(flip[:, None, None], wx.flip(1), wx)
    x = frames.permute(0, 3, 1, 2).to(dtype)  # (n, 3, C, C)
    out = torch.matmul(torch.matmul(wy[:, None], x), wx.transpose(1, 2)[:, None])
    return out.float()
