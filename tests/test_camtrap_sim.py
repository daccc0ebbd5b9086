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
from divrob.downstream.camtrap_render import (
    ID_TERRAINS,
    OOD_TERRAINS,
    SPECIES_LOOKS,
    make_location,
    render_image,
)
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
    assert counts.max() / counts.min() > 5
    assert train.min() >= 3
    assert counts.is_monotonic_decreasing
    steeper, _ = camtrap_sim._assign(0, 14, 16, 6, 2400, tail=2.3)  # iWildCam-like
    assert steeper.groupby("y").size().pipe(lambda c: c.max() / c.min()) > 30


def _with_terrain(df, layout):
    df = df.assign(terrain=df["location"].map(lambda loc: layout["terrains"][str(loc)]))
    return df.assign(home=df["species"].map(layout["home_terrains"]))


def test_background_predicts_the_species_in_distribution_only():
    # The designed shift: in train, id_val and id_test a species is mostly photographed in its
    # home habitat (a shortcut a small model learns); OOD cameras stand in habitats no training
    # camera sees and photograph every species alike.
    df, layout = camtrap_sim._assign(0, 8, 16, 6, 2400, shortcut=0.8)
    df = _with_terrain(df, layout)
    ind = df[df["split"].isin(["train", "id_val", "id_test"])]
    ood = df[df["split"].isin(["val", "test"])]
    assert set(ind["terrain"]) == set(ID_TERRAINS)
    assert set(ood["terrain"]) == set(OOD_TERRAINS)
    # 0.8 at home, plus the home habitat's share of the other 0.2 (2 of 10 cameras)
    assert 0.8 < (ind["terrain"] == ind["home"]).mean() < 0.9
    for split in ("train", "id_test"):
        part = ind[ind["split"] == split]
        assert (part["terrain"] == part["home"]).mean() > 0.75
    # OOD: the habitat is independent of the species (each holds about a third of every species)
    share = ood.groupby("species")["terrain"].value_counts(normalize=True)
    assert share.between(0.15, 0.55).all()
    # shortcut = 0: the background says nothing in distribution either
    df0, layout0 = camtrap_sim._assign(0, 8, 16, 6, 2400, shortcut=0.0)
    ind0 = _with_terrain(df0, layout0).query("split in ['train', 'id_val', 'id_test']")
    assert (ind0["terrain"] == ind0["home"]).mean() < 0.3


def test_species_differ_in_shape_and_coat_not_colour():
    assert len(set(SPECIES_LOOKS)) == len(SPECIES_LOOKS) == len(SPECIES)
    assert len({shape for shape, _ in SPECIES_LOOKS[:8]}) == 8  # the demo's 8 species: 8 body shapes
    # Two images of one species at one camera differ in colour as much as two species do:
    # colour carries no label.
    loc = make_location(np.random.default_rng(0), 32, False, "savanna")
    def creature_colour(k, i):
        img = np.asarray(render_image(k, loc, 10, np.random.default_rng([k, i]), 32), np.float32)
        diff = np.abs(img - loc.base).sum(2) > 60  # the creature's pixels
        return img[diff].mean(0)
    same = [creature_colour(0, i) for i in range(12)]
    other = [creature_colour(3, i) for i in range(12)]
    spread = np.std(same, axis=0).mean()
    assert spread > 5
    assert np.abs(np.mean(same, 0) - np.mean(other, 0)).mean() < 2 * spread


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
        (dict(shortcut=1.5), "shortcut"),
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
