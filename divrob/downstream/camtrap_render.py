"""camtrap-sim's drawing: procedural animal species and camera locations (habitat, lighting,
night-time IR, noise, blur, framing), rendered with numpy + PIL. Split logic lives in
camtrap_sim.py; everything here is a pure function of its random generator."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from divrob.sources.demo_shapes import (
    PALETTES,
    SHAPES,
    TEXTURES,
    local_frame,
    paint_object,
)

N_DAYS = 120  # length of a camera deployment; the vegetation follows a season over it

# The species are creatures built from demo-shapes' vocabulary: each one a body shape with a
# coat texture (every pair distinct) and a usual coat colour that an individual wears with
# probability COAT_COLOUR_SHARE (else any palette). Shape and coat pattern always tell species
# apart, colour only often: what pre-training on demo-shapes teaches is what identifies them.
PALETTE_NAMES = tuple(PALETTES)
SPECIES_LOOKS = tuple((SHAPES[k % len(SHAPES)], TEXTURES[(3 * k) % len(TEXTURES)]) for k in range(20))
SPECIES_PALETTES = tuple(PALETTE_NAMES[k % len(PALETTE_NAMES)] for k in range(20))
SPECIES = tuple(f"{shape}-{texture}" for shape, texture in SPECIES_LOOKS)
COAT_COLOUR_SHARE = 0.7

# habitat: ground, ground texture, vegetation, sky. The first five are where the training
# cameras stand (ID_TERRAINS); held-out cameras stand in the other three (OOD_TERRAINS).
TERRAINS = {
    "savanna": ((190, 160, 90), (150, 125, 70), (120, 120, 50), (170, 195, 225)),
    "grassland": ((105, 140, 60), (70, 110, 40), (50, 90, 30), (160, 190, 230)),
    "forest": ((80, 70, 50), (50, 45, 35), (40, 80, 35), (35, 60, 30)),
    "scrub": ((160, 130, 100), (120, 100, 80), (90, 100, 60), (185, 200, 215)),
    "wetland": ((95, 90, 70), (75, 95, 105), (70, 110, 60), (150, 170, 190)),
    "rocky": ((140, 135, 130), (95, 90, 88), (100, 105, 80), (200, 205, 215)),
    "dunes": ((215, 150, 90), (180, 110, 60), (150, 120, 60), (215, 205, 190)),
    "burnt": ((50, 45, 42), (85, 75, 65), (70, 60, 45), (175, 170, 165)),
}
ID_TERRAINS = ("savanna", "grassland", "forest", "scrub", "wetland")
OOD_TERRAINS = ("rocky", "dunes", "burnt")


@dataclass(frozen=True)
class Location:
    terrain: str
    base: np.ndarray  # (size, size, 3) float32 background seen by this fixed camera
    horizon: float  # pixel row of the horizon
    veg: np.ndarray
    scale: float  # how large creatures look at this camera (1: average)
    brightness: float
    contrast: float
    cast: np.ndarray
    night_frac: float
    noise: float
    blur: float
    occlusion: float
    bar: str  # "", "top" or "bottom": an info strip burnt in by the camera model


def _rgb(c) -> np.ndarray:
    return np.asarray(c, np.float32)


def _smooth_noise(rng: np.random.Generator, n: int, cells: int) -> np.ndarray:
    """Bilinearly upsampled random grid: blotchy, low-frequency variation."""
    pos = np.linspace(0, cells - 1, n)
    w = np.maximum(0, 1 - np.abs(pos[:, None] - np.arange(cells)[None, :])).astype(np.float32)
    return w @ rng.normal(0, 1, (cells, cells)).astype(np.float32) @ w.T


def make_location(rng: np.random.Generator, size: int, ood: bool, terrain: str | None = None) -> Location:
    """A fixed camera: its background and imaging conditions. `terrain` None draws one (an ID
    habitat, or any habitat for an OOD camera)."""
    if terrain is None:
        terrain = str(rng.choice(list(TERRAINS) if ood else list(ID_TERRAINS)))
    elif terrain not in TERRAINS:
        raise ValueError(f"unknown terrain {terrain!r}")
    ground, tex, veg, sky = (_rgb(c) * rng.uniform(0.85, 1.15, 3).astype(np.float32) for c in TERRAINS[terrain])
    n = size
    horizon = rng.uniform(-0.1, 0.5) * n  # negative: the camera looks down, no sky
    ys, xs = np.mgrid[0:n, 0:n].astype(np.float32)
    depth = np.clip((ys - horizon) / max(n - horizon, 1.0), 0, 1)[..., None]
    # Ground: blotches plus vertical grass-like streaks, darker towards the horizon.
    blot = _smooth_noise(rng, n, 6)[..., None]
    streak = np.repeat(rng.uniform(0, 1, (1, n)), n, 0)[..., None] * rng.uniform(0, 1, (n, 1, 1))
    ground_img = ground + (tex - ground) * np.clip(0.5 + 0.35 * blot + 0.4 * (streak - 0.25), 0, 1)
    ground_img = ground_img * (0.8 + 0.25 * depth)
    sky_img = sky * (1.05 - 0.25 * ys[..., None] / n)
    img = np.where((ys >= horizon)[..., None], ground_img, sky_img)
    # A band of bushes and trees along the horizon, then a few trunks and rocks.
    band = (np.abs(ys - horizon + 2) < 2 + 4 * np.clip(_smooth_noise(rng, n, 8), 0, None)) & (horizon > 2)
    img = np.where(band[..., None], veg * (0.7 + 0.3 * rng.uniform(0, 1, (n, n, 1))), img)
    for _ in range(rng.integers(0, 6 if terrain == "forest" else 3)):
        x0, w = rng.uniform(0, n), rng.uniform(1, 0.08 * n)
        top = horizon - rng.uniform(0.1, 0.6) * n
        trunk = (np.abs(xs - x0) < w / 2) & (ys > top) & (ys < horizon + rng.uniform(0, 0.4) * n)
        img = np.where(trunk[..., None], tex * 0.45, img)
    for _ in range(rng.integers(0, 4 if terrain == "rocky" else 2)):
        cx, cy, r = rng.uniform(0, n), rng.uniform(max(horizon, 0), n), rng.uniform(0.04, 0.12) * n
        rock = ((xs - cx) / r) ** 2 + ((ys - cy) / (0.6 * r)) ** 2 < 1
        img = np.where(rock[..., None], _rgb((130, 125, 120)) * rng.uniform(0.6, 1.2), img)
    # Held-out cameras are the same kind of unit as the training ones: the shift is the habitat
    # (and, in camtrap_sim, the species no longer following it), not the imaging.
    return Location(
        terrain=terrain,
        base=img.astype(np.float32),
        horizon=float(horizon),
        veg=veg,
        scale=float(rng.uniform(0.85, 1.15)),
        brightness=float(rng.uniform(0.75, 1.2)),
        contrast=float(rng.uniform(0.7, 1.15)),
        cast=(1 + rng.normal(0, 0.07, 3)).astype(np.float32),
        night_frac=float(rng.uniform(0, 0.25)),
        noise=float(rng.uniform(2, 8)),
        blur=float(rng.choice([0.0, 0.0, 0.4, 0.7])),
        occlusion=float(rng.uniform(0, 0.4)),
        bar=str(rng.choice(["", "top", "bottom"])),
    )


def _ellipse(x, y, cx, cy, rx, ry, ang=0.0):
    c, s = np.cos(ang), np.sin(ang)
    dx, dy = x - cx, y - cy
    return ((c * dx + s * dy) / rx) ** 2 + ((-s * dx + c * dy) / ry) ** 2 < 1


def _segment(x, y, x0, y0, x1, y1, w):
    """Capsule of half-width w around the segment (x0, y0)-(x1, y1)."""
    vx, vy = x1 - x0, y1 - y0
    t = np.clip(((x - x0) * vx + (y - y0) * vy) / (vx * vx + vy * vy + 1e-9), 0, 1)
    return (x - x0 - t * vx) ** 2 + (y - y0 - t * vy) ** 2 < w * w


def _downsample2(a: np.ndarray) -> np.ndarray:
    return (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]) * 0.25


def render_image(k: int, loc: Location, day: int, rng: np.random.Generator, size: int,
                 coat_colour_share: float = COAT_COLOUR_SHARE):
    n = size
    img = loc.base.copy()
    # Season: the vegetation greens up and dries out over the N_DAYS of the deployment.
    season = np.sin(2 * np.pi * day / N_DAYS)
    img *= _rgb((1 - 0.04 * season, 1 + 0.05 * season, 1 - 0.04 * season))

    # Farther creatures (feet nearer the horizon) are smaller; some stand half out of frame.
    top = max(loc.horizon, 0) + 0.1 * (n - max(loc.horizon, 0))
    foot = rng.uniform(top, n * 1.02)
    depth = (foot - loc.horizon) / max(n - loc.horizon, 1.0)
    radius = n * rng.uniform(0.24, 0.36) * (0.85 + 0.3 * depth) * loc.scale
    edge = rng.uniform() < 0.15  # walking into or out of the frame
    cx = (rng.uniform(-0.05, 1.05) if edge else rng.uniform(0.2, 0.8)) * n
    cy = foot - 0.85 * radius
    shape, texture = SPECIES_LOOKS[k]
    usual = rng.uniform() < coat_colour_share
    palette = SPECIES_PALETTES[k] if usual else PALETTE_NAMES[rng.integers(len(PALETTE_NAMES))]
    m = 2 * n  # the creature is drawn on a 2x grid and box-downsampled for anti-aliasing
    u, v = local_frame(m, 2 * cx, 2 * cy, 2 * radius, rng.uniform(0, 2 * np.pi))
    alpha, fill = paint_object(u, v, shape, palette, texture, rng)
    ys, xs = np.mgrid[0:m, 0:m].astype(np.float32) / 2 + 0.25
    shadow = _ellipse(xs, ys, cx, foot, 0.9 * radius, 0.15 * radius)
    img *= 1 - 0.35 * _downsample2(shadow.astype(np.float32))[..., None]
    img = img * (1 - alpha) + fill

    if rng.uniform() < loc.occlusion:  # foreground grass or a bush in front of the animal
        yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
        tops = n * rng.uniform(0.6, 0.85) + 3 * np.sin(xx)
        blades = (np.sin(xx * rng.uniform(1.5, 3.0) + rng.uniform(0, 6)) > 0.3) & (yy > tops)
        bush = _ellipse(xx, yy, rng.uniform(0, n), n, rng.uniform(0.15, 0.35) * n, rng.uniform(0.2, 0.45) * n)
        occ = blades if rng.uniform() < 0.5 else bush
        img = np.where(occ[..., None], loc.veg * rng.uniform(0.5, 0.9, (n, n, 1)).astype(np.float32), img)

    if rng.uniform() < loc.night_frac:
        # Night: monochrome IR flash, bright in the middle and falling off to the corners.
        yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n - 0.5
        lum = img @ _rgb((0.3, 0.55, 0.15))
        flash = 1.15 - 1.3 * (xx * xx + yy * yy)
        img = np.repeat((lum * flash * rng.uniform(0.55, 0.9))[..., None], 3, 2)
        noise = loc.noise * 2
    else:
        tod = rng.uniform(0.75, 1.15)  # dawn to noon
        img = ((img - 128) * loc.contrast + 128) * loc.brightness * tod * loc.cast
        noise = loc.noise
    img += rng.normal(0, noise, img.shape).astype(np.float32)
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    if loc.blur > 0:
        out = out.filter(ImageFilter.GaussianBlur(loc.blur))
    if loc.bar:
        arr = np.array(out)
        rows = slice(0, max(2, n // 12)) if loc.bar == "top" else slice(n - max(2, n // 12), n)
        arr[rows] = 0
        arr[rows, n // 2 : n // 2 + rng.integers(2, n // 3)] = 200  # the timestamp text
        out = Image.fromarray(arr)
    return out
