"""camtrap-sim: WILDS-like splits, long tail, determinism, idempotency, atomicity, validation."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from divrob.downstream import camtrap_sim
from divrob.downstream.camtrap_sim import (
    METADATA_COLUMNS,
    SPECIES,
    SPLITS,
    ensure_camtrap_sim,
    load_camtrap_metadata,
)
from divrob.errors import SourceError

SMALL = dict(size=24, n_species=12, n_locations=10, n_ood_locations=4, images=360)


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return ensure_camtrap_sim(tmp_path_factory.mktemp("cam") / "camtrap", seed=5, **SMALL)


@pytest.fixture(scope="module")
def meta(small) -> pd.DataFrame:
    return load_camtrap_metadata(small)


def test_files_and_columns(small, meta):
    assert tuple(meta.columns) == METADATA_COLUMNS
    assert len(meta) == 360 and meta["image_id"].is_unique
    assert sorted(p.name for p in (small / "images").iterdir()) == sorted(meta["image_id"] + ".jpg")
    cats = pd.read_csv(small / "categories.csv")
    assert cats.columns.tolist() == ["y", "name"]
    assert cats["name"].tolist() == list(SPECIES[:12]) and cats["y"].tolist() == list(range(12))
    assert (meta["species"] == meta["y"].map(dict(zip(cats["y"], cats["name"])))).all()
    params = json.loads((small / "camtrap_sim.json").read_text())
    assert params["seed"] == 5 and params["images"] == 360


def test_images_decode_at_the_right_size(small, meta):
    for f in meta["filename"].iloc[:40]:
        with Image.open(small / f) as im:
            assert im.format == "JPEG" and im.mode == "RGB" and im.size == (24, 24)


def test_wilds_like_splits(meta):
    assert set(meta["split"]) == set(SPLITS)
    locs = {s: set(meta.loc[meta["split"] == s, "location"]) for s in SPLITS}
    days = {s: set(meta.loc[meta["split"] == s, "day"]) for s in SPLITS}
    id_locs = locs["train"] | locs["id_val"] | locs["id_test"]
    assert locs["val"] and locs["test"] and not (locs["val"] & locs["test"])
    assert not ((locs["val"] | locs["test"]) & id_locs)
    assert len(locs["val"] | locs["test"]) == 4 and len(id_locs) == 6
    # ID evaluation comes from the training cameras on other days.
    assert locs["id_test"] <= locs["train"] and locs["id_val"] <= locs["train"]
    assert not (days["id_test"] & days["train"]) and not (days["id_val"] & days["train"])
    assert not (days["id_val"] & days["id_test"])
    assert meta.groupby("split").size()["train"] > len(meta) / 2


def test_every_species_in_every_split(meta):
    table = meta.groupby(["split", "y"]).size().unstack(fill_value=0).reindex(columns=range(12), fill_value=0)
    assert (table.loc["train"] >= 3).all()
    assert (table > 0).all().all()


def test_long_tail_at_default_size():
    df, _ = camtrap_sim._assign(0, 14, 16, 6, 2400)
    counts = df.groupby("y").size()
    train = df[df["split"] == "train"].groupby("y").size()
    assert len(df) == 2400 and len(counts) == 14
    assert counts.max() / counts.min() > 30
    assert 3 <= train.min() <= 15  # the rarest species has a handful of training images
    assert counts.is_monotonic_decreasing


def test_locations_have_their_own_species_mix():
    df, _ = camtrap_sim._assign(0, 14, 16, 6, 2400)
    per_loc = df.groupby("location")["y"].nunique()
    assert per_loc.min() < 14  # not every species at every camera


def test_ood_backgrounds_differ_from_id(small, meta):
    # The per-camera median image is (mostly) the empty background; OOD cameras should look
    # unlike any training camera, more than two halves of the same camera's images differ.
    def median_image(files):
        return np.median(np.stack([np.asarray(Image.open(small / f), np.float32) for f in files]), axis=0)

    by_loc = {loc: g["filename"].tolist() for loc, g in meta.groupby("location")}
    ood = set(meta.loc[meta["split"].isin(["val", "test"]), "location"])
    id_medians = {loc: median_image(f) for loc, f in by_loc.items() if loc not in ood}
    within = [np.abs(median_image(f[0::2]) - median_image(f[1::2])).mean() for f in by_loc.values()]
    for loc in ood:
        m = median_image(by_loc[loc])
        nearest = min(np.abs(m - other).mean() for other in id_medians.values())
        assert nearest > np.median(within)


def test_deterministic_and_seed_dependent(small, tmp_path):
    again = ensure_camtrap_sim(tmp_path / "again", seed=5, **SMALL)
    assert tree_hashes(again) == tree_hashes(small)
    other = ensure_camtrap_sim(tmp_path / "other", seed=6, **SMALL)
    a, b = tree_hashes(small), tree_hashes(other)
    assert a["metadata.csv"] != b["metadata.csv"]
    jpgs = [k for k in a if k.endswith(".jpg")]
    assert sum(a[k] != b.get(k) for k in jpgs) == len(jpgs)


def test_second_call_does_not_rewrite(small, monkeypatch):
    mtimes = {p: p.stat().st_mtime_ns for p in small.rglob("*")}

    def boom(*a, **k):
        raise AssertionError("regenerated")

    monkeypatch.setattr(camtrap_sim, "render_image", boom)
    assert ensure_camtrap_sim(small, seed=5, **SMALL) == small
    assert {p: p.stat().st_mtime_ns for p in small.rglob("*")} == mtimes


def test_param_mismatch_raises(small):
    with pytest.raises(SourceError) as err:
        ensure_camtrap_sim(small, seed=5, **{**SMALL, "images": 400})
    assert "images" in str(err.value) and "delete" in str(err.value)
    assert "n_species" not in str(err.value)


def test_killed_run_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = camtrap_sim.render_image

    def dies_midway(*a, **k):
        calls["n"] += 1
        if calls["n"] == 50:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(camtrap_sim, "render_image", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        ensure_camtrap_sim(tmp_path / "c", **SMALL)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(size=12), "size"),
        (dict(n_species=1), "n_species"),
        (dict(n_species=len(SPECIES) + 1), "n_species"),
        (dict(n_ood_locations=1), "n_ood_locations"),
        (dict(n_locations=5, n_ood_locations=4), "n_locations"),
        (dict(images=50), "images"),
        (dict(seed=-3), "seed"),
        (dict(images=360.0), "images"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, fragment):
    with pytest.raises(SourceError, match=fragment):
        ensure_camtrap_sim(tmp_path / "c", **{**SMALL, **kwargs})
    assert not (tmp_path / "c").exists()


def test_load_metadata_errors(tmp_path, small):
    with pytest.raises(SourceError, match="metadata.csv"):
        load_camtrap_metadata(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    pd.read_csv(small / "metadata.csv").drop(columns=["day"]).to_csv(bad / "metadata.csv", index=False)
    with pytest.raises(SourceError, match=r"metadata.csv.*columns"):
        load_camtrap_metadata(bad)
