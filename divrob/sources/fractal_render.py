"""FractalDB rendering: iterated function systems (IFS) drawn with many chaos-game chains at once.

The procedure is Kataoka et al.'s (ACCV 2020, "Pre-training without Natural Images"), read from
their public code (hirokatsukataoka16/FractalDB-Pretrained-ResNet-PyTorch: param_search/,
fractal_renderer/, exe.sh):

* a category is an IFS of 2-7 affine maps (a, b, c, d, e, f) drawn uniformly from [-1, 1]; map
  i is chosen with probability |det_i| / sum |det| (det = ad - bc);
* a candidate is kept if its point rendering (100k points, 512 px, 6 px padding, one pixel per
  point) covers at least 20% of the pixels (the "filling rate");
* an instance multiplies one of the six parameters, in every map, by a weight: 25 variants
  (the unchanged system and a..f times 1-2s, 1-s, 1+s, 1+2s; the code ships s = 0.1, i.e.
  {0.8, 0.9, 1.1, 1.2}, as its default weights file), each rendered `repeats` times with
  fresh random 3x3 patches, each render saved with 4 flips (none, vertical, horizontal, both):
  25 x 10 x 4 = 1000 instances per category;
* a render plays the chaos game from (0, 0), rescales the points to [pad, size - pad] on both
  axes, and pastes at every point a 3x3 patch whose cells are switched on by a random 9-bit mask
  (1..511), in gray 127 on black; the image is flipped vertically (y points up).

Where we differ, and why:

* One chain of 200k steps is inherently sequential; we run `chains` independent chains of
  points/chains steps each, after a burn-in that is discarded, so each step is one vectorised
  operation over every chain of every image in a batch. All chains sample the same invariant
  measure; the discarded burn-in replaces the original's transient points near the origin
  (which with hundreds of chains would be hundreds of times more numerous).
* The original reuses one random sequence (np.random.seed(100)) for every render; here every
  render has its own, so repeats differ in their points as well as their patches.
* The original shifts points to start at 0 only when their minimum is negative (a minimum
  above 0 overflows the image); we always rescale min..max onto the padded image.
"""

from __future__ import annotations

import numpy as np

SEARCH_SIZE = 512
SEARCH_PAD = 6
SEARCH_POINTS = 100_000
FILL_THRESHOLD = 0.2
PAD = 6
PATCH = 3
GRAY = 127
MIN_MAPS, MAX_MAPS = 2, 7
# Enough steps to forget the origin: accepted systems contract by ~0.5-0.8 per step, so 32 steps
# put a chain within a fraction of a pixel of the attractor.
BURN_IN = 32
FLIPS = 4


def random_ifs(rng: np.random.Generator) -> np.ndarray:
    """One candidate system: (n_maps, 7) rows (a, b, c, d, e, f, probability)."""
    n = int(rng.integers(MIN_MAPS, MAX_MAPS + 1))
    maps = rng.uniform(-1.0, 1.0, (n, 6))
    det = np.abs(maps[:, 0] * maps[:, 3] - maps[:, 1] * maps[:, 2])
    return np.concatenate([maps, (det / det.sum())[:, None]], axis=1)


def weight_variants(step: float = 0.1) -> np.ndarray:
    """(25, 6) multipliers of (a..f), in the order of the original weights files: for each
    parameter 1-2s, 1-s, [1 once, after the first parameter's 1-s], 1+s, 1+2s."""
    rows = []
    for p in range(6):
        for f in (1 - 2 * step, 1 - step, 1.0, 1 + step, 1 + 2 * step):
            if f == 1.0 and p > 0:
                continue
            w = np.ones(6)
            w[p] = f
            rows.append(w)
    return np.stack(rows)


def resolve_device(device: str | None = "auto"):
    import torch

    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def uniforms(seed_words: list[int], shape: tuple[int, ...], device) -> "torch.Tensor":
    """Uniform [0, 1) float32 numbers reproducible from seed_words.

    On the CPU numpy's PCG64 (stable across numpy and torch versions); on a GPU torch's Philox,
    generated where it is used (copying CPU numbers would cap a GPU at a few hundred images/s).
    So a CPU and a GPU give different, equally valid, images for the same seed.
    """
    import torch

    if device.type == "cpu":
        return torch.from_numpy(np.random.default_rng(seed_words).random(shape, dtype=np.float32))
    return torch.rand(shape, generator=_cuda_generator(seed_words, device), device=device)


def chain_uniforms(seeds: list[list[int]], steps: int, chains: int, device) -> "torch.Tensor":
    """(steps, R, chains) map-choice uniforms, one seeded stream per render: a render's image
    then does not depend on which other renders share its batch."""
    import torch

    return torch.stack([uniforms(s, (steps, chains), device) for s in seeds], dim=1)


