"""FractalDB rendering speed: divrob's vectorised torch renderer against a per-point numpy one.

Both render the same procedure (fractal_render's docstring): weight variants of one searched
category, `--points` chaos-game points each, rescaled to `--size` px with 6 px padding, a random
3x3 patch pasted per point in point order, 4 flips per render. The reference is the
straightforward way to write it, as the original code does: one chain stepped point by point in
Python, one numpy slice assignment per patch. Neither encodes PNG; the category search is
excluded from both (it is shared, and costs about 2 renders per category).

    python benchmarks/bench_fractaldb.py --threads 1                  # CPU, one thread
    python benchmarks/bench_fractaldb.py                              # CPU, torch's threads
    python benchmarks/bench_fractaldb.py --device cuda --batch 500    # on a GPU

Each round times one divrob batch and then one reference render, back to back, so both see
the same load on a shared machine; best-of and median are printed. Images/s count the 4 flips
of each render as images, as the dataset does (a flip is a free view for both renderers, so the
ratio is the same counted either way). The last line is the ratio of the best-of speeds.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def reference_render(system: np.ndarray, size: int, points: int, rng: np.random.Generator) -> np.ndarray:
    """One render, point by point: a single chain from (0, 0) and one patch paste per point."""
    from divrob.sources.fractal_render import GRAY, PAD

    maps = system[:, :6].tolist()
    cum = np.cumsum(system[:, 6])
    cum[-1] = 1.0
    choice = np.searchsorted(cum, rng.random(points), side="right").tolist()
    xs, ys = np.empty(points), np.empty(points)
    x = y = 0.0
    for t in range(points):
        a, b, c, d, e, f = maps[choice[t]]
        x, y = a * x + b * y + e, c * x + d * y + f
        xs[t], ys[t] = x, y
    ok = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[ok], ys[ok]
    span = size - 2 * PAD
    px = np.floor((xs - xs.min()) / max(xs.max() - xs.min(), 1e-12) * span + PAD).astype(int)
    py = np.floor((ys - ys.min()) / max(ys.max() - ys.min(), 1e-12) * span + PAD).astype(int)
    patches = ((np.arange(512)[:, None] >> (8 - np.arange(9))) & 1).reshape(512, 3, 3).astype(np.uint8) * GRAY
    masks = rng.integers(1, 512, len(px))
    img = np.zeros((size, size), np.uint8)
    for xi, yi, m in zip(px.tolist(), py.tolist(), masks.tolist()):
        img[yi + 1:yi + 4, xi + 1:xi + 4] = patches[m]  # overwrite, zeros included, as PIL's paste
    img = img[::-1]  # y points up
    return np.stack([img, img[::-1], img[:, ::-1], img[::-1, ::-1]])


def main() -> None:
    from divrob.sources import fractaldb_1k as fdb

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=fdb.SIZE)
    ap.add_argument("--points", type=int, default=fdb.RENDER_POINTS)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=50, help="renders per pass (the generator's CPU default)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="CPU threads rendering parts of a batch, one torch thread each (the generator's default)")
    ap.add_argument("--chains", type=int, default=1000, help="parallel chains per render (the generator's default)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--repeats", type=int, default=5,
                    help="rounds of (one divrob batch, one reference render), timed back to back")
    args = ap.parse_args()

    import torch

    from divrob.devices import resolve_device
    from divrob.sources import fractal_render as fr

    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    system, rate, _ = fr.search_category(0, 0)
    weights = fr.weight_variants()
    systems = [np.concatenate([system[:, :6] * weights[j % 25], system[:, 6:]], axis=1) for j in range(args.batch)]
    print(f"torch {torch.__version__}, device {dev}, {args.workers} render workers (threads {torch.get_num_threads()}), "
          f"{args.size} px, {args.points:,} points/render, batch {args.batch} x {args.chains} chains, "
          f"category 0: {len(system)} maps, filling rate {rate:.3f}")

    scratch = [{} for _ in range(args.workers)]  # reused working memory, one per render thread

    def run(r: int):
        imgs = fr.render_parallel(systems, [[0, 0, 2, r * args.batch + j] for j in range(args.batch)],
                                  args.size, args.points, args.chains, dev, scratch, args.workers)
        return imgs.to("cpu")

    run(0)  # warm-up: allocator, kernels, working memory
    rng = np.random.default_rng(0)
    reference_render(systems[0], args.size, 10_000, rng)  # warm-up
    fast, slow = [], []
    # Interleaved, so both see the same machine load (other processes, clock changes).
    for r in range(args.repeats):
        t0 = time.perf_counter()
        run(r + 1)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        fast.append(args.batch / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        reference_render(systems[r % len(systems)], args.size, args.points, rng)
        slow.append(1 / (time.perf_counter() - t0))

    for name, v in (("divrob (torch, vectorised): ", fast), ("numpy reference (per point):", slow)):
        print(f"{name} best {max(v):9.2f} renders/s {4 * max(v):9.1f} images/s   "
              f"median {np.median(v):9.2f} renders/s {4 * np.median(v):9.1f} images/s")
    print(f"median of per-round ratios: {np.median(np.array(fast) / np.array(slow)):.1f}x")
    print(f"speed-up (best-of {args.repeats}): {max(fast) / max(slow):.1f}x")


if __name__ == "__main__":
    main()
