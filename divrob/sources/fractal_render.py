"""FractalDB rendering: iterated function systems (IFS) drawn with many chaos-game chains at once.

The procedure is Kataoka et al.'s (ACCV 2020, "Pre-training without Natural Images"), read from
their public code (hirokatsukataoka16/FractalDB-Pretrained-ResNet-PyTorch: param_search/,
fractal_renderer/, exe.sh):

* a category is an IFS of 2-7 affine maps (a, b, c, d, e, f) drawn uniformly from [-1, 1]; map
  i is chosen with probability |det_i| / sum |det| (det = ad - bc);
* a candidate is kept if its point rendering (100k points, 512 px, 6 px padding, one pixel per
  point) covers at least 20% of the pixels (the "filling rate");
* an instance multiplies one of the six parameters, in every map, by a weight: 25 variants
  (the unchanged system and a..f times 1-2s, 1-s, 1+s, 1+2s; FractalDB-1k's exe.sh uses
  weights_0.4.csv, s = 0.4, i.e. {0.2, 0.6, 1.4, 1.8}; make_fractaldb.py's own default file,
  s = 0.1, was not used for it), each rendered `repeats` times with fresh random 3x3 patches,
  each render saved with 4 flips (none, vertical, horizontal, both): 25 x 10 x 4 = 1000
  instances per category;

The published numbers, each with its source line, are in `fractaldb_1k`.
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
* The original's mask is randrange(1, 512) with cell (i, j) its bit 8 - (3i + j); ours is
  uniform in 1..511 too, drawn from raw generator bits, with cell (i, j) its bit 3i + j (the
  same distribution: reversing the bits of a uniform 1..511 mask gives a uniform one).
* The original shifts points to start at 0 only when their minimum is negative (a minimum
  above 0 overflows the image); we always rescale min..max onto the padded image.
"""

from __future__ import annotations

import numpy as np

from divrob.sources.fractaldb_1k import (  # noqa: F401 - GRAY and PATCH are part of this module's API
    COEFF_HIGH, COEFF_LOW, FILL_RATE, FLIPS, GRAY, MAX_MAPS, MIN_MAPS, PAD, PATCH, SEARCH_PAD, SEARCH_POINTS,
    SEARCH_SIZE, WEIGHT_STEP,
)

# Enough steps to forget the origin: accepted systems contract by ~0.5-0.8 per step, so 32 steps
# put a chain within a fraction of a pixel of the attractor.
BURN_IN = 32


def random_ifs(rng: np.random.Generator) -> np.ndarray:
    """One candidate system: (n_maps, 7) rows (a, b, c, d, e, f, probability)."""
    n = int(rng.integers(MIN_MAPS, MAX_MAPS + 1))
    maps = rng.uniform(COEFF_LOW, COEFF_HIGH, (n, 6))
    det = np.abs(maps[:, 0] * maps[:, 3] - maps[:, 1] * maps[:, 2])
    return np.concatenate([maps, (det / det.sum())[:, None]], axis=1)


def weight_variants(step: float = WEIGHT_STEP) -> np.ndarray:
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


def uniforms(seed_words: list[int], shape: tuple[int, ...], device, out=None) -> "torch.Tensor":
    """Uniform [0, 1) float32 numbers reproducible from seed_words (written into `out` if given).

    On the CPU numpy's PCG64 (stable across numpy and torch versions); on a GPU torch's Philox,
    generated where it is used (copying CPU numbers would cap a GPU at a few hundred images/s).
    So a CPU and a GPU give different, equally valid, images for the same seed.
    """
    import torch

    if device.type == "cpu":
        out = torch.empty(shape) if out is None else out
        np.random.default_rng(seed_words).random(out=out.numpy(), dtype=np.float32)
        return out
    u = torch.rand(shape, generator=_cuda_generator(seed_words, device), device=device)
    return u if out is None else out.copy_(u)