def chain_points(systems: list[np.ndarray], u: "torch.Tensor", burn_in: int = BURN_IN):
    """Play the chaos game for R systems at once.

    systems: R arrays (n_maps, 7); u: (steps, R, chains) uniforms choosing the map at each step.
    Returns x, y: (steps - burn_in, R, chains) float32 (non-finite where a chain diverged).
    """
    import torch

    device = u.device
    steps, r, chains = u.shape
    coef = torch.zeros(r, MAX_MAPS, 6, dtype=torch.float32)
    cum = torch.full((r, MAX_MAPS), 2.0, dtype=torch.float32)  # padding maps are never chosen
    for i, s in enumerate(systems):
        n = len(s)
        coef[i, :n] = torch.from_numpy(s[:, :6].astype(np.float32))
        c = np.cumsum(s[:, 6])
        c[-1] = 1.0  # rounding must not leave u in [sum, 1) unmapped
        cum[i, :n] = torch.from_numpy(c.astype(np.float32))
    # (6, R * MAX_MAPS): gathering along dim 1 gives six contiguous coefficient planes per step,
    # which index_select does several times faster than advanced indexing on the CPU.
    table = coef.reshape(r * MAX_MAPS, 6).t().contiguous().to(device)
    cum = cum.to(device)
    # One searchsorted for all steps: the table column used per (step, system, chain).
    k = torch.searchsorted(cum, u.permute(1, 0, 2).reshape(r, -1), right=True)
    k += (torch.arange(r, device=device) * MAX_MAPS)[:, None]
    k = k.view(r, steps, chains).permute(1, 0, 2).reshape(steps, r * chains)
    x = torch.zeros(r * chains, device=device)
    y = torch.zeros(r * chains, device=device)
    keep = steps - burn_in
    xs = torch.empty(keep, r * chains, device=device)
    ys = torch.empty(keep, r * chains, device=device)
    for t in range(steps):
        a, b, c, d, e, f = table.index_select(1, k[t])
        nx = torch.addcmul(torch.addcmul(e, a, x), b, y)
        y = torch.addcmul(torch.addcmul(f, c, x), d, y)
        x = nx
        if t >= burn_in:
            xs[t - burn_in] = x
            ys[t - burn_in] = y
    xs, ys = xs.view(keep, r, chains), ys.view(keep, r, chains)
    return xs, ys


def to_pixels(xs, ys, size: int, pad: int):
    """Rescale each system's points (dim 1 of (steps, R, chains)) to [pad, size - pad], y flipped
    so it points up. Returns flat pixel indices into an (R, size, size) stack, same shape as xs,
    and a validity mask (None when every point is finite, the usual case)."""
    import torch

    r = xs.shape[1]
    valid = torch.isfinite(xs) & torch.isfinite(ys)
    if bool(valid.all()):
        valid = None
    span = float(size - 2 * pad)

    def scale(v):
        if valid is None:
            lo, hi = v.amin(dim=(0, 2), keepdim=True), v.amax(dim=(0, 2), keepdim=True)
        else:
            inf = torch.tensor(float("inf"), device=v.device)
            lo = torch.where(valid, v, inf).amin(dim=(0, 2), keepdim=True)
            hi = torch.where(valid, v, -inf).amax(dim=(0, 2), keepdim=True)
            # A system with no finite point at all draws nothing; keep its arithmetic finite.
            lo, hi = torch.nan_to_num(lo, 0.0, 0.0, 0.0), torch.nan_to_num(hi, 1.0, 1.0, 1.0)
            v = torch.where(valid, v, lo)
        factor = span / (hi - lo).clamp_min(1e-12)
        p = torch.addcmul(torch.full_like(lo, float(pad)), v - lo, factor).floor_()
        return p.clamp_(pad, size - pad).to(torch.int32)

    px, py = scale(xs), scale(ys)
    # rows grow downwards; each system's image is its own size*size block
    base = (torch.arange(r, device=xs.device, dtype=torch.int32) * (size * size)).view(1, r, 1)
    flat = ((size - 1) - py) * size + px + base
    return flat, valid


def draw_points(flat, valid, r: int, size: int):
    """(R, size, size) bool canvases with one pixel per valid point (the search's rendering)."""
    import torch

    canvas = torch.zeros(r * size * size, dtype=torch.bool, device=flat.device)
    canvas[(flat if valid is None else flat[valid]).long().reshape(-1)] = True
    return canvas.view(r, size, size)


def patch_offsets(size: int) -> list[int]:
    """Flat offset from a point's pixel to patch cell (i, j), cells in mask-bit order.

    The original pastes the patch at (x + 1, y + 1) and then flips the image vertically, so
    after the flip (done in to_pixels) row i of the patch lands i + 1 rows above the point."""
    return [-(i + 1) * size + (j + 1) for i in range(PATCH) for j in range(PATCH)]


