"""Manifests: class-balanced seeded sampling, content-addressed ids, clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from divrob.errors import ManifestError
from divrob.recipes.manifest import build_manifest, load_manifest, sample_balanced
from divrob.recipes.schema import Distribution
from divrob.workspace import init_workspace, open_workspace

from conftest import jpeg_bytes

COUNTS = {"ant": 12, "bee": 9, "cat": 15, "dog": 10}


@pytest.fixture()
def ws(tmp_path):
    root = tmp_path / "folder"
    for k, (name, n) in enumerate(COUNTS.items()):
        (root / name).mkdir(parents=True)
        for i in range(n):
            (root / name / f"{i:03d}.jpg").write_bytes(jpeg_bytes(k))
    (root / "ant" / "notes.txt").write_text("not an image")
    w = init_workspace(tmp_path / "ws")
    cfg = w.config_path.read_text().replace("# mydata = \"/data/mydata\"", f'pets = "{root}"')
    w.config_path.write_text(cfg)
    return open_workspace(w.root)


def dist(**kw) -> Distribution:
    return Distribution(name="d", source="folder:pets", **kw)


def test_balanced_total_is_exact_and_even(ws):
    info = build_manifest(ws, dist(total=30))
    rows = load_manifest(ws, info.manifest_id)
    assert len(rows) == 30 and info.n_classes == 4
    counts = rows.groupby("label_name").size()
    assert counts.max() - counts.min() <= 1
    assert set(rows.columns) == {"source", "path", "label", "label_name"}
    assert not rows.duplicated(["path"]).any()
    assert rows["path"].str.endswith(".jpg").all()


def test_same_seed_same_manifest_other_seed_other(ws):
    a = build_manifest(ws, dist(total=20, seed=0))
    b = build_manifest(ws, dist(total=20, seed=0))
    c = build_manifest(ws, dist(total=20, seed=1))
    assert a.manifest_id == b.manifest_id != c.manifest_id
    pd.testing.assert_frame_equal(load_manifest(ws, a.manifest_id), load_manifest(ws, b.manifest_id))
    # the name is not part of what a manifest is
    assert build_manifest(ws, Distribution(name="other", source="folder:pets", total=20)).manifest_id == a.manifest_id


def test_per_class_too_many_is_an_error_unless_replace(ws):
    with pytest.raises(ManifestError, match="has only 9"):
        build_manifest(ws, dist(per_class=10))
    assert not any(ws.manifests.glob("*.parquet"))  # nothing half-written
    info = build_manifest(ws, dist(per_class=10, replace=True))
    rows = load_manifest(ws, info.manifest_id)
    assert (rows.groupby("label_name").size() == 10).all()
    assert rows[rows.label_name == "bee"].path.duplicated().sum() == 1


def test_total_below_class_count(ws):
    with pytest.raises(ManifestError, match="fewer than its 4 classes"):
        build_manifest(ws, dist(total=3))


def test_sample_balanced_vectorised_quotas():
    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(5), [3, 7, 2, 9, 4])
    quotas = np.array([2, 2, 2, 2, 2])
    rows = sample_balanced(ids, quotas, rng, replace=False, what="t")
    assert np.bincount(ids[rows], minlength=5).tolist() == [2] * 5
    assert len(np.unique(rows)) == len(rows)
