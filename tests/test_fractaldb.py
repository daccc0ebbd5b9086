"""FractalDB: the vectorised renderer against per-point references, the search, and the generator
(layout, determinism, resume, the real ImageFolder indexer, the workspace source)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from divrob.errors import SourceError
from divrob.sources import fractal_render as fr
from divrob.sources.fractaldb import fractaldb_params, fractaldb_status, generate_fractaldb, instance_plan
from divrob.sources.index import index_image_folder

SMALL = dict(categories=2, instances=10, size=48, seed=3, points=4000)
CPU = torch.device("cpu")


def tree_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return generate_fractaldb(tmp_path_factory.mktemp("fdb") / "fractaldb", fractaldb_params(**SMALL), device="cpu")


# fractal_renderer/weights/weights_0.4.csv of hirokatsukataoka16/FractalDB-Pretrained-ResNet-PyTorch
# (the file exe.sh passes for FractalDB-1k), row by row: the factor on one of a..f, others 1.
WEIGHTS_0_4_CSV = (
    [(0, f) for f in (0.2, 0.6, 1.0, 1.4, 1.8)]
    + [(p, f) for p in range(1, 6) for f in (0.2, 0.6, 1.4, 1.8)]
)


def test_weight_variants_are_the_published_weights_file():
    published = np.ones((25, 6))
    for row, (param, factor) in enumerate(WEIGHTS_0_4_CSV):
        published[row, param] = factor
    assert np.allclose(fr.weight_variants(), published)  # the default is FractalDB-1k's 0.4
    w = fr.weight_variants(0.1)  # weights_0.1.csv: make_fractaldb.py's own default, same layout
    assert np.allclose(w[2], 1) and sorted({round(float(v), 6) for r in w for v in r}) == [0.8, 0.9, 1.0, 1.1, 1.2]


def test_defaults_are_fractaldb_1k_as_published():
    """exe.sh: numof_category=1000, fillrate=0.2, weight=0.4, imagesize=362, numof_point=100000,
    numof_ite=200000; make_fractaldb.py --instance 10 (x 25 weights x 4 flips = 1000)."""
    from typer.testing import CliRunner

    from divrob.cli import app
    from divrob.recipes.schema import FractalDBGen
    from divrob.sources import fractaldb_1k as fdb

    published = dict(categories=1000, instances=1000, size=362, points=200_000, weight_step=0.4)
    params = fractaldb_params()
    assert {k: params[k] for k in published} == published and params["seed"] == 0
    assert FractalDBGen().model_dump() == {k: params[k] for k in FractalDBGen.model_fields}
    assert (fdb.FILL_RATE, fdb.SEARCH_POINTS, fdb.SEARCH_SIZE, fdb.MIN_MAPS, fdb.MAX_MAPS) == (0.2, 100_000, 512, 2, 7)
    assert (fdb.COEFF_LOW, fdb.COEFF_HIGH) == (-1.0, 1.0)
    assert (fdb.VARIANTS, fdb.REPEATS, fdb.FLIPS) == (25, 10, 4)
    plans = {instance_plan(i) for i in range(fdb.INSTANCES)}  # every (variant, repeat, flip) once
    assert plans == {(v, r, f) for v in range(25) for r in range(10) for f in range(4)}
    out = CliRunner().invoke(app, ["generate", "fractaldb", "--help"], terminal_width=200).output
    for flag, default in (("--categories", "1000"), ("--instances", "1000"), ("--size", "362"),
                          ("--points", "200000"), ("--weight-step", "0.4")):
        line = out[out.index(flag):]
        assert f"[default: {default}]" in line[: line.index("[default:") + 20], (flag, out)
    assert "20%" in out and "100,000 points" in out and "[-1, 1]" in out


def test_paper_recipes_set_the_fractaldb_1k_parameters_explicitly():
    import tomllib

    from divrob.bundled import bundled

    published = dict(categories=1000, instances=1000, size=362, points=200_000, weight_step=0.4)
    using = []
    for path in sorted(bundled("recipes/paper").glob("*.toml")):
        raw = tomllib.loads(path.read_text())
        if any(d.get("source") == "fractaldb" for d in raw["distribution"]):
            using.append(path.name)
            table = raw["generate"]["fractaldb"]
            assert {k: table.get(k) for k in published} == published, path.name
    assert len(using) == 3  # figures 10, 11, 19


def _reference_filling_rate(system: np.ndarray, rng: np.random.Generator) -> float:
    """Kataoka et al.'s search rating, written out here from param_search/ifs_search.py and
    ifs_simple.py: one chain of 100,000 points from (0, 0), map j for the first cumulative
    probability >= u, points shifted to >= 0 (when negative), scaled by the span to 512 - 2 * 6 px
    plus 6 and truncated to uint16, one pixel per point; the rate is the share of lit pixels."""
    n, size, pad = 100_000, 512, 6
    cum = np.cumsum(system[:, 6])
    k = np.minimum(np.searchsorted(cum, rng.random(n - 1), side="left"), len(system) - 1)
    xs, ys = np.zeros(n), np.zeros(n)
    x = y = 0.0
    for i in range(n - 1):
        a, b, c, d, e, f = system[k[i], :6]
        x, y = a * x + b * y + e, c * x + d * y + f
        xs[i + 1], ys[i + 1] = x, y
    xs -= min(xs.min(), 0.0)
    ys -= min(ys.min(), 0.0)
    px = (xs / (xs.max() - xs.min()) * (size - 2 * pad) + pad).astype(np.uint16)
    py = (ys / (ys.max() - ys.min()) * (size - 2 * pad) + pad).astype(np.uint16)
    img = np.zeros((size, size), bool)
    img[py, px] = True
    return float(img.mean())


@pytest.mark.slow
def test_filling_rate_agrees_with_the_reference_search():
    """The search keeps the systems the reference's search would: the same decision at 0.2 for
    kept and rejected systems, and for kept ones the same rate within the chain noise. (Rejected
    systems may differ more, by up to ~0.03: a weakly contracting system's points near the origin,
    which the reference keeps and divrob's burn-in discards, weigh more when few pixels are lit.)"""
    rng = np.random.default_rng(0)
    systems = [fr.search_category(11, k)[0] for k in range(3)]  # accepted ones
    while len(systems) < 6:  # and rejected ones, of every kind (contractive, so both stay finite)
        s = fr.random_ifs(rng)
        if np.abs(s[:, 0] * s[:, 3] - s[:, 1] * s[:, 2]).max() < 0.9 and np.abs(s[:, :4]).max() < 0.95:
            systems.append(s)
    ours = fr.filling_rates(systems, [[0, i] for i in range(len(systems))])
    ref = np.array([_reference_filling_rate(s, np.random.default_rng(i)) for i, s in enumerate(systems)])
    assert np.array_equal(ours >= fr.FILL_RATE, ref >= fr.FILL_RATE), (ours.round(4), ref.round(4))
    assert np.abs(ours - ref)[:3].max() < 0.01, (ours.round(4), ref.round(4))
    assert ref.min() < 0.2 <= ref.max()  # both sides of the threshold were compared


def test_random_ifs_probabilities_follow_determinants():
    rng = np.random.default_rng(0)
    for _ in range(50):
        s = fr.random_ifs(rng)
        assert 2 <= len(s) <= 7 and np.all(np.abs(s[:, :6]) <= 1)
        det = np.abs(s[:, 0] * s[:, 3] - s[:, 1] * s[:, 2])
        assert np.allclose(s[:, 6], det / det.sum())


def test_chains_match_a_per_point_loop():
    rng = np.random.default_rng(1)
    systems = [fr.random_ifs(rng) for _ in range(3)]
    u = torch.from_numpy(rng.random((3, 40, 5), dtype=np.float32))
    xs, ys = fr.chain_points(systems, u, burn_in=4)
    for r, s in enumerate(systems):
        cum = np.cumsum(s[:, 6])
        cum[-1] = 1
        for c in range(5):
            x = y = 0.0
            for t in range(40):
                a, b, cc, d, e, f = s[np.searchsorted(cum, u[r, t, c].item(), side="right"), :6]
                x, y = a * x + b * y + e, cc * x + d * y + f
                if t >= 4:
                    assert xs[r, t - 4, c].item() == pytest.approx(x, rel=1e-4, abs=1e-4)
                    assert ys[r, t - 4, c].item() == pytest.approx(y, rel=1e-4, abs=1e-4)


def test_patch_drawing_matches_pasting_point_by_point():
    """Last patch wins, zeros included, as PIL's paste in the original."""
    size, points, r = 40, 240, 3
    rng = np.random.default_rng(2)
    # Points crowded into a small square so patches overlap a lot.
    px = rng.integers(fr.PAD, fr.PAD + 6, (r, points))
    py = rng.integers(size - fr.PAD - 6, size - fr.PAD + 1, (r, points))
    flat = torch.from_numpy(py * size + px + np.arange(r)[:, None] * size * size)
    flat[2, 100:] = r * size * size  # a non-finite point: drawn nowhere
    masks = np.zeros((r, 1 + points), np.int16)
    masks[:, 1:] = rng.integers(1, 512, (r, points))
    reused: dict = {}
    for scratch in (None, reused, reused):  # fresh, then reused buffers (stale contents must not leak)
        got = fr.draw_patches(flat, torch.from_numpy(masks), size, scratch).numpy()
        want = np.zeros((r, size, size), bool)
        for k in range(r):
            for p in range(points if k < 2 else 100):
                m = int(masks[k, 1 + p])
                for i in range(3):
                    for j in range(3):
                        want[k, py[k, p] - 1 - i, px[k, p] + 1 + j] = (m >> (3 * i + j)) & 1
        assert np.array_equal(got, want)
        assert want.sum() > 100


def test_render_is_batch_independent_and_reuses_buffers():
    rng = np.random.default_rng(4)
    systems = [fr.random_ifs(rng) for _ in range(4)]
    seeds = [[5, j] for j in range(4)]
    together = fr.render(systems, seeds, 64, 3000, 50, CPU).numpy()
    scratch = {}
    for _ in range(2):
        alone = [fr.render([s], [w], 64, 3000, 50, CPU, scratch).numpy()[0] for s, w in zip(systems, seeds)]
        assert np.array_equal(np.stack(alone), together)


def test_parallel_render_gives_the_same_images_and_restores_threads():
    import torch

    rng = np.random.default_rng(5)
    systems = [fr.random_ifs(rng) for _ in range(5)]
    seeds = [[6, j] for j in range(5)]
    together = fr.render(systems, seeds, 64, 3000, 50, CPU).numpy()
    threads = torch.get_num_threads()
    split = fr.render_parallel(systems, seeds, 64, 3000, 50, CPU, [{}, {}, {}], 3).numpy()
    assert np.array_equal(split, together)
    assert torch.get_num_threads() == threads


def test_search_keeps_a_filling_system_and_ignores_batch_size():
    s1, rate, tried = fr.search_category(7, 0, batch=8)
    s2, rate2, tried2 = fr.search_category(7, 0, batch=3)
    assert rate >= fr.FILL_RATE and np.array_equal(s1, s2) and (rate, tried) == (rate2, tried2)
    assert fr.filling_rates([s1], [[9]])[0] >= 0.15  # another stream, same system: still filling


def test_layout_flips_and_indexer(small, tmp_path):
    assert [d.name for d in sorted(small.iterdir()) if d.is_dir()] == ["00000", "00001"]
    for d in ("00000", "00001"):
        files = sorted(p.name for p in (small / d).glob("*.png"))
        assert files == [f"{i:05d}.png" for i in range(10)]
        meta = json.loads((small / d / "ifs.json").read_text())
        assert meta["filling_rate"] >= 0.2 and 2 <= len(meta["maps"]) <= 7
    with Image.open(small / "00000" / "00000.png") as im:
        assert im.mode == "L" and im.size == (48, 48)
        a = np.asarray(im)
    assert set(np.unique(a)) <= {0, fr.GRAY} and (a > 0).mean() > 0.02
    b = np.asarray(Image.open(small / "00000" / "00001.png"))
    c = np.asarray(Image.open(small / "00000" / "00002.png"))
    assert np.array_equal(b, a[::-1]) and np.array_equal(c, a[:, ::-1])
    assert instance_plan(9) == (2, 0, 1) and instance_plan(4 * 25) == (0, 1, 0)
    assert fractaldb_status(small) == (2, 2)
    assert json.loads((small / "fractaldb.json").read_text())["complete"] is True
    df = index_image_folder(small, tmp_path / "cache", "fractaldb")
    assert len(df) == 20 and df.groupby("class_name").size().tolist() == [10, 10]


def test_deterministic_resumable_and_batch_independent(small, tmp_path):
    params = fractaldb_params(**SMALL)
    again = generate_fractaldb(tmp_path / "a", params, device="cpu", batch=1)
    assert tree_hashes(again) == tree_hashes(small)
    # A killed run: one category missing, a half-written temporary directory left behind.
    shutil.rmtree(again / "00001")
    (again / ".00001.abc.tmp").mkdir()
    params_json = (again / "fractaldb.json").read_text()
    assert fractaldb_status(again) == (1, 2)
    generate_fractaldb(again, params, device="cpu")
    shutil.rmtree(again / ".00001.abc.tmp")
    assert tree_hashes(again) == tree_hashes(small)
    assert (again / "fractaldb.json").read_text() == params_json


def test_other_parameters_or_foreign_directory_are_refused(small, tmp_path):
    with pytest.raises(SourceError, match="other parameters.*size"):
        generate_fractaldb(small, fractaldb_params(**(SMALL | {"size": 64})), device="cpu")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "photo.jpg").write_bytes(b"")
    with pytest.raises(SourceError, match="not a fractaldb dataset"):
        generate_fractaldb(tmp_path / "x", fractaldb_params(**SMALL), device="cpu")
    for bad, match in ((dict(instances=0), "positive"), (dict(size=16), "at least 32"),
                       (dict(points=10), "points"), (dict(weight_step=0.6), "weight_step")):
        with pytest.raises(SourceError, match=match):
            fractaldb_params(**(SMALL | bad))


def test_workspace_source_refuses_an_unfinished_directory(tmp_path):
    from divrob.sources import source_index, source_root
    from divrob.workspace import init_workspace

    ws = init_workspace(tmp_path / "ws")
    with pytest.raises(SourceError, match="divrob generate fractaldb"):
        source_root(ws, "fractaldb")
    params = fractaldb_params(**(SMALL | {"instances": 4}))
    generate_fractaldb(ws.data / "fractaldb", params, device="cpu", categories_subset=range(1))
    with pytest.raises(SourceError, match="incomplete \\(1 of 2 categories\\)"):
        source_root(ws, "fractaldb")
    generate_fractaldb(ws.data / "fractaldb", params, device="cpu")
    df = source_index(ws, "fractaldb")
    assert len(df) == 8 and sorted(df["class_name"].unique()) == ["00000", "00001"]
