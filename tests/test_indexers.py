"""ImageNet and iNaturalist 2017 indexers, run on tiny trees in the real layouts."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import TINY_INAT2017_SPECIES, inat2017_counts, jpeg_bytes

from divrob.errors import SourceError
from divrob.sources import imagenet as imagenet_mod
from divrob.sources import inat2017 as inat_mod
from divrob.sources.imagenet import index_imagenet
from divrob.sources.inat2017 import index_inat2017, unique_class_names

IMAGENET_LAYOUT_HINT = "<root>/train/<wnid>/*.JPEG"
INAT_LAYOUT_HINT = "train2017.json"
INAT_TREE_HINT = "train_val_images/<Supercategory>/<Species>/<hash>.jpg"
OLD_NS = 1_000_000_000 * 10**9  # 2001-09-09: a tree untouched for years, like a real dataset


def _age_tree(root: Path) -> None:
    """Give every directory an old mtime, so a change made now surely moves it even on file
    systems with coarse timestamps."""
    for d, _, _ in os.walk(root):
        os.utime(d, ns=(OLD_NS, OLD_NS))


def _spy(monkeypatch, module, name: str) -> list[int]:
    calls: list[int] = []
    real = getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def _assert_canonical(df: pd.DataFrame) -> None:
    """Dense class ids in sorted-name order; rows sorted by (class_id, path)."""
    names = sorted(df["class_name"].unique())
    assert sorted(df["class_id"].unique().tolist()) == list(range(len(names)))
    assert (df["class_id"] == df["class_name"].map({n: i for i, n in enumerate(names)})).all()
    keys = list(zip(df["class_id"], df["path"]))
    assert keys == sorted(keys)
    assert df["class_id"].dtype == "int32"


# --------------------------------------------------------------------------- ImageNet


def test_imagenet_counts_columns_and_paths(tiny_imagenet, tiny_imagenet_counts, tmp_path):
    df = index_imagenet(tiny_imagenet, tmp_path / "cache")
    assert list(df.columns) == ["path", "class_id", "class_name"]
    assert df["class_name"].value_counts().to_dict() == tiny_imagenet_counts
    assert all((tiny_imagenet / p).is_file() for p in df["path"])
    assert all(p.startswith(f"train/{c}/") for p, c in zip(df["path"], df["class_name"]))


def test_imagenet_class_ids_dense_in_sorted_wnid_order(tiny_imagenet, tiny_imagenet_counts, tmp_path):
    df = index_imagenet(tiny_imagenet, tmp_path / "cache")
    _assert_canonical(df)
    by_id = df.drop_duplicates("class_id").set_index("class_id")["class_name"].to_dict()
    assert by_id == dict(enumerate(sorted(tiny_imagenet_counts)))


def test_imagenet_accepts_root_or_train_dir(tiny_imagenet, tmp_path):
    from_root = index_imagenet(tiny_imagenet, tmp_path / "c1")
    from_train = index_imagenet(tiny_imagenet / "train", tmp_path / "c2")
    # Paths are relative to the root given, so root / path opens the image either way.
    assert all((tiny_imagenet / "train" / p).is_file() for p in from_train["path"])
    assert ("train/" + from_train["path"]).tolist() == from_root["path"].tolist()
    assert from_train["class_id"].tolist() == from_root["class_id"].tolist()
    # One cache directory, both forms in turn: each gets its own paths, not the other's.
    cache = tmp_path / "shared"
    assert index_imagenet(tiny_imagenet, cache)["path"].tolist() == from_root["path"].tolist()
    assert index_imagenet(tiny_imagenet / "train", cache)["path"].tolist() == from_train["path"].tolist()


def test_imagenet_train_dir(tiny_imagenet, tmp_path):
    assert imagenet_mod.train_dir(tiny_imagenet) == tiny_imagenet / "train"
    assert imagenet_mod.train_dir(tiny_imagenet / "train") == tiny_imagenet / "train"
    with pytest.raises(SourceError) as e:
        imagenet_mod.train_dir(tiny_imagenet / "val")
    assert IMAGENET_LAYOUT_HINT in str(e.value)


def test_imagenet_row_order_is_deterministic(imagenet_factory, tiny_imagenet_counts, tmp_path):
    # The same classes created in the opposite order: directory listing order differs,
    # the index must not.
    a = imagenet_factory(dict(tiny_imagenet_counts))
    b = imagenet_factory(dict(reversed(list(tiny_imagenet_counts.items()))))
    df_a = index_imagenet(a, tmp_path / "ca")
    df_b = index_imagenet(b, tmp_path / "cb")
    pd.testing.assert_frame_equal(df_a, df_b)
    _assert_canonical(df_a)


def test_imagenet_second_call_uses_cache(tiny_imagenet, tmp_path, monkeypatch):
    scans = _spy(monkeypatch, imagenet_mod, "scan_image_folder")
    cache = tmp_path / "cache"
    cold = index_imagenet(tiny_imagenet, cache)
    warm = index_imagenet(tiny_imagenet, cache)
    assert len(scans) == 1
    pd.testing.assert_frame_equal(cold, warm)
    assert [p.name.split("-")[0] for p in cache.glob("*.parquet")] == ["imagenet"]


def test_imagenet_new_image_invalidates_cache(imagenet_factory, tmp_path, monkeypatch):
    root = imagenet_factory({"n01440764": 2, "n01443537": 1})
    _age_tree(root)
    scans = _spy(monkeypatch, imagenet_mod, "scan_image_folder")
    cache = tmp_path / "cache"
    before = index_imagenet(root, cache)
    (root / "train" / "n01443537" / "n01443537_99.JPEG").write_bytes(jpeg_bytes(0))
    after = index_imagenet(root, cache)
    assert len(scans) == 2
    assert len(after) == len(before) + 1
    assert "train/n01443537/n01443537_99.JPEG" in set(after["path"])
    assert len(list(cache.glob("*.parquet"))) == 1  # the stale index was removed
    # A new class folder changes train/'s mtime and shifts the dense ids.
    (root / "train" / "n01000000").mkdir()
    (root / "train" / "n01000000" / "n01000000_1.JPEG").write_bytes(jpeg_bytes(1))
    newest = index_imagenet(root, cache)
    assert len(scans) == 3
    assert newest.loc[newest["class_name"] == "n01000000", "class_id"].tolist() == [0]
    index_imagenet(root, cache)
    assert len(scans) == 3


def test_imagenet_ignores_non_image_files(imagenet_factory, tmp_path):
    counts = {"n01440764": 2, "n01443537": 1}
    root = imagenet_factory(counts)
    train = root / "train"
    (train / "n01440764" / "README.txt").write_text("not an image")
    (train / "n01440764" / ".DS_Store").write_bytes(b"\0")
    (train / "n01440764" / "._n01440764_1000.JPEG").write_bytes(b"\0")  # macOS resource fork
    (train / "n01443537" / "n01443537_1.JPEG.part").write_bytes(b"\0")
    (train / "LOC_synset_mapping.txt").write_text("n01440764 tench\n")
    (train / ".cache").mkdir()
    df = index_imagenet(root, tmp_path / "cache")
    assert df["class_name"].value_counts().to_dict() == counts
    assert all(p.endswith(".JPEG") and "/." not in p for p in df["path"])


def test_imagenet_missing_root(tmp_path):
    with pytest.raises(SourceError, match="not a directory") as e:
        index_imagenet(tmp_path / "nowhere", tmp_path / "cache")
    assert IMAGENET_LAYOUT_HINT in str(e.value)


def test_imagenet_wrong_layout(tmp_path):
    root = tmp_path / "pets"
    for cls in ("cats", "dogs"):
        (root / cls).mkdir(parents=True)
        (root / cls / "1.jpg").write_bytes(jpeg_bytes(0))
    with pytest.raises(SourceError) as e:
        index_imagenet(root, tmp_path / "cache")
    assert IMAGENET_LAYOUT_HINT in str(e.value)
    assert not (tmp_path / "cache").exists()


def test_imagenet_non_wnid_folder_among_wnids(imagenet_factory, tmp_path):
    root = imagenet_factory({"n01440764": 1})
    (root / "train" / "n0144076").mkdir()  # seven digits
    (root / "train" / "extra").mkdir()
    for form in (root, root / "train"):
        with pytest.raises(SourceError, match="not wnids: extra, n0144076") as e:
            index_imagenet(form, tmp_path / "cache")
        assert IMAGENET_LAYOUT_HINT in str(e.value)


def test_imagenet_empty_train_and_no_images(tmp_path):
    root = tmp_path / "ilsvrc"
    (root / "train").mkdir(parents=True)
    with pytest.raises(SourceError, match="no class directories") as e:
        index_imagenet(root, tmp_path / "cache")
    assert IMAGENET_LAYOUT_HINT in str(e.value)
    (root / "train" / "n01440764").mkdir()
    (root / "train" / "n01440764" / "notes.txt").write_text("x")
    with pytest.raises(SourceError, match="no images") as e:
        index_imagenet(root, tmp_path / "cache")
    assert IMAGENET_LAYOUT_HINT in str(e.value)


# --------------------------------------------------------------------------- iNaturalist 2017


def _spec(category_id: int) -> tuple[int, str, str, int, int]:
    return next(s for s in TINY_INAT2017_SPECIES if s[0] == category_id)


def test_inat_counts_columns_and_paths(tiny_inat2017, tiny_inat2017_counts, tmp_path):
    df = index_inat2017(tiny_inat2017, tmp_path / "cache")
    assert list(df.columns) == ["path", "class_id", "class_name", "category_id", "supercategory"]
    assert df["category_id"].dtype == "int64"
    assert df["class_name"].value_counts().to_dict() == tiny_inat2017_counts
    assert all((tiny_inat2017 / p).is_file() for p in df["path"])
    assert all(p.startswith("train_val_images/") for p in df["path"])


def test_inat_category_and_supercategory_columns(tiny_inat2017, tmp_path):
    df = index_inat2017(tiny_inat2017, tmp_path / "cache")
    for cid, sup, name, *_ in TINY_INAT2017_SPECIES:
        rows = df[df["category_id"] == cid]
        assert set(rows["class_name"]) == {name}
        assert set(rows["supercategory"]) == {sup}
        assert all(p.split("/")[1:3] == [sup, name] for p in rows["path"])


def test_inat_class_ids_dense_in_sorted_name_order(tiny_inat2017, tmp_path):
    df = index_inat2017(tiny_inat2017, tmp_path / "cache")
    _assert_canonical(df)
    names = sorted(s[2] for s in TINY_INAT2017_SPECIES)
    by_id = df.drop_duplicates("class_id").set_index("class_id")["class_name"].to_dict()
    assert by_id == dict(enumerate(names))
    # class ids are not the json's category ids (those are in no particular order)
    assert (df["class_id"] != df["category_id"]).any()


def test_inat_row_order_does_not_follow_json_order(tiny_inat2017, inat2017_factory, tmp_path):
    df = index_inat2017(tiny_inat2017, tmp_path / "c1")
    data = json.loads((tiny_inat2017 / "train2017.json").read_text())
    assert [im["file_name"] for im in data["images"]] != df["path"].tolist()
    # The same json with images and annotations reversed gives the same index.
    other = inat2017_factory()
    shutil.rmtree(other / "train_val_images")
    shutil.copytree(tiny_inat2017 / "train_val_images", other / "train_val_images")
    data["images"].reverse()
    data["annotations"].reverse()
    (other / "train2017.json").write_text(json.dumps(data))
    pd.testing.assert_frame_equal(df, index_inat2017(other, tmp_path / "c2"))


def test_inat_second_call_uses_cache_and_json_change_invalidates(inat2017_factory, tmp_path, monkeypatch):
    root = inat2017_factory()
    builds = _spy(monkeypatch, inat_mod, "_build")
    cache = tmp_path / "cache"
    cold = index_inat2017(root, cache)
    warm = index_inat2017(root, cache)
    assert len(builds) == 1
    pd.testing.assert_frame_equal(cold, warm)

    cid, sup, name, *_ = _spec(1)
    new_file = f"train_val_images/{sup}/{name}/ffffffffffffffffffffffffffffffff.jpg"
    (root / new_file).write_bytes(jpeg_bytes(3))
    # The image alone changes nothing: the json is the index.
    index_inat2017(root, cache)
    assert len(builds) == 1
    data = json.loads((root / "train2017.json").read_text())
    data["images"].append({"id": 99999, "width": 8, "height": 8, "file_name": new_file})
    data["annotations"].append({"id": 99999, "image_id": 99999, "category_id": cid})
    (root / "train2017.json").write_text(json.dumps(data))
    after = index_inat2017(root, cache)
    assert len(builds) == 2
    assert len(after) == len(cold) + 1
    assert after.loc[after["path"] == new_file, "class_name"].tolist() == [name]
    assert len(list(cache.glob("inat2017-*.parquet"))) == 1


def test_inat_val_split(tiny_inat2017, tmp_path):
    cache = tmp_path / "cache"
    train = index_inat2017(tiny_inat2017, cache)
    val = index_inat2017(tiny_inat2017, cache, split="val")
    assert val["class_name"].value_counts().to_dict() == inat2017_counts(TINY_INAT2017_SPECIES, "val")
    assert not set(train["path"]) & set(val["path"])
    assert len(list(cache.glob("*.parquet"))) == 2  # neither split evicts the other
    with pytest.raises(SourceError, match="split"):
        index_inat2017(tiny_inat2017, cache, split="test")


def test_inat_duplicate_species_names_get_supercategory(inat2017_factory, tmp_path):
    species = [
        (10, "Plantae", "Morus alba", 2, 0),
        (11, "Insecta", "Morus alba", 1, 0),  # same name, another kingdom
        (12, "Aves", "Pica pica", 1, 0),
    ]
    df = index_inat2017(inat2017_factory(species), tmp_path / "cache")
    assert df["class_name"].value_counts().to_dict() == {
        "Plantae/Morus alba": 2, "Insecta/Morus alba": 1, "Pica pica": 1,
    }
    assert df.groupby("class_name")["category_id"].nunique().eq(1).all()
    _assert_canonical(df)


def test_unique_class_names_last_resort_is_the_id():
    names = unique_class_names([(1, "A a", "Aves"), (2, "A a", "Aves"), (3, "A a", "Fungi"), (4, "B b", "Aves")])
    assert names == {1: "Aves/A a (1)", 2: "Aves/A a (2)", 3: "Fungi/A a", 4: "B b"}


def test_inat_unannotated_images_left_out(inat2017_factory, tmp_path):
    root = inat2017_factory()
    data = json.loads((root / "train2017.json").read_text())
    data["images"].append({"id": 77777, "file_name": "train_val_images/Aves/Pica pica/x.jpg"})
    (root / "train2017.json").write_text(json.dumps(data))
    (root / "train_val_images" / "README.txt").write_text("not listed")
    df = index_inat2017(root, tmp_path / "cache")
    assert len(df) == len(data["annotations"])
    assert not df["path"].str.contains("Pica pica|README").any()


def test_inat_missing_root_and_json(tmp_path):
    with pytest.raises(SourceError, match="not a directory") as e:
        index_inat2017(tmp_path / "nowhere", tmp_path / "cache")
    assert INAT_LAYOUT_HINT in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="train2017.json not found") as e:
        index_inat2017(tmp_path / "empty", tmp_path / "cache")
    assert INAT_TREE_HINT in str(e.value)


@pytest.mark.parametrize(
    "text, match",
    [
        ('{"images": [', "not valid JSON"),
        ("\xff\xfe", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"images": [], "categories": []}', "no 'annotations' list"),
        ('{"images": {}, "annotations": [], "categories": []}', "no 'images' list"),
        ('{"images": [{"id": 1}], "annotations": [], "categories": []}', r"images\[0\] lacks file_name"),
        (
            '{"images": [], "annotations": [], "categories": [{"id": 1, "name": "x"}]}',
            r"categories\[0\] lacks supercategory",
        ),
        ('{"images": [], "annotations": [], "categories": []}', "no annotated images"),
        (
            '{"images": [{"id": 1, "file_name": "a/b/c.jpg"}], "annotations": [{"image_id": 1, "category_id": 9}],'
            ' "categories": []}',
            "category_id 9, which is not among its categories",
        ),
    ],
)
def test_inat_bad_json(tmp_path, text, match):
    root = tmp_path / "inat"
    root.mkdir()
    (root / "train2017.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(SourceError, match=match) as e:
        index_inat2017(root, tmp_path / "cache")
    assert INAT_TREE_HINT in str(e.value)


def test_inat_missing_image_tree(inat2017_factory, tmp_path):
    root = inat2017_factory()
    shutil.rmtree(root / "train_val_images")
    with pytest.raises(SourceError, match="image tree .*train_val_images not found") as e:
        index_inat2017(root, tmp_path / "cache")
    assert INAT_TREE_HINT in str(e.value)


def test_inat_missing_first_image_is_caught_even_from_cache(inat2017_factory, tmp_path):
    root = inat2017_factory()
    cache = tmp_path / "cache"
    df = index_inat2017(root, cache)
    (root / df["path"].iloc[0]).unlink()
    with pytest.raises(SourceError, match="missing") as e:
        index_inat2017(root, cache)
    assert INAT_TREE_HINT in str(e.value)
