"""demo-shapes: an offline pre-training source of procedurally drawn objects.

Each class is one (shape, colour palette, texture) combination; images vary in position,
scale, rotation, colour jitter, background and distractors, so telling classes apart needs
shape, colour and texture features together rather than one trivial cue. The output is a
plain ImageFolder (`<root>/<class_name>/<00000>.png`) that `index_image_folder` reads.

Generation is numpy-only (no torch, no drawing library): masks and textures are evaluated
analytically on a 2x supersampled grid and box-downsampled, which is fast and anti-aliased.
"""

from __future__ import annotations

from functools import lru_cache
from math import gcd
from pathlib import Path

import numpy as np
from PIL import Image

from divrob.errors import SourceError
from divrob.fileio import atomic_dir, write_json_atomic
from divrob.sources.generated import check_existing
from divrob.progress import SILENT, Reporter

PARAMS_FILE = "demo_shapes.json"
# Bumped whenever the drawing code changes output, so old directories are not reused silently.
GENERATOR_VERSION = 1

SHAPES = ("circle", "square", "triangle", "star", "cross", "ring", "hexagon", "diamond", "crescent", "heart")
# (primary, secondary) RGB; textures mix the two so a palette stays recognisable under any texture.
PALETTES = {
    "red": ((205, 35, 35), (255, 185, 160)),
    "orange": ((240, 130, 20), (120, 50, 10)),
    "yellow": ((235, 210, 40), (140, 110, 10)),
    "green": ((40, 160, 50), (190, 240, 150)),
    "teal": ((20, 150, 150), (10, 60, 70)),
    "blue": ((40, 70, 210), (170, 200, 255)),
    "purple": ((130, 40, 170), (230, 180, 250)),
    "pink": ((240, 110, 180), (120, 20, 70)),
    "brown": ((120, 75, 35), (220, 180, 120)),
}
TEXTURES = ("solid", "stripes", "dots", "checker", "waves", "grid", "rings")
MAX_CLASSES = len(SHAPES) * len(PALETTES) * len(TEXTURES)

_S, _P, _T = len(SHAPES), len(PALETTES), len(TEXTURES)
# class_spec is a bijection on range(MAX_CLASSES) only under these coprimality conditions.
assert gcd(_S + 1, _P) == 1 and gcd((_S + 1) * _P + 1, _T) == 1


def class_spec(k: int) -> tuple[str, str, str]:
    """The (shape, palette, texture) of class k.

    A skewed mixed-radix enumeration: consecutive classes differ in all three attributes,
    so even a 10-class run mixes shapes, colours and textures, and every k < MAX_CLASSES
    gets a distinct combination.
    """
    q, s = divmod(k, _S)
    t0 = q // _P
    p = (k + q) % _P
    t = (k + q + t0) % _T
    return SHAPES[s], list(PALETTES)[p], TEXTURES[t]


