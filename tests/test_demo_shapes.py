"""demo-shapes: layout, determinism, idempotency, atomicity and argument checks."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from divrob.errors import SourceError
from divrob.sources import demo_shapes
from divrob.sources.demo_shapes import MAX_CLASSES, class_name, class_spec, ensure_demo_shapes
from divrob.sources.index import index_image_folder

SMALL = dict(classes=5, per_class=4, size=16)


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return ensure_demo_shapes(tmp_path_factory.mktemp("ds") / "shapes", **SMALL, seed=3)


def test_layout_counts_and_image_size(small):
    dirs = sorted(d for d in small.iterdir() if d.is_dir())
    assert [d.name for d in dirs] == [class_name(k) for k in range(5)]
    for d in dirs:
        files = sorted(p.name for p in d.iterdir())
        assert files == [f"{i:05d}.png" for i in range(4)]
        with Image.open(d / files[0]) as im:
            assert im.format == "PNG" and im.mode == "RGB" and im.size == (16, 16)
    meta = json.loads((small / "demo_shapes.json").read_text())
    assert (meta["classes"], meta["per_class"], meta["size"], meta["seed"]) == (5, 4, 16, 3)


def test_real_image_folder_indexer_reads_it(small, tmp_path):
    df = index_image_folder(small, tmp_path / "cache", "demo")
    assert len(df) == 20
    assert df.groupby("class_name").size().tolist() == [4] * 5
    # Class ids follow the class index because names are zero-padded.
    assert df.drop_duplicates("class_id")["class_name"].tolist() == [class_name(k) for k in range(5)]


def test_class_specs_are_distinct_and_names_sort_in_index_order():
    specs = [class_spec(k) for k in range(MAX_CLASSES)]
    assert MAX_CLASSES >= 100
    assert len(set(specs)) == MAX_CLASSES
    names = [class_name(k) for k in range(MAX_CLASSES)]
    assert names == sorted(names)
    # Neighbouring classes differ in every attribute, so small runs still mix all three.
    for k in range(20):
        assert all(a != b for a, b in zip(class_spec(k), class_spec(k + 1)))


def test_many_classes(tmp_path):
    root = ensure_demo_shapes(tmp_path / "many", classes=100, per_class=1, size=16)
    assert len([d for d in root.iterdir() if d.is_dir()]) == 100


def test_images_within_a_class_vary(tmp_path):
    root = ensure_demo_shapes(tmp_path / "s", classes=1, per_class=6, size=32)
    images = [np.asarray(Image.open(p), np.float32) for p in sorted((root / class_name(0)).iterdir())]
    assert all(np.abs(images[0] - a).mean() > 5 for a in images[1:])


def test_deterministic_and_seed_dependent(small, tmp_path):
    again = ensure_demo_shapes(tmp_path / "again", **SMALL, seed=3)
    assert tree_hashes(again) == tree_hashes(small)
    other = ensure_demo_shapes(tmp_path / "other", **SMALL, seed=4)
    a, b = tree_hashes(small), tree_hashes(other)
    pngs = [k for k in a if k.endswith(".png")]
    assert all(a[k] != b[k] for k in pngs)


def test_second_call_does_not_rewrite(tmp_path, monkeypatch):
    root = ensure_demo_shapes(tmp_path / "s", **SMALL)
    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*")}

    def boom(*a, **k):
        raise AssertionError("regenerated")

    monkeypatch.setattr(demo_shapes, "render_image", boom)
    assert ensure_demo_shapes(tmp_path / "s", **SMALL) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == mtimes


def test_param_mismatch_names_the_params(tmp_path):
    root = ensure_demo_shapes(tmp_path / "s", **SMALL)
    with pytest.raises(SourceError) as err:
        ensure_demo_shapes(root, classes=5, per_class=6, size=16, seed=1)
    msg = str(err.value)
    assert "per_class" in msg and "seed" in msg and "classes:" not in msg
    assert "delete" in msg


def test_refuses_to_overwrite_a_foreign_directory(tmp_path):
    root = tmp_path / "mine"
    root.mkdir()
    (root / "precious.txt").write_text("keep me")
    with pytest.raises(SourceError, match="refusing"):
        ensure_demo_shapes(root, **SMALL)
    assert (root / "precious.txt").read_text() == "keep me"


def test_killed_run_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = demo_shapes.render_image

    def dies_midway(*a, **k):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(demo_shapes, "render_image", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        ensure_demo_shapes(tmp_path / "s", **SMALL)
    assert list(tmp_path.iterdir()) == []


def test_reports_progress(tmp_path):
    events = []

    class Task:
        def advance(self, n=1):
            events.append(n)

        def update(self, **kw):
            pass

        def close(self):
            events.append("closed")

    class Rep:
        def task(self, description, total=None):
            events.append(total)
            return Task()

        def log(self, message):
            pass

    ensure_demo_shapes(tmp_path / "s", **SMALL, reporter=Rep())
    assert events[0] == 20 and events[-1] == "closed" and sum(events[1:-1]) == 20


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(classes=0), "classes"),
        (dict(classes=MAX_CLASSES + 1), "classes"),
        (dict(per_class=0), "per_class"),
        (dict(size=8), "size"),
        (dict(size=32.0), "size"),
        (dict(seed=-1), "seed"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, fragment):
    with pytest.raises(SourceError, match=fragment):
        ensure_demo_shapes(tmp_path / "s", **{**SMALL, **kwargs})
    assert not (tmp_path / "s").exists()
