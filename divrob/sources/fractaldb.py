"""FractalDB: Kataoka et al.'s fractal pre-training source, generated into an ImageFolder.

The defaults make FractalDB-1k as their published script did (exe.sh; each number and its source
line is in `fractaldb_1k`): 1,000 categories found by the filling-rate search (2-7 affine maps
with coefficients uniform in [-1, 1], kept when 100,000 points cover >= 20% of a 512 px image),
1,000 instances each (25 weight variants with weight 0.4, i.e. parameters x 0.2/0.6/1.4/1.8,
x 10 patch renderings x 4 flips), 200,000 chaos-game points per image at 362 x 362 px.

Layout: `<root>/<category>/<instance>.png` (categories `00000`.., instances `00000`..), each
category directory also holding `ifs.json` (its system, filling rate and the instance plan),
and `<root>/fractaldb.json` (the parameters; `complete` turns true when every category is
there). The procedure and where we depart from it are in `fractal_render`.

Instance i of a category is render i // 4 flipped by i % 4 (none, vertical, horizontal,
both); render j is weight variant j % 25 in its (j // 25)-th repeat. So 1000 instances =
25 variants x 10 repeats x 4 flips, as in FractalDB-1k, and any smaller count still spans
every variant and flip before repeating.

Resumable: a category is written to a temporary directory and renamed when complete, so a
killed run keeps every finished category and redoes at most the ones in flight. A category
depends only on (seed, category index, parameters): resuming, or splitting the categories
between jobs, gives the same images as one run on the same kind of device.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from divrob.devices import resolve_device
from divrob.errors import SourceError
from divrob.fileio import atomic_dir, write_json_atomic
from divrob.progress import SILENT, Reporter
from divrob.sources import fractal_render as fr
from divrob.sources import fractaldb_1k as fdb
from divrob.sources.generated import check_existing

PARAMS_FILE = "fractaldb.json"
CATEGORY_FILE = "ifs.json"
# Bumped whenever rendering changes output, so an old directory is not extended with new images.
# 2: patch masks drawn from raw PCG64 bits, bit 3i + j for cell (i, j).
# 3: map choice from raw PCG64 int32 bits (CPU), 2-3 map systems step by blending map outputs.
GENERATOR_VERSION = 3
VARIANTS = fdb.VARIANTS
PNG_LEVEL = 1  # zlib level 1: 5x faster than the default and these sparse images stay small


def category_name(k: int) -> str:
    return f"{k:05d}"


def instance_plan(i: int) -> tuple[int, int, int]:
    """(weight variant, repeat, flip) of instance i."""
    render, flip = divmod(i, fr.FLIPS)
    repeat, variant = divmod(render, VARIANTS)
    return variant, repeat, flip


def fractaldb_params(categories: int = fdb.CATEGORIES, instances: int = fdb.INSTANCES, size: int = fdb.SIZE,
                     seed: int = 0, points: int = fdb.RENDER_POINTS, weight_step: float = fdb.WEIGHT_STEP) -> dict:
    """The parameters that define a FractalDB directory (validated)."""
    for name, val in (("categories", categories), ("instances", instances), ("size", size),
                      ("seed", seed), ("points", points)):
        if not isinstance(val, (int, np.integer)) or isinstance(val, bool):
            raise SourceError(f"fractaldb: {name} must be an integer, got {val!r}")
    if categories < 1 or instances < 1:
        raise SourceError(f"fractaldb: categories and instances must be positive, got {categories}, {instances}")
    if size < 32:
        raise SourceError(f"fractaldb: size must be at least 32 pixels, got {size}")
    if seed < 0:
        raise SourceError(f"fractaldb: seed must be non-negative, got {seed}")
    if not 1_000 <= points < 2**27:
        raise SourceError(f"fractaldb: points must be between 1,000 and {2**27 - 1:,}, got {points}")
    if not 0 < float(weight_step) < 0.5:
        raise SourceError(f"fractaldb: weight_step must be in (0, 0.5) (weights 1 ± step, 1 ± 2 step), got {weight_step}")
    return {
        "source": "fractaldb",
        "generator_version": GENERATOR_VERSION,
        "categories": int(categories),
        "instances": int(instances),
        "size": int(size),
        "seed": int(seed),
        "points": int(points),
        "weight_step": float(weight_step),
    }


# The search's settings: fixed (FractalDB-1k's), recorded beside the parameters for the reader.
_FIXED = {"search": {"fill_rate": fdb.FILL_RATE, "points": fdb.SEARCH_POINTS, "size": fdb.SEARCH_SIZE,
                     "maps": [fdb.MIN_MAPS, fdb.MAX_MAPS], "coefficients": [fdb.COEFF_LOW, fdb.COEFF_HIGH]}}


def fractaldb_status(root: Path) -> tuple[int, int] | None:
    """(finished categories, categories asked for) of a generated directory; None if `root`
    was not made by this generator (e.g. a downloaded FractalDB)."""
    meta = Path(root) / PARAMS_FILE
    if not meta.is_file():
        return None
    params = json.loads(meta.read_text())
    total = int(params["categories"])
    done = sum((Path(root) / category_name(k) / CATEGORY_FILE).is_file() for k in range(total))
    return done, total


def generate_fractaldb(
    root: Path,
    params: dict | None = None,
    reporter: Reporter = SILENT,
    *,
    device: str | None = "auto",
    batch: int | None = None,
    chains: int = 1000,
    workers: int | None = None,
    categories_subset: range | None = None,
) -> Path:
    """Generate (or finish) the FractalDB at `root` described by `params` (fractaldb_params()).

    `categories_subset` lets a job runner split the categories between jobs; `batch` is how
    many renders share one vectorised pass (default: 50 on a CPU, split over its cores, 250 on a
    GPU); neither
    changes the images. Returns `root`.
    """
    root = Path(root)
    params = fractaldb_params() if params is None else fractaldb_params(**{
        k: v for k, v in params.items() if k not in ("source", "generator_version")})
    if check_existing(root, PARAMS_FILE, params, "fractaldb"):
        root.mkdir(parents=True, exist_ok=True)
        write_json_atomic(root / PARAMS_FILE, params | _FIXED | {"complete": False})
    dev = resolve_device(device)
    batch = batch or (50 if dev.type == "cpu" else 250)
    render_workers = (os.cpu_count() or 1) if dev.type == "cpu" else 1
    todo = [k for k in (categories_subset or range(params["categories"]))
            if not (root / category_name(k) / CATEGORY_FILE).is_file()]
    weights = fr.weight_variants(params["weight_step"])
    task = reporter.task(f"generating fractaldb ({len(todo)} of {params['categories']} categories to do)",
                         total=len(todo) * params["instances"])
    try:
        # The search runs on the CPU (so categories never depend on the device); searching the
        # next category while this one renders keeps a GPU from waiting for it.
        with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool, \
                ThreadPoolExecutor(max_workers=1) as searcher:
            found = {}
            # the renderer's working memory, one per render thread, reused from batch to batch
            scratch: list[dict] = [{} for _ in range(render_workers)]
            for n, k in enumerate(todo):
                if k not in found:
                    found[k] = searcher.submit(fr.search_category, params["seed"], k)
                if n + 1 < len(todo):
                    found[todo[n + 1]] = searcher.submit(fr.search_category, params["seed"], todo[n + 1])
                _generate_category(root, k, found.pop(k).result(), params, weights, dev, batch, chains, pool, task,
                                   scratch)
    finally:
        task.close()
    status = fractaldb_status(root)
    if status is not None and status[0] == status[1]:
        write_json_atomic(root / PARAMS_FILE, params | _FIXED | {
            "complete": True, "class_names": [category_name(k) for k in range(params["categories"])]})
    return root


def _generate_category(root: Path, k: int, found: tuple, params: dict, weights: np.ndarray, dev,
                       batch: int, chains: int, pool: ThreadPoolExecutor, task, scratch: list[dict]) -> None:
    seed, instances, size = params["seed"], params["instances"], params["size"]
    system, rate, tried = found
    n_renders = -(-instances // fr.FLIPS)
    with atomic_dir(root / category_name(k)) as tmp:
        for start in range(0, n_renders, batch):
            js = range(start, min(n_renders, start + batch))
            systems = [_weighted(system, weights[j % VARIANTS]) for j in js]
            images = fr.render_parallel(systems, [[seed, k, 2, j] for j in js], size, params["points"], chains, dev,
                                        scratch, len(scratch))
            images = (images.to("cpu").numpy().astype(np.uint8) * fr.GRAY)
            saves = []
            for j, img in zip(js, images):
                for flip, flipped in enumerate(fr.flips(img)):
                    i = j * fr.FLIPS + flip
                    if i < instances:
                        saves.append(pool.submit(_save_png, np.ascontiguousarray(flipped), tmp / f"{i:05d}.png"))
            for s in saves:
                s.result()
            task.advance(len(saves))
        # Written last: its presence marks a finished category (the directory rename is atomic).
        write_json_atomic(tmp / CATEGORY_FILE, {
            "category": category_name(k),
            "maps": [[float(v) for v in row] for row in system],
            "columns": ["a", "b", "c", "d", "e", "f", "probability"],
            "filling_rate": rate,
            "candidates_tried": tried,
            "weights": weights.tolist(),
            "instance_plan": "instance i = render i // 4 with flip i % 4 (none, vertical, horizontal, both); "
                             "render j = weights[j % 25] in repeat j // 25",
            "device": dev.type,
        })


def _weighted(system: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The system with parameter columns a..f multiplied by w in every map (probabilities kept,
    as the original keeps the category's)."""
    out = system.copy()
    out[:, :6] *= w
    return out


def _save_png(img: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(img).save(path, format="PNG", compress_level=PNG_LEVEL)