def draw_patches(flat, valid, masks, r: int, size: int):
    """(R, size, size) bool canvases: a 3x3 patch pasted at every valid point, in point order.

    flat, valid: (steps, R, chains) from to_pixels; masks: (R, steps, chains) int16 in 1..511.
    Like the original's PIL paste, a patch overwrites all nine cells, its zeros included, so a
    pixel shows cell (i, j) (bit 8 - (3i + j) of the mask) of the *last* patch covering it;
    "last" is step order (every chain's step t before step t + 1), then chain order.
    Vectorised: a scatter-max of point order per pixel (deterministic, unlike index_put with
    duplicate indices), then per pixel the latest of the nine points whose patch covers it.
    The padding keeps every patch inside its own image.
    """
    import torch

    steps, _, chains = flat.shape
    if steps * chains >= 2**27:
        raise ValueError("at most 2**27 points per image (order and cell share an int32 key)")
    dev = flat.device
    n = r * size * size
    # key = 16 * (order of the point within its image) + patch cell
    order = torch.arange(steps * chains, dtype=torch.int32, device=dev).view(steps, 1, chains) * 16
    order = order.expand(steps, r, chains)
    if valid is not None:
        order = torch.where(valid, order, torch.full_like(order, -16))
    last = torch.full((n,), -16, dtype=torch.int32, device=dev)
    last.scatter_reduce_(0, flat.reshape(-1).long(), order.reshape(-1), "amax")
    best = torch.full_like(last, -1)
    for o, off in enumerate(patch_offsets(size)):
        # the latest point at q - off, whose cell o lands on q
        dst, src = (best[:off], last[-off:]) if off < 0 else (best[off:], last[:-off])
        torch.maximum(dst, src + o, out=dst)
    on = best >= 0
    best.clamp_(min=0)
    cell = best & 15
    point = best >> 4
    image = torch.arange(r, device=dev, dtype=torch.int32).repeat_interleave(size * size)
    mask = masks.reshape(-1)[(image * (steps * chains) + point).long()].to(torch.int32)
    return on & (((mask >> (8 - cell)) & 1) == 1)


def render(systems: list[np.ndarray], seeds: list[list[int]], size: int, points: int, chains: int, device):
    """Patch renderings of R systems: (R, size, size) bool tensor on `device`.

    seeds[i] seeds render i's chains and patch masks, so a render never depends on its batch.
    """
    import torch

    steps = -(-points // chains) + BURN_IN
    xs, ys = chain_points(systems, chain_uniforms(seeds, steps, chains, device))
    flat, valid = to_pixels(xs, ys, size, PAD)
    del xs, ys
    shape = (flat.shape[0], flat.shape[2])
    masks = torch.stack([patch_masks(s, shape, device) for s in seeds])
    return draw_patches(flat, valid, masks, len(systems), size).view(len(systems), size, size)


def _cuda_generator(seed_words: list[int], device):
    import torch

    g = torch.Generator(device=device)
    g.manual_seed(int(np.random.SeedSequence(seed_words).generate_state(1, np.uint64)[0] >> 1))
    return g


def patch_masks(seed_words: list[int], shape: tuple[int, ...], device) -> "torch.Tensor":
    """Random 3x3 patch masks in 1..511 (int16, as the original's randrange(1, 512))."""
    import torch

    words = list(seed_words) + [1]  # a stream of its own, apart from the chains'
    if device.type == "cpu":
        rng = np.random.default_rng(words)
        return torch.from_numpy(rng.integers(1, 512, shape, dtype=np.int16))
    return torch.randint(1, 512, shape, generator=_cuda_generator(words, device), device=device, dtype=torch.int16)


def flips(img: np.ndarray) -> list[np.ndarray]:
    """The four flips of a rendered image, in the original's order."""
    return [img, img[::-1], img[:, ::-1], img[::-1, ::-1]]


def filling_rates(systems: list[np.ndarray], seeds: list[list[int]], chains: int = 500) -> np.ndarray:
    """Fraction of pixels hit by SEARCH_POINTS points at SEARCH_SIZE px, per system (CPU only:
    the search decides what a category is, so it must not depend on the device)."""
    import torch

    steps = -(-SEARCH_POINTS // chains) + BURN_IN
    u = chain_uniforms(seeds, steps, chains, torch.device("cpu"))
    xs, ys = chain_points(systems, u)
    flat, valid = to_pixels(xs, ys, SEARCH_SIZE, SEARCH_PAD)
    canvas = draw_points(flat, valid, len(systems), SEARCH_SIZE)
    return canvas.flatten(1).float().mean(dim=1).numpy()


def search_category(seed: int, category: int, batch: int = 8, max_candidates: int = 100_000) -> tuple[np.ndarray, float, int]:
    """The category's IFS: the first candidate (in the seeded order) with filling rate >= 0.2.

    Returns (system, its filling rate, candidates tried). Candidates are drawn in order from
    one generator, each rated with its own stream; the first acceptable one in that order wins,
    so the result does not depend on the batch size.
    """
    rng = np.random.default_rng([seed, category, 0])
    tried = 0
    while tried < max_candidates:
        cands = [random_ifs(rng) for _ in range(batch)]
        rates = filling_rates(cands, [[seed, category, 1, tried + i] for i in range(batch)])
        for i, rate in enumerate(rates):
            if rate >= FILL_THRESHOLD:
                return cands[i], float(rate), tried + i + 1
        tried += batch
    raise RuntimeError(f"no IFS with filling rate >= {FILL_THRESHOLD} in {max_candidates} candidates")