def class_name(k: int) -> str:
    shape, palette, texture = class_spec(k)
    return f"c{k:03d}-{shape}-{palette}-{texture}"


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of a unit-radius shape in its local (rotated, scaled) coordinates."""
    r = np.hypot(u, v)
    if shape == "circle":
        return r < 0.9
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) < 0.7
    if shape in ("triangle", "hexagon"):
        n = 3 if shape == "triangle" else 6
        sector = 2 * np.pi / n
        a = np.arctan2(v, u)
        return r * np.cos(np.mod(a, sector) - sector / 2) < np.cos(np.pi / n) * 0.98
    if shape == "star":
        a = np.arctan2(v, u)
        return r < 0.38 + 0.6 * (0.5 + 0.5 * np.cos(5 * a)) ** 2.5
    if shape == "cross":
        au, av = np.abs(u), np.abs(v)
        return ((au < 0.27) & (av < 0.92)) | ((av < 0.27) & (au < 0.92))
    if shape == "ring":
        return (r > 0.5) & (r < 0.92)
    if shape == "diamond":
        return np.abs(u) / 0.62 + np.abs(v) / 0.95 < 1
    if shape == "crescent":
        return (r < 0.9) & (np.hypot(u - 0.38, v) > 0.7)
    if shape == "heart":
        x, y = u * 1.15, -v * 1.15 + 0.15
        return (x * x + y * y - 1) ** 3 - x * x * y**3 < 0
    raise ValueError(shape)


def _texture(texture: str, u: np.ndarray, v: np.ndarray, freq: float) -> np.ndarray:
    """Weight of the secondary colour (0..1) in local coordinates, so texture rotates with the shape."""
    if texture == "solid":
        return np.zeros_like(u)
    if texture == "stripes":
        return (np.sin(u * freq) > 0).astype(np.float32)
    if texture == "dots":
        fu, fv = np.mod(u * freq / np.pi, 1) - 0.5, np.mod(v * freq / np.pi, 1) - 0.5
        return (fu * fu + fv * fv < 0.09).astype(np.float32)
    if texture == "checker":
        return (np.mod(np.floor(u * freq / np.pi) + np.floor(v * freq / np.pi), 2)).astype(np.float32)
    if texture == "waves":
        return (np.sin(u * freq + 1.6 * np.sin(v * freq * 0.8)) > 0).astype(np.float32)
    if texture == "grid":
        fu, fv = np.mod(u * freq / np.pi, 1), np.mod(v * freq / np.pi, 1)
        return ((fu < 0.28) | (fv < 0.28)).astype(np.float32)
    if texture == "rings":
        return (np.sin(np.hypot(u, v) * freq * 1.3) > 0).astype(np.float32)
    raise ValueError(texture)


@lru_cache(maxsize=8)
def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:n, 0:n].astype(np.float32)
    ys.flags.writeable = xs.flags.writeable = False
    return ys, xs


@lru_cache(maxsize=8)
def _upsample_matrix(n: int, m: int) -> np.ndarray:
    """(n, m) linear-interpolation weights: smooth blotches from an m x m grid of values."""
    pos = np.linspace(0, m - 1, n)
    w = np.maximum(0, 1 - np.abs(pos[:, None] - np.arange(m)[None, :])).astype(np.float32)
    w.flags.writeable = False
    return w


def _background(rng: np.random.Generator, n: int) -> np.ndarray:
    """A gradient between two random colours plus low-frequency blotches and pixel noise."""
    c0, c1 = rng.uniform(0, 255, 3).astype(np.float32), rng.uniform(0, 255, 3).astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi)
    ys, xs = _grid(n)
    t = (np.cos(theta) * xs + np.sin(theta) * ys) / (n - 1)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0 + t[..., None] * (c1 - c0)
    coarse = rng.normal(0, rng.uniform(5, 30), (4, 4, 3)).astype(np.float32)
    w = _upsample_matrix(n, 4)
    img += np.einsum("yi,ijc,xj->yxc", w, coarse, w, optimize=True)
    img += rng.normal(0, rng.uniform(2, 14), (n, n, 3)).astype(np.float32)
    return img


def _local_coords(rng: np.random.Generator, n: int, radius_frac: tuple[float, float], margin: float):
    """Pixel grid mapped to a randomly placed, scaled and rotated unit-radius frame."""
    radius = rng.uniform(*radius_frac) * n
    cx, cy = rng.uniform(radius * margin, n - radius * margin, 2)
    return local_frame(n, cx, cy, radius, rng.uniform(0, 2 * np.pi))


def local_frame(n: int, cx: float, cy: float, radius: float, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """The n x n pixel grid in the unit-radius frame centred at (cx, cy), rotated by theta."""
    ys, xs = _grid(n)
    dx, dy = (xs + 0.5 - cx) / radius, (ys + 0.5 - cy) / radius
    c, s = np.cos(theta), np.sin(theta)
    # Image y points down; flip it so shapes such as the heart keep their handedness.
    return c * dx + s * dy, s * dx - c * dy


def _downsample2(a: np.ndarray) -> np.ndarray:
    return (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]) * 0.25


def paint_object(u: np.ndarray, v: np.ndarray, shape: str, palette: str, texture: str,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One object on a 2x supersampled grid of local coordinates (u, v): its coverage (alpha,
    n x n x 1) and premultiplied colour (n x n x 3) after box-downsampling to half the grid.
    The camtrap-sim creatures are drawn with this too, so pre-training on demo-shapes can
    teach exactly the shapes and textures they are made of."""
    mask = _shape_mask(shape, u, v).astype(np.float32)
    primary, secondary = (np.asarray(c, np.float32) for c in PALETTES[palette])
    jitter = (rng.uniform(0.85, 1.15, 3) * rng.uniform(0.85, 1.15)).astype(np.float32)
    primary, secondary = primary * jitter, secondary * jitter
    w = _texture(texture, u, v, freq=rng.uniform(7.0, 10.0))
    # Soft shading so objects are not perfectly flat cut-outs.
    shade = (1 + 0.085 * (u - v)) * mask
    fill = (primary * (1 - w)[..., None] + secondary * w[..., None]) * shade[..., None]
    return _downsample2(mask)[..., None], _downsample2(fill)