def scratch_buffer(scratch: dict | None, name: str, shape: tuple[int, ...], dtype, device):
    """An uninitialised tensor, reused from `scratch` (a dict the caller keeps between calls) when
    one is given. On the CPU fresh memory costs a page fault per 4 KiB at first touch, which for
    the tens of megabytes a batch needs costs about as much as the arithmetic on them."""
    import torch

    n = int(np.prod(shape))
    if scratch is None:
        return torch.empty(n, dtype=dtype, device=device).view(shape)
    b = scratch.get(name)
    dev = torch.device(device)
    if (b is None or b.numel() < n or b.dtype != dtype or b.device.type != dev.type
            or dev.index not in (None, b.device.index)):
        b = scratch[name] = torch.empty(n, dtype=dtype, device=device)
    return b[:n].view(shape)


def chain_bits(seeds: list[list[int]], steps: int, chains: int, device, scratch: dict | None = None):
    """(R, steps, chains) map-choice numbers, one seeded stream per render (a render's image then
    does not depend on which other renders share its batch). On the CPU int32 raw bits of PCG64
    (uniform over int32: u = (bits + 2**31) / 2**32, a third faster than float uniforms); on a GPU
    float32 uniforms. chain_points accepts either."""
    import torch

    r = len(seeds)
    if device.type != "cpu":
        u = scratch_buffer(scratch, "u", (r, steps, chains), _f32(), device)
        for i, s in enumerate(seeds):
            uniforms(s, (steps, chains), device, out=u[i])
        return u
    bits = scratch_buffer(scratch, "bits", (r, steps, chains), torch.int32, device)
    n = steps * chains
    for i, s in enumerate(seeds):
        raw = np.random.default_rng(s).bit_generator.random_raw(-(-n // 2)).view(np.int32)[:n]
        np.copyto(bits[i].numpy().reshape(-1), raw)
    return bits


def _f32():
    import torch

    return torch.float32


def _cumulative(systems: list[np.ndarray], m: int) -> np.ndarray:
    """(R, m - 1) float64 cumulative probabilities, 2 (never reached) for padding maps."""
    cum = np.full((len(systems), m), 2.0)
    for i, s in enumerate(systems):
        c = np.cumsum(s[:, 6]).astype(np.float32).astype(np.float64)
        c[-1] = 1.0  # rounding must not leave u in [sum, 1) unmapped
        cum[i, :len(s)] = c
    return cum[:, :-1]


def _thresholds(systems: list[np.ndarray], m: int, u: "torch.Tensor"):
    """(R, m - 1) thresholds t with u > t meaning u is past the cumulative probability: for float
    uniforms u >= cum, i.e. u > the float32 below cum; for int32 bits, bits + 2**31 >= cum * 2**32."""
    import torch

    cum = _cumulative(systems, m)
    if u.dtype == torch.int32:
        t = np.ceil(cum * 2.0**32) - 2.0**31 - 1
        return torch.from_numpy(np.clip(t, -(2**31), 2**31 - 1).astype(np.int32)).to(u.device)
    c32 = cum.astype(np.float32)
    return torch.from_numpy(np.nextafter(c32, np.float32(-np.inf))).to(u.device)


def _map_tables(systems: list[np.ndarray], device):
    """The maps' coefficients as (3, R * m) int64 planes, each holding a float32 pair: (a, c),
    (b, d), (e, f) (gathering three 8-byte planes is about twice as fast as six 4-byte ones);
    m the most maps of any system."""
    import torch

    m = max(len(s) for s in systems)
    coef = np.zeros((len(systems), m, 6), np.float32)
    for i, s in enumerate(systems):
        coef[i, :len(s)] = s[:, :6]
    pairs = coef.reshape(-1, 6)[:, [0, 2, 1, 3, 4, 5]].reshape(-1, 3, 2)  # (R * m, 3, (x, y) rows)
    table = np.ascontiguousarray(pairs.transpose(1, 0, 2)).view(np.int64)[..., 0]
    return torch.from_numpy(table.copy()).to(device), m


# Up to this many maps a step blends the maps' outputs with 0/1 weights (contiguous arithmetic);
# beyond, it gathers each chain's coefficients (strided arithmetic, but fewer operations).
BLEND_MAPS = 3


def chain_points(systems: list[np.ndarray], u: "torch.Tensor", burn_in: int = BURN_IN,
                 scratch: dict | None = None):
    """Play the chaos game for R systems at once.

    systems: R arrays (n_maps, 7); u: (R, steps, chains) float32 uniforms in [0, 1) or int32
    raw bits (chain_bits) choosing the map at each step.
    Returns x, y: (R, steps - burn_in, chains) float32 (non-finite where a chain diverged).
    """
    import torch

    device = u.device
    r, steps, chains = u.shape
    m = max(len(s) for s in systems)
    thr = _thresholds(systems, m, u)
    keep = steps - burn_in
    xs = scratch_buffer(scratch, "xs", (r, keep, chains), torch.float32, device)
    ys = scratch_buffer(scratch, "ys", (r, keep, chains), torch.float32, device)
    burn = torch.zeros(2, 2, r, chains, device=device)  # (x, y) ping-pong during the burn-in
    x, y = burn[0]
    if m <= BLEND_MAPS:
        # map k's output = map 0's + sum over j < k of (map j + 1 - map j)'s: each difference
        # weighted by the 0/1 "u is past cumulative probability j", in float32
        hits = scratch_buffer(scratch, "hits", (max(m - 1, 1), steps, r, chains), torch.float32, device)
        for j in range(m - 1):
            torch.gt(u.transpose(0, 1), thr[:, j].view(r, 1), out=hits[j])
        coef = np.zeros((r, m, 6), np.float32)
        for i, s in enumerate(systems):
            coef[i, :len(s)] = s[:, :6]
            coef[i, len(s):] = s[-1, :6]  # padding maps (never chosen) differ by zero
        coef[:, 1:] = np.diff(coef, axis=1)
        planes = torch.from_numpy(coef.transpose(1, 2, 0)).to(device)[..., None].expand(m, 6, r, chains)
        planes = planes.contiguous()  # (map, a..f, R, chains): contiguous operands are ~3x faster
        tx = torch.empty(r, chains, device=device)
        ty = torch.empty(r, chains, device=device)
        for t in range(steps):
            nx, ny = (xs[:, t - burn_in], ys[:, t - burn_in]) if t >= burn_in else burn[(t + 1) % 2]
            a, b, c, d, e, f = planes[0]
            torch.addcmul(torch.addcmul(e, a, x, out=nx), b, y, out=nx)
            torch.addcmul(torch.addcmul(f, c, x, out=ny), d, y, out=ny)
            for j in range(1, m):
                a, b, c, d, e, f = planes[j]
                h = hits[j - 1, t]
                torch.addcmul(torch.addcmul(e, a, x, out=tx), b, y, out=tx)
                torch.addcmul(torch.addcmul(f, c, x, out=ty), d, y, out=ty)
                nx.addcmul_(h, tx)
                ny.addcmul_(h, ty)
            x, y = nx, ny
        return xs, ys
    table, _ = _map_tables(systems, device)
    # The map of each (system, step, chain): the number of thresholds below u, i.e. a
    # searchsorted over at most 6 thresholds, done as comparisons (several times faster).
    k = scratch_buffer(scratch, "k", (r, steps, chains), torch.uint8, device)
    hit = scratch_buffer(scratch, "hit", (r, steps, chains), torch.bool, device)
    for j in range(m - 1):
        torch.gt(u, thr[:, j].view(r, 1, 1), out=hit if j else k.view(torch.bool))
        if j:
            k += hit.view(torch.uint8)
    first = (torch.arange(r, device=device, dtype=torch.int32) * m).view(r, 1)  # system's first column
    kt = torch.empty(r, chains, dtype=torch.int32, device=device)
    coef = torch.empty(3, r * chains, dtype=torch.int64, device=device)
    (a, c), (b, d), (e, f) = (p.unbind(-1) for p in coef.view(torch.float32).view(3, r, chains, 2))
    planes = list(zip(table, coef))  # 1-D index_select: dim 1 of an int64 table is far slower
    tx = torch.empty(r, chains, device=device)
    ty = torch.empty(r, chains, device=device)
    for t in range(steps):
        nx, ny = (xs[:, t - burn_in], ys[:, t - burn_in]) if t >= burn_in else burn[(t + 1) % 2]
        torch.add(first, k[:, t], out=kt)
        for src, dst in planes:
            torch.index_select(src, 0, kt.view(-1), out=dst)
        torch.addcmul(torch.addcmul(e, a, x, out=tx), b, y, out=nx)
        torch.addcmul(torch.addcmul(f, c, x, out=ty), d, y, out=ny)
        x, y = nx, ny
    return xs, ys


def to_pixels(xs, ys, size: int, pad: int, scratch: dict | None = None):
    """Rescale each system's points (dim 0 of (R, steps, chains)) to [pad, size - pad], y flipped
    so it points up; overwrites xs and ys. Returns (R, steps * chains) int64 indices into the
    flattened (R, size, size) stack, R * size * size for a non-finite point."""
    import torch

    r = xs.shape[0]
    xs, ys = xs.view(r, -1), ys.view(r, -1)
    # amin/amax propagate NaN and keep infinities, so finite extremes mean finite points.
    ext = torch.stack([xs.amin(1), xs.amax(1), ys.amin(1), ys.amax(1)])
    valid = None if bool(torch.isfinite(ext).all()) else torch.isfinite(xs) & torch.isfinite(ys)
    span = float(size - 2 * pad)

    def scale(v, lo, hi):
        if valid is not None:
            inf = torch.tensor(float("inf"), device=v.device)
            lo = torch.where(valid, v, inf).amin(1)
            hi = torch.where(valid, v, -inf).amax(1)
            # A system with no finite point at all draws nothing; keep its arithmetic finite.
            lo, hi = torch.nan_to_num(lo, 0.0, 0.0, 0.0), torch.nan_to_num(hi, 1.0, 1.0, 1.0)
            v.copy_(torch.where(valid, v, lo[:, None]))
        lo, hi = lo[:, None], hi[:, None]
        factor = span / (hi - lo).clamp_min(1e-12)
        # pad + (v - lo) * factor, rounded as one product then one sum. No clamp needed: lo <= v
        # <= hi and rounding is monotonic, so the result is in [pad, pad + span * (1 + 2**-22)),
        # whose floor is in [pad, size - pad].
        return v.sub_(lo).mul_(factor).add_(pad).floor_()

    px, py = scale(xs, ext[0], ext[1]), scale(ys, ext[2], ext[3])
    # rows grow downwards: (size - 1 - py) * size + px, exact in float32 below 2**24; the int32
    # detour is ~10x faster than converting float32 to int64 directly on the CPU
    flat32 = scratch_buffer(scratch, "flat32", (r, px.shape[1]), torch.int32, xs.device)
    flat32.copy_(py.mul_(-size).add_(px).add_((size - 1) * size))
    flat32 += (torch.arange(r, device=xs.device, dtype=torch.int32) * (size * size))[:, None]
    if valid is not None:
        flat32.masked_fill_(~valid, r * size * size)
    flat = scratch_buffer(scratch, "flat", (r, px.shape[1]), torch.int64, xs.device)
    return flat.copy_(flat32)


def draw_points(flat, r: int, size: int):
    """(R, size, size) bool canvases with one pixel per point (the search's rendering)."""
    import torch

    canvas = torch.zeros(r * size * size + 1, dtype=torch.bool, device=flat.device)  # last: invalid
    canvas[flat.reshape(-1)] = True
    return canvas[:-1].view(r, size, size)


def draw_patches(flat, masks, size: int, scratch: dict | None = None):
    """(R, size, size) bool canvases: a 3x3 patch pasted at every point, in point order.

    flat: (R, points) from to_pixels; masks: (R, 1 + points) int16, column 1 + p point p's mask
    in 1..511, whose bit 3i + j switches on the patch's cell (i, j) (i: rows above the point, j:
    columns right of it), column 0 zero.
    Like the original's PIL paste, a patch overwrites all nine cells, its zeros included, so a
    pixel shows its cell of the *last* patch covering it; "last" is point order (for chains:
    every chain's step t before step t + 1, then chain order).
    Vectorised and exact: a scatter-max of point order per pixel (deterministic, unlike index_put
    with duplicate indices), then per pixel the latest of the nine points whose patch covers it,
    a 3x3 max done as rows then columns. The padding keeps every patch inside its own image, so
    shifting the flattened stack never carries a patch across a row or an image.
    """
    import torch

    r, points = flat.shape
    assert masks.shape == (r, 1 + points)
    if points >= 2**27:
        raise ValueError("at most 2**27 points per image (order and cell share an int32 key)")
    dev = flat.device
    n = r * size * size
    # key = 16 * (order of the point within its image) + patch cell; negative: no point
    last = scratch_buffer(scratch, "last", (n + 1,), torch.int32, dev).fill_(-16)  # last: invalid
    order = scratch.get(("order", r, points)) if scratch is not None else None
    if order is None:
        order = (torch.arange(points, dtype=torch.int32, device=dev) * 16).repeat(r)
        if scratch is not None:
            scratch[("order", r, points)] = order
    last.scatter_reduce_(0, flat.view(-1), order, "amax")
    last = last[:n]
    # the latest point j + 1 columns left, tagged with cell column j
    row = scratch_buffer(scratch, "row", (n,), torch.int32, dev)
    row[:1] = -16
    row[1:] = last[:-1]
    for j in (1, 2):
        last += 1
        torch.maximum(row[j + 1:], last[:-(j + 1)], out=row[j + 1:])
    # ...or rather the latest of those i + 1 rows below, tagged with cell row i
    best = last  # reused: `last` is spent
    best[-size:] = -16
    best[:-size] = row[size:]
    for i in (1, 2):
        row += 3
        s = (i + 1) * size
        torch.maximum(best[:-s], row[s:], out=best[:-s])
    # the winner's mask, shifted to its cell; column 0 of masks (0) for pixels no patch covers
    cell = scratch_buffer(scratch, "cell", (n,), torch.int16, dev)
    torch.bitwise_and(best, 15, out=cell)
    best >>= 4
    best.view(r, -1).add_((torch.arange(r, device=dev, dtype=torch.int32) * (points + 1) + 1)[:, None])
    bit = torch.index_select(masks.view(-1), 0, best, out=scratch_buffer(scratch, "bit", (n,), torch.int16, dev))
    bit >>= cell
    bit &= 1
    return bit.view(r, size, size).to(torch.bool)


def render(systems: list[np.ndarray], seeds: list[list[int]], size: int, points: int, chains: int, device,
           scratch: dict | None = None):
    """Patch renderings of R systems: (R, size, size) bool tensor on `device`.

    seeds[i] seeds render i's chains and patch masks, so a render never depends on its batch.
    `scratch`: a dict kept between calls (one per thread) to reuse working memory.
    """
    import torch

    steps = -(-points // chains) + BURN_IN
    xs, ys = chain_points(systems, chain_bits(seeds, steps, chains, device, scratch), scratch=scratch)
    flat = to_pixels(xs, ys, size, PAD, scratch)
    n = flat.shape[1]
    masks = scratch_buffer(scratch, "masks", (len(seeds), 1 + n), torch.int16, device)
    masks[:, 0] = 0
    for i, s in enumerate(seeds):
        patch_masks(s, n, device, out=masks[i, 1:])
    return draw_patches(flat, masks, size, scratch)


def render_parallel(systems: list[np.ndarray], seeds: list[list[int]], size: int, points: int, chains: int,
                    device, scratches: list[dict], workers: int):
    """`render` with the batch split over `workers` CPU threads, one torch thread each.

    Many small tensor ops gain little from torch's intra-op threads (they mostly wait for each
    other), while whole renders in parallel scale with the cores. Renders depend only on their
    own seeds, so the images are the same as one `render` call's.
    """
    import torch

    workers = min(workers, len(seeds), len(scratches))
    if workers <= 1 or torch.device(device).type != "cpu":
        return render(systems, seeds, size, points, chains, device, scratches[0])
    from concurrent.futures import ThreadPoolExecutor

    chunks = [c for c in np.array_split(np.arange(len(seeds)), workers) if len(c)]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
            parts = list(pool.map(
                lambda jc: render([systems[i] for i in jc[1]], [seeds[i] for i in jc[1]], size, points, chains,
                                  device, scratches[jc[0]]),
                enumerate(chunks)))
    finally:
        torch.set_num_threads(before)
    return torch.cat(parts)


def _cuda_generator(seed_words: list[int], device):
    import torch

    g = torch.Generator(device=device)
    g.manual_seed(int(np.random.SeedSequence(seed_words).generate_state(1, np.uint64)[0] >> 1))
    return g


def patch_masks(seed_words: list[int], n: int, device, out=None) -> "torch.Tensor":
    """n random 3x3 patch masks, uniform in 1..511 as the original's randrange(1, 512), int16
    (written into `out` if given). On the CPU the low 9 bits of 16-bit chunks of PCG64's raw
    output (twice as fast as Generator.integers), zeros redrawn from the same generator."""
    import torch

    words = list(seed_words) + [1]  # a stream of its own, apart from the chains'
    out = torch.empty(n, dtype=torch.int16, device=device) if out is None else out
    if device.type == "cpu":
        rng = np.random.default_rng(words)
        m = out.numpy()
        np.bitwise_and(rng.bit_generator.random_raw(-(-n // 4)).view("<u2")[:n], 511, out=m, casting="unsafe")
        zeros = np.flatnonzero(m == 0)
        m[zeros] = rng.integers(1, 512, zeros.size, dtype=np.int16)
        return out
    return out.copy_(torch.randint(1, 512, (n,), generator=_cuda_generator(words, device), device=device,
                                   dtype=torch.int16))


def flips(img: np.ndarray) -> list[np.ndarray]:
    """The four flips of a rendered image, in the original's order."""
    return [img, img[::-1], img[:, ::-1], img[::-1, ::-1]]


def filling_rates(systems: list[np.ndarray], seeds: list[list[int]], chains: int = 500,
                  scratch: dict | None = None) -> np.ndarray:
    """Fraction of pixels hit by SEARCH_POINTS points at SEARCH_SIZE px, per system (CPU only:
    the search decides what a category is, so it must not depend on the device)."""
    import torch

    steps = -(-SEARCH_POINTS // chains) + BURN_IN
    u = chain_bits(seeds, steps, chains, torch.device("cpu"), scratch)
    xs, ys = chain_points(systems, u, scratch=scratch)
    flat = to_pixels(xs, ys, SEARCH_SIZE, SEARCH_PAD, scratch)
    canvas = draw_points(flat, len(systems), SEARCH_SIZE)
    return canvas.flatten(1).float().mean(dim=1).numpy()


def search_category(seed: int, category: int, batch: int = 8, max_candidates: int = 100_000) -> tuple[np.ndarray, float, int]:
    """The category's IFS: the first candidate (in the seeded order) with filling rate >= 0.2.

    Returns (system, its filling rate, candidates tried). Candidates are drawn in order from
    one generator, each rated with its own stream; the first acceptable one in that order wins,
    so the result does not depend on the batch size.
    """
    rng = np.random.default_rng([seed, category, 0])
    tried = 0
    scratch: dict = {}
    while tried < max_candidates:
        cands = [random_ifs(rng) for _ in range(batch)]
        rates = filling_rates(cands, [[seed, category, 1, tried + i] for i in range(batch)], scratch=scratch)
        for i, rate in enumerate(rates):
            if rate >= FILL_RATE:
                return cands[i], float(rate), tried + i + 1
        tried += batch
    raise RuntimeError(f"no IFS with filling rate >= {FILL_RATE} in {max_candidates} candidates")
