"""camtrap-sim's drawing: procedural animal species and camera locations (habitat, lighting,
night-time IR, noise, blur, framing), rendered with numpy + PIL. Split logic lives in
camtrap_sim.py; everything here is a pure function of its random generator."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

N_DAYS = 120  # length of a camera deployment; the vegetation follows a season over it

# name, body half-height, leg length, leg width, neck length, neck angle (deg), head radius,
# snout elongation, tail length, tail angle (deg, + is up), head extra, coat, belly, marking,
# marking colour, biped. Units are body lengths. Ordered from most to least common.
_SPECIES_TABLE = [
    ("impala", .22, .55, .035, .28, 55, .09, 1.7, .12, -60, "horns", (165, 100, 50), (235, 220, 200), "none", (40, 30, 20), False),
    ("zebra", .24, .48, .05, .30, 40, .10, 1.9, .30, -70, "pointy", (232, 232, 226), (232, 232, 226), "stripes", (20, 20, 20), False),
    ("wildebeest", .27, .50, .045, .20, 30, .12, 1.7, .30, -70, "horns", (85, 85, 95), (70, 70, 78), "none", (35, 35, 40), False),
    ("buffalo", .30, .35, .07, .10, 10, .14, 1.3, .20, -80, "horns", (45, 40, 40), (40, 35, 35), "none", (20, 20, 20), False),
    ("warthog", .24, .22, .045, .05, 0, .14, 1.6, .20, 60, "tusks", (115, 100, 90), (100, 90, 80), "none", (240, 235, 220), False),
    ("guineafowl", .38, .25, .02, .15, 70, .08, 1.2, .10, 20, "none", (55, 60, 80), (55, 60, 80), "spots", (230, 230, 240), True),
    ("gazelle", .20, .50, .03, .25, 55, .08, 1.7, .10, -50, "horns", (200, 145, 85), (245, 235, 220), "sidestripe", (50, 35, 25), False),
    ("elephant", .36, .50, .11, .05, 0, .22, 1.0, .20, -80, "trunk", (125, 120, 118), (115, 110, 108), "none", (125, 120, 118), False),
    ("giraffe", .25, .85, .04, .90, 68, .08, 1.8, .30, -75, "ossicones", (225, 185, 110), (230, 200, 140), "patches", (120, 60, 25), False),
    ("hyena", .27, .45, .05, .15, 25, .14, 1.4, .18, -60, "round", (165, 145, 105), (175, 160, 120), "spots", (60, 45, 30), False),
    ("baboon", .25, .35, .05, .08, 10, .14, 1.2, .35, 40, "none", (120, 110, 80), (140, 130, 100), "none", (120, 110, 80), False),
    ("lion", .26, .45, .06, .12, 20, .15, 1.3, .45, -30, "mane", (200, 150, 70), (220, 180, 110), "none", (105, 65, 30), False),
    ("hare", .30, .18, .03, .05, 30, .15, 1.3, .06, 30, "long", (140, 120, 95), (220, 210, 195), "none", (140, 120, 95), False),
    ("ostrich", .35, .70, .03, .60, 80, .07, 1.5, .15, 20, "none", (30, 28, 28), (200, 160, 150), "saddle", (240, 240, 235), True),
    ("leopard", .22, .38, .045, .10, 15, .12, 1.2, .55, -20, "round", (215, 175, 85), (235, 215, 170), "spots", (45, 35, 20), False),
    ("porcupine", .38, .15, .04, .02, 0, .13, 1.4, .10, -20, "none", (30, 25, 25), (30, 25, 25), "quills", (235, 235, 230), False),
    ("aardvark", .30, .30, .06, .05, -10, .12, 2.4, .35, -40, "long", (175, 140, 130), (165, 130, 120), "none", (175, 140, 130), False),
    ("cheetah", .20, .55, .035, .12, 20, .10, 1.2, .50, -40, "round", (220, 180, 100), (240, 225, 190), "spots", (30, 25, 20), False),
    ("honey-badger", .30, .20, .05, .03, 0, .13, 1.3, .12, 10, "none", (25, 25, 25), (25, 25, 25), "saddle", (215, 215, 210), False),
    ("mongoose", .20, .16, .035, .05, 10, .09, 1.6, .55, -10, "round", (95, 75, 55), (110, 90, 70), "none", (95, 75, 55), False),
]
SPECIES = tuple(row[0] for row in _SPECIES_TABLE)

# habitat: ground, ground texture, vegetation, sky. The first five are where the training
# cameras stand; OOD cameras draw from all of them.
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


@dataclass(frozen=True)
class Location:
    terrain: str
    base: np.ndarray  # (size, size, 3) float32 background seen by this fixed camera
    horizon: float  # pixel row of the horizon
    veg: np.ndarray
    scale: float  # pixels per body length for an animal at the bottom edge
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


def make_location(rng: np.random.Generator, size: int, ood: bool) -> Location:
    terrain = str(rng.choice(list(TERRAINS) if ood else list(ID_TERRAINS)))
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
    # Held-out cameras are also older, noisier units used more at night: part of the shift.
    hard = 1.0 if ood else 0.0
    return Location(
        terrain=terrain,
        base=img.astype(np.float32),
        horizon=float(horizon),
        veg=veg,
        scale=float(rng.uniform(0.5, 0.9) * n),
        brightness=float(rng.uniform(0.75, 1.2)),
        contrast=float(rng.uniform(0.7, 1.15)),
        cast=(1 + rng.normal(0, 0.07, 3)).astype(np.float32),
        night_frac=float(rng.uniform(0, 0.35 + 0.25 * hard)),
        noise=float(rng.uniform(2, 8 + 6 * hard)),
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


def _draw_animal(k: int, rng: np.random.Generator, x: np.ndarray, y: np.ndarray):
    """Coverage mask and colour of species k in body-length units (feet at y=0, facing +x)."""
    (_, h, legs, lw, neck, neck_ang, head, snout, tail, tail_ang, extra,
     coat, belly, marking, mark, biped) = _SPECIES_TABLE[k]
    jitter = rng.uniform(0.88, 1.12, 3).astype(np.float32)
    coat, belly, mark = _rgb(coat) * jitter, _rgb(belly) * jitter, _rgb(mark)
    legs *= rng.uniform(0.9, 1.1)
    y = y - (legs + 0.6 * h)  # body centre at the origin
    body = _ellipse(x, y, 0, 0, 0.5, h)
    leg_mask = np.zeros_like(body)
    swing = rng.uniform(-0.35, 0.35)
    for lx in ((0.0,) if biped else (-0.33, 0.33)):
        for side in (-1, 1):
            x0 = lx + 0.04 * side
            leg_mask |= _segment(x, y, x0, -0.5 * h, x0 + legs * np.sin(swing * side), -0.6 * h - legs, lw)
    # Grazing animals drop the head; alert ones raise it.
    grazing = rng.uniform() < 0.3 and neck > 0.15
    ang = np.radians(neck_ang + (rng.uniform(-70, -40) if grazing else rng.uniform(-12, 12)))
    nx0, ny0 = 0.4, 0.3 * h
    nx1, ny1 = nx0 + (neck + 0.08) * np.cos(ang), ny0 + (neck + 0.08) * np.sin(ang)
    neck_mask = _segment(x, y, nx0, ny0, nx1, ny1, max(lw * 1.3, head * 0.5))
    hang = np.radians(-25) + (ang - np.radians(neck_ang)) * 0.5
    hrx = head * snout * 0.75
    hcx, hcy = nx1 + hrx * 0.55 * np.cos(hang), ny1 + hrx * 0.55 * np.sin(hang)
    head_mask = _ellipse(x, y, hcx, hcy, hrx, head * 0.8, hang)
    tip_x, tip_y = hcx + hrx * np.cos(hang), hcy + hrx * np.sin(hang)
    tang = np.radians(tail_ang + rng.uniform(-15, 15))
    tx, ty = -0.47, 0.3 * h
    tail_mask = _segment(x, y, tx, ty, tx - tail * np.cos(tang), ty + tail * np.sin(tang), 0.025)
    extra_mask, extra_col = np.zeros_like(body), coat
    ex, ey = nx1, ny1 + head * 0.7
    if extra == "pointy":
        extra_mask = _ellipse(x, y, ex, ey + head * 0.4, head * 0.22, head * 0.5, 0.3)
    elif extra == "long":
        extra_mask = _ellipse(x, y, ex - head * 0.2, ey + head * 1.1, head * 0.25, head * 1.2, 0.35)
    elif extra == "round":
        extra_mask = _ellipse(x, y, ex - head * 0.1, ey + head * 0.2, head * 0.35, head * 0.35)
    elif extra in ("horns", "ossicones"):
        length = head * (1.6 if extra == "horns" else 0.7)
        extra_mask = _segment(x, y, ex, ey, ex - 0.3 * length, ey + length, 0.018)
        extra_col = _rgb((60, 50, 40))
    elif extra == "tusks":
        extra_mask = _segment(x, y, tip_x - 0.05, tip_y, tip_x, tip_y + head * 0.7, 0.015)
        extra_col = mark
    elif extra == "trunk":
        extra_mask = _segment(x, y, tip_x, tip_y, tip_x + 0.05, -(legs + 0.6 * h) + 0.12, head * 0.22)
        extra_mask |= _ellipse(x, y, nx1 - 0.05, ny1, head * 0.6, head * 0.9)  # ears
    elif extra == "mane":
        extra_mask = _ellipse(x, y, nx1 - 0.02, ny1, head * 1.15, head * 1.2) & ~head_mask
        extra_col = mark
    mask = body | leg_mask | neck_mask | head_mask | tail_mask | extra_mask

    # Colour: coat, lighter/darker belly, then the species' marking on the pelt.
    col = np.where((body & (y < -0.35 * h))[..., None], belly, coat)
    ph = rng.uniform(0, 2 * np.pi, 2)  # pattern phase: every individual has its own coat
    if marking == "stripes":
        m = (np.sin(x * 32 + ph[0] + 3 * y) > 0.1) & (body | leg_mask | neck_mask | head_mask)
    elif marking == "spots":
        m = (np.sin(x * 36 + ph[0]) * np.sin(y * 36 + ph[1]) > 0.55) & (body | neck_mask | leg_mask)
    elif marking == "patches":
        m = (np.abs(np.sin(x * 18 + ph[0])) > 0.3) & (np.abs(np.sin(y * 18 + ph[1])) > 0.3) & (body | neck_mask)
    elif marking == "sidestripe":
        m = body & (np.abs(y + 0.15 * h) < 0.06)
    elif marking == "saddle":
        m = body & (y > 0.25 * h) if not biped else body & (x < -0.25)
    elif marking == "quills":
        m = body & (np.sin((x + y) * 40 + ph[0]) > 0.3)
    else:
        m = np.zeros_like(body)
    col = np.where(m[..., None], mark, col)
    col = np.where((extra_mask & ~body)[..., None], extra_col, col)
    if biped:
        col = np.where((leg_mask & ~body)[..., None], belly, col)
    shade = 0.82 + 0.3 * np.clip((y + legs) / (2 * h + legs), 0, 1)  # light from above
    return mask, col * shade[..., None]


def _downsample2(a: np.ndarray) -> np.ndarray:
    return (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]) * 0.25


def render_image(k: int, loc: Location, day: int, rng: np.random.Generator, size: int) -> np.ndarray:
    n = size
    img = loc.base.copy()
    # Season: the vegetation greens up and dries out over the N_DAYS of the deployment.
    season = np.sin(2 * np.pi * day / N_DAYS)
    img *= _rgb((1 - 0.04 * season, 1 + 0.05 * season, 1 - 0.04 * season))

    # Farther animals (feet nearer the horizon) are smaller; some stand half out of frame.
    top = max(loc.horizon, 0) + 0.1 * (n - max(loc.horizon, 0))
    foot = rng.uniform(top, n * 1.02)
    depth = (foot - loc.horizon) / max(n - loc.horizon, 1.0)
    scale = loc.scale * (0.45 + 0.6 * depth) * rng.uniform(0.8, 1.2)
    edge = rng.uniform() < 0.15  # walking into or out of the frame
    cx = (rng.uniform(-0.05, 1.05) if edge else rng.uniform(0.2, 0.8)) * n
    facing = rng.choice([-1.0, 1.0])
    m = 2 * n  # the animal is drawn on a 2x grid and box-downsampled for anti-aliasing
    ys, xs = np.mgrid[0:m, 0:m].astype(np.float32) / 2 + 0.25
    mask, col = _draw_animal(k, rng, (xs - cx) / scale * facing, (foot - ys) / scale)
    shadow = _ellipse(xs, ys, cx, foot, 0.45 * scale, 0.06 * scale)
    alpha = mask.astype(np.float32)
    img *= 1 - 0.35 * _downsample2(shadow.astype(np.float32))[..., None]
    a = _downsample2(alpha)[..., None]
    img = img * (1 - a) + _downsample2(col * alpha[..., None])

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