def render_image(k: int, rng: np.random.Generator, size: int) -> np.ndarray:
    """One image of class k as a (size, size, 3) uint8 array."""
    shape, palette, texture = class_spec(k)
    img = _background(rng, size)

    # Distractors: faint, small, random shapes so "any blob of colour X" is not enough.
    for _ in range(rng.integers(0, 3)):
        u, v = _local_coords(rng, size, (0.07, 0.14), 1.0)
        alpha = _shape_mask(SHAPES[rng.integers(_S)], u, v).astype(np.float32) * rng.uniform(0.3, 0.7)
        img += alpha[..., None] * (rng.uniform(0, 255, 3).astype(np.float32) - img)

    # The object is drawn on a 2x grid and box-downsampled: anti-aliased edges and textures.
    u, v = _local_coords(rng, 2 * size, (0.22, 0.42), 1.05)
    alpha, fill = paint_object(u, v, shape, palette, texture, rng)
    img = img * (1 - alpha) + fill
    return np.clip(img, 0, 255).astype(np.uint8)


def _params(classes: int, per_class: int, size: int, seed: int) -> dict:
    return {
        "source": "demo-shapes",
        "generator_version": GENERATOR_VERSION,
        "classes": classes,
        "per_class": per_class,
        "size": size,
        "seed": seed,
    }


def _validate(classes: int, per_class: int, size: int, seed: int) -> None:
    for name, val in (("classes", classes), ("per_class", per_class), ("size", size), ("seed", seed)):
        if not isinstance(val, (int, np.integer)) or isinstance(val, bool):
            raise SourceError(f"demo-shapes: {name} must be an integer, got {val!r}")
    if classes < 1 or classes > MAX_CLASSES:
        raise SourceError(f"demo-shapes: classes must be between 1 and {MAX_CLASSES}, got {classes}")
    if per_class < 1:
        raise SourceError(f"demo-shapes: per_class must be a positive integer, got {per_class}")
    if size < 16:
        raise SourceError(f"demo-shapes: size must be at least 16 pixels, got {size}")
    if seed < 0:
        raise SourceError(f"demo-shapes: seed must be non-negative, got {seed}")


def ensure_demo_shapes(
    root: Path,
    *,
    classes: int = 24,
    per_class: int = 120,
    size: int = 48,
    seed: int = 0,
    reporter: Reporter = SILENT,
) -> Path:
    """Generate the demo-shapes ImageFolder at `root` unless it is already there; return `root`."""
    root = Path(root)
    _validate(classes, per_class, size, seed)
    params = _params(int(classes), int(per_class), int(size), int(seed))
    if not check_existing(root, PARAMS_FILE, params, "demo-shapes"):
        return root

    task = reporter.task(f"generating demo-shapes ({classes} classes)", total=classes * per_class)
    try:
        with atomic_dir(root) as tmp:
            for k in range(classes):
                rng = np.random.default_rng([seed, k])
                cdir = tmp / class_name(k)
                cdir.mkdir()
                for i in range(per_class):
                    Image.fromarray(render_image(k, rng, size)).save(cdir / f"{i:05d}.png", format="PNG")
                task.advance(per_class)
            # Written last: its presence marks a complete dataset.
            names = [class_name(k) for k in range(classes)]
            write_json_atomic(tmp / PARAMS_FILE, params | {"class_names": names})
    finally:
        task.close()
    return root
