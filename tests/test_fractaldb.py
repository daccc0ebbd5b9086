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


def test_weight_variants_follow_the_original_weights_file():
    w = fr.weight_variants(0.1)
    assert w.shape == (25, 6) and len({tuple(r) for r in w.round(6)}) == 25
    assert np.allclose(w[2], 1)  # the unchanged system, third as in weights_0.1.csv
    changed = [np.flatnonzero(~np.isclose(r, 1)) for r in w]
    assert all(len(c) <= 1 for c in changed)
    assert sorted({round(float(v), 6) for r in w for v in r}) == [0.8, 0.9, 1.0, 1.1, 1.2]


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
    assert rate >= fr.FILL_THRESHOLD and np.array_equal(s1, s2) and (rate, tried) == (rate2, tried2)
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
