"""camtrap-sim: an offline camera-trap task with a natural distribution shift, split like iWildCam-WILDS.

Procedural animals (body, head, legs, tail, ears/horns, coat markings) photographed by
fixed cameras. Each camera location has its own habitat, lighting, night-time IR share,
noise, blur, framing and species mix, so a model can lean on location shortcuts. As in
WILDS, OOD locations (`val`, `test`, disjoint from each other) never appear in training;
ID locations are split by day into `train` / `id_val` / `id_test`. OOD cameras also sit
partly in habitats no training camera sees, which is what makes the shift bite.

Generation is numpy + PIL only; everything follows from `seed` through per-purpose
`np.random.default_rng([seed, purpose, index])` streams, so output is byte-identical.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from divrob.apportion import largest_remainder
from divrob.errors import SourceError
from divrob.fileio import atomic_dir, write_json_atomic, write_text_atomic
from divrob.progress import SILENT, Reporter
from divrob.downstream.camtrap_render import ID_TERRAINS, N_DAYS, OOD_TERRAINS, SPECIES, make_location, render_image
from divrob.sources.generated import check_existing

SPLITS = ("train", "id_val", "id_test", "val", "test")
METADATA_COLUMNS = ("image_id", "filename", "y", "species", "location", "day", "split")
PARAMS_FILE = "camtrap_sim.json"
GENERATOR_VERSION = 3
# Per-species share of images per split (WILDS-like: most data in train, OOD test the largest eval
# split). id_test and test, the two a trend reads, are larger than WILDS's shares so that a small
# generated task scores each epoch with little sampling noise.
SPLIT_FRACTIONS = {"train": 0.55, "id_val": 0.05, "id_test": 0.15, "val": 0.05, "test": 0.20}
# Every species gets at least this many images per split, so the rarest still has a handful to learn from.
SPLIT_FLOORS = {"train": 3, "id_val": 1, "id_test": 1, "val": 1, "test": 1}
# Share of a species' in-distribution images taken in its home habitat (see `_assign`).
SHORTCUT = 0.8
# Zipf exponent of the species' image counts (iWildCam's tail is steeper; a milder one keeps
# macro-F1 of a small generated test split from hinging on a few images of the rarest species).
TAIL = 1.0

def _assign(
    seed: int, n_species: int, n_locations: int, n_ood: int, images: int, shortcut: float = SHORTCUT,
    tail: float = TAIL,
) -> tuple[pd.DataFrame, dict]:
    """Who is photographed where and when: species, location, day and split of every image.

    The shift is built in here. Every in-distribution camera stands in one of the ID habitats
    (round robin, so each habitat has cameras) and every species has a home habitat: an ID image
    of species k is taken at one of its home habitat's cameras with probability `shortcut`, else
    at any ID camera. The background thus predicts the species in train, id_val and id_test
    alike, a cue a model trained on few images learns early. OOD cameras stand in habitats no
    training camera sees (`OOD_TERRAINS`) and photograph every species alike, so there the cue is
    gone and only the animal itself tells species apart.
    """
    rng = np.random.default_rng([seed, 1])
    perm = rng.permutation(n_locations)
    groups = {
        "val": np.sort(perm[: n_ood // 2]),
        "test": np.sort(perm[n_ood // 2 : n_ood]),
        "id": np.sort(perm[n_ood:]),
    }
    terrains: dict[int, str] = {}
    for names, members in ((ID_TERRAINS, groups["id"]), (OOD_TERRAINS, groups["val"]), (OOD_TERRAINS, groups["test"])):
        order = rng.permutation(len(names))
        for j, loc in enumerate(members):
            terrains[int(loc)] = names[order[j % len(names)]]
    habitats = [t for t in ID_TERRAINS if t in {terrains[int(loc)] for loc in groups["id"]}]
    home = [habitats[i] for i in np.resize(rng.permutation(len(habitats)), n_species)]
    days = rng.permutation(N_DAYS)
    n_val_days, n_test_days = round(N_DAYS * 0.12), round(N_DAYS * 0.15)
    split_days = {
        "id_val": np.sort(days[:n_val_days]),
        "id_test": np.sort(days[n_val_days : n_val_days + n_test_days]),
        "train": np.sort(days[n_val_days + n_test_days :]),
    }
    id_locs = groups["id"]
    # Long tail: Zipf-like totals per species on top of per-split floors.
    floor = sum(SPLIT_FLOORS.values())
    totals = floor + largest_remainder(images - floor * n_species, 1.0 / (np.arange(n_species) + 2.0) ** tail)
    fractions = np.array([SPLIT_FRACTIONS[s] for s in SPLITS])
    floors = np.array([SPLIT_FLOORS[s] for s in SPLITS])
    rows = []
    for k in range(n_species):
        homes = np.array([loc for loc in id_locs if terrains[int(loc)] == home[k]])
        per_split = floors + largest_remainder(totals[k] - floor, fractions)
        for split, count in zip(SPLITS, per_split):
            if split in ("val", "test"):
                locs = rng.choice(groups[split], size=count)
                day = rng.integers(0, N_DAYS, count)
            else:
                at_home = rng.uniform(size=count) < shortcut
                locs = np.where(at_home, rng.choice(homes, size=count), rng.choice(id_locs, size=count))
                day = rng.choice(split_days[split], size=count)
            rows.extend(zip([k] * count, locs.tolist(), day.tolist(), [split] * count))
    order = rng.permutation(len(rows))
    df = pd.DataFrame([rows[i] for i in order], columns=["y", "location", "day", "split"])
    df.insert(0, "image_id", [f"sim{i:05d}" for i in range(len(df))])
    df.insert(1, "filename", "images/" + df["image_id"] + ".jpg")
    df.insert(3, "species", [SPECIES[k] for k in df["y"]])
    layout = {f"{g}_locations": v.tolist() for g, v in groups.items()}
    layout |= {f"{s}_days": v.tolist() for s, v in split_days.items()}
    layout |= {"terrains": {str(i): terrains[i] for i in range(n_locations)},
               "home_terrains": dict(zip(SPECIES[:n_species], home))}
    return df[list(METADATA_COLUMNS)], layout


def _validate(seed, size, n_species, n_locations, n_ood_locations, images) -> None:
    args = dict(seed=seed, size=size, n_species=n_species, n_locations=n_locations,
                n_ood_locations=n_ood_locations, images=images)
    for name, val in args.items():
        if not isinstance(val, (int, np.integer)) or isinstance(val, bool):
            raise SourceError(f"camtrap-sim: {name} must be an integer, got {val!r}")
    if seed < 0:
        raise SourceError(f"camtrap-sim: seed must be non-negative, got {seed}")
    if size < 16:
        raise SourceError(f"camtrap-sim: size must be at least 16 pixels, got {size}")
    if not 2 <= n_species <= len(SPECIES):
        raise SourceError(f"camtrap-sim: n_species must be between 2 and {len(SPECIES)}, got {n_species}")
    if n_ood_locations < 2:
        raise SourceError(
            f"camtrap-sim: n_ood_locations must be at least 2 (val and test need their own), got {n_ood_locations}"
        )
    if n_locations - n_ood_locations < 2:
        raise SourceError(
            f"camtrap-sim: n_locations ({n_locations}) must exceed n_ood_locations ({n_ood_locations}) "
            f"by at least 2, leaving in-distribution cameras to train on"
        )
    need = 2 * sum(SPLIT_FLOORS.values()) * n_species
    if images < need:
        raise SourceError(
            f"camtrap-sim: images must be at least {need} for {n_species} species "
            f"(every split needs each species), got {images}"
        )


def ensure_camtrap_sim(
    root: Path,
    *,
    seed: int = 0,
    size: int = 48,
    n_species: int = 14,
    n_locations: int = 16,
    n_ood_locations: int = 6,
    images: int = 2400,
    shortcut: float = SHORTCUT,
    reporter: Reporter = SILENT,
) -> Path:
    """Generate the camtrap-sim dataset at `root` unless it is already there; return `root`.

    `n_locations` counts all cameras; `n_ood_locations` of them are held out (half, rounded
    down, for `val`, the rest for `test`). `shortcut` is the share of a species' ID images taken
    in its home habitat (0: the background says nothing about the species).
    """
    root = Path(root)
    _validate(seed, size, n_species, n_locations, n_ood_locations, images)
    if not isinstance(shortcut, (int, float)) or isinstance(shortcut, bool) or not 0 <= shortcut <= 1:
        raise SourceError(f"camtrap-sim: shortcut must be a number between 0 and 1, got {shortcut!r}")
    params = {
        "source": "camtrap-sim",
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "size": int(size),
        "n_species": int(n_species),
        "n_locations": int(n_locations),
        "n_ood_locations": int(n_ood_locations),
        "images": int(images),
        "shortcut": float(shortcut),
    }
    if not check_existing(root, PARAMS_FILE, params, "camtrap-sim"):
        return root

    df, layout = _assign(seed, n_species, n_locations, n_ood_locations, images, float(shortcut))
    ood = set(layout["val_locations"]) | set(layout["test_locations"])
    locations = [make_location(np.random.default_rng([seed, 3, i]), size, i in ood, layout["terrains"][str(i)])
                 for i in range(n_locations)]
    task = reporter.task("generating camtrap-sim", total=len(df))
    try:
        with atomic_dir(root) as tmp:
            (tmp / "images").mkdir()
            for i, row in enumerate(df.itertuples(index=False)):
                rng = np.random.default_rng([seed, 7, i])
                img = render_image(row.y, locations[row.location], row.day, rng, size)
                img.save(tmp / row.filename, format="JPEG", quality=90)
                if i % 100 == 99:
                    task.advance(100)
            task.advance(len(df) % 100)
            write_text_atomic(tmp / "metadata.csv", df.to_csv(index=False))
            categories = pd.DataFrame({"y": range(n_species), "name": SPECIES[:n_species]})
            write_text_atomic(tmp / "categories.csv", categories.to_csv(index=False))
            # Written last: its presence marks a complete dataset.
            extra = layout | {"species": list(SPECIES[:n_species])}
            write_json_atomic(tmp / PARAMS_FILE, params | extra)
    finally:
        task.close()
    return root


def load_camtrap_metadata(root: Path) -> pd.DataFrame:
    """metadata.csv of a generated camtrap-sim dataset, checked for the expected columns and values."""
    path = Path(root) / "metadata.csv"
    if not path.is_file():
        raise SourceError(f"{path} not found; generate the dataset with ensure_camtrap_sim first")
    try:
        df = pd.read_csv(path, dtype={"image_id": str, "filename": str, "species": str, "split": str})
    except (OSError, ValueError) as e:
        raise SourceError(f"{path} is not a readable CSV ({e}); delete {root} and generate again") from e
    if tuple(df.columns) != METADATA_COLUMNS:
        raise SourceError(f"{path} has columns {list(df.columns)}; expected {list(METADATA_COLUMNS)}")
    for col in ("y", "location", "day"):
        if not pd.api.types.is_integer_dtype(df[col]):
            raise SourceError(f"{path}: column {col!r} must hold integers")
    bad = sorted(set(df["split"]) - set(SPLITS))
    if bad:
        raise SourceError(f"{path}: unknown split values {bad}; expected {list(SPLITS)}")
    return df
