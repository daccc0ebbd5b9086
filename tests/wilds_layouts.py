"""Tiny WILDS datasets in their true layouts, which the `wilds` package's own dataset classes load
(`download=False`): `fmow_v1.1/`, `camelyon17_v1.0/`, `rxrx1_v1.0/`. Files and columns are the ones
the classes read (wilds/datasets/{fmow,camelyon17,rxrx1}_dataset.py); each class's images have a
colour of their own, so a model has something to learn. iWildCam's is in test_iwildcam.py.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
from PIL import Image

COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]


def _png(colour, size=(24, 24), shade: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, tuple(min(255, c + shade) for c in colour)).save(buf, format="PNG")
    return buf.getvalue()


def _release(data: Path, version: str) -> None:
    data.mkdir(parents=True, exist_ok=True)
    (data / f"RELEASE_v{version}.txt").write_text(f"v{version} tiny fixture\n")


# ---- fMoW: splits by year (ID < 2013, OOD val 2013-2015, OOD test >= 2016), regions by country ----

FMOW_CATEGORIES = ["airport", "barn", "dam"]  # y = their index among WILDS's 62 categories: 0, 6, 12
FMOW_COUNTRIES = {"USA": "Americas", "FRA": "Europe", "CHN": "Asia", "NGA": "Africa", "AUS": "Oceania"}
# (metadata split, year) -> the WILDS split it lands in
FMOW_GROUPS = [("train", 2002, "train"), ("val", 2011, "id_val"), ("test", 2012, "id_test"),
               ("val", 2014, "val"), ("test", 2016, "test"), ("test", 2017, "test")]
FMOW_PER_CLASS = {"train": 6, "id_val": 2, "id_test": 3, "val": 2, "test": 2}


def write_fmow(root: Path) -> Path:
    """`<root>/fmow_v1.1/`: rgb_metadata.csv (the real columns), country_code_mapping.csv and
    images/rgb_img_<row>.png, where <row> counts every metadata row, the sequestered (`seq`) ones
    too, as FMoWDataset.get_input does."""
    data = root / "fmow_v1.1"
    _release(data, "1.1")
    (data / "images").mkdir(exist_ok=True)
    countries = list(FMOW_COUNTRIES)
    rows = [_fmow_row("seq", 2009, "barn", "USA")]  # first: every later image index is shifted by one
    for split, year, wilds_split in FMOW_GROUPS:
        for c, category in enumerate(FMOW_CATEGORIES):
            for i in range(FMOW_PER_CLASS[wilds_split]):
                rows.append(_fmow_row(split, year, category, countries[(len(rows) + c) % len(countries)], i))
    rows.append(_fmow_row("train", 2014, "dam", "FRA"))  # train-labelled but in the OOD years: no split
    for idx, row in enumerate(rows):
        colour = COLOURS[FMOW_CATEGORIES.index(row["category"])]
        (data / "images" / f"rgb_img_{idx}.png").write_bytes(_png(colour, shade=idx % 20))
    pd.DataFrame(rows).to_csv(data / "rgb_metadata.csv", index=False)
    pd.DataFrame([{"name": f"country {code}", "alpha-2": code[:2], "alpha-3": code, "country-code": k,
                   "region": region, "sub-region": region}
                  for k, (code, region) in enumerate(FMOW_COUNTRIES.items())]).to_csv(
        data / "country_code_mapping.csv", index=False)
    return root


def _fmow_row(split: str, year: int, category: str, country: str, i: int = 0) -> dict:
    return {"split": split, "img_filename": f"{category}_{i}_rgb.jpg", "img_path": f"{split}/{category}/{i}",
            "spatial_reference": "WGS84", "epsg": 4326, "category": category, "visible": True,
            "img_width": 224, "img_height": 224, "country_code": country, "cloud_cover": 0,
            "timestamp": f"{year}-0{1 + i % 9}-1{i % 10}T10:53:52Z", "lat": 10.0 + i, "lon": 20.0 - i}


# ---- Camelyon17: hospitals 0, 3, 4 are ID (train / id_val), 1 is OOD val, 2 OOD test ----

CAMELYON_PATCHES = {0: 10, 1: 4, 2: 4, 3: 10, 4: 10}  # patches per hospital (center)


def write_camelyon17(root: Path) -> Path:
    """`<root>/camelyon17_v1.0/`: metadata.csv (an unnamed index first, then patient, node,
    x_coord, y_coord, tumor, slide, center, split) and the patches it names."""
    data = root / "camelyon17_v1.0"
    _release(data, "1.0")
    rows = []
    for center, n in CAMELYON_PATCHES.items():
        for i in range(n):
            patient, node = 10 * center + i % 2, i % 2
            tumor = i % 2
            rows.append({"patient": f"{patient:03d}", "node": node, "x_coord": 3328 + 96 * i,
                         "y_coord": 21792 + 96 * i, "tumor": tumor, "slide": 2 * center + node, "center": center,
                         # the ID hospitals' own train / validation split; WILDS overwrites the OOD ones
                         "split": 1 if i % 5 == 4 else 0})
    for k, r in enumerate(rows):
        folder = data / "patches" / f"patient_{r['patient']}_node_{r['node']}"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"patch_patient_{r['patient']}_node_{r['node']}_x_{r['x_coord']}_y_{r['y_coord']}.png"
        (folder / name).write_bytes(_png(COLOURS[r["tumor"]], size=(96, 96), shade=k % 20))
    pd.DataFrame(rows).to_csv(data / "metadata.csv")
    return root


# ---- RxRx1: experiments of three cell types; site 2 of the train experiments is the ID test ----

RXRX1_EXPERIMENTS = {"train": ["HEPG2-01", "HUVEC-01", "U2OS-01"], "val": ["HEPG2-02", "U2OS-02"],
                     "test": ["HUVEC-02", "U2OS-03"]}
RXRX1_SIRNAS = ["s21721", "s20894", "s18582"]


def write_rxrx1(root: Path) -> Path:
    """`<root>/rxrx1_v1.0/`: metadata.csv (site_id, well_id, cell_type, dataset, experiment, plate,
    well, site, well_type, sirna, sirna_id) and images/<experiment>/Plate<plate>/<well>_s<site>.png."""
    data = root / "rxrx1_v1.0"
    _release(data, "1.0")
    rows = []
    for dataset, experiments in RXRX1_EXPERIMENTS.items():
        for experiment in experiments:
            for y, sirna in enumerate(RXRX1_SIRNAS):
                for plate in (1, 2):
                    well = f"B{2 + y:02d}"
                    for site in (1, 2):
                        rows.append({"site_id": f"{experiment}_{plate}_{well}_{site}",
                                     "well_id": f"{experiment}_{plate}_{well}", "cell_type": experiment.split("-")[0],
                                     "dataset": dataset, "experiment": experiment, "plate": plate, "well": well,
                                     "site": site, "well_type": "treatment", "sirna": sirna, "sirna_id": y})
    for k, r in enumerate(rows):
        folder = data / "images" / r["experiment"] / f"Plate{r['plate']}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{r['well']}_s{r['site']}.png").write_bytes(_png(COLOURS[r["sirna_id"]], size=(32, 32),
                                                                   shade=k % 20))
    pd.DataFrame(rows).to_csv(data / "metadata.csv", index=False)
    return root


WRITERS = {"fmow": write_fmow, "camelyon17": write_camelyon17, "rxrx1": write_rxrx1}
