"""The paper's five axes on tiny ImageNet and iNat 2017 trees in their real layouts."""

from __future__ import annotations

import textwrap

import pytest

from divrob.errors import ManifestError, RecipeError
from divrob.recipes.load import load_recipe
from divrob.recipes.manifest import build_manifest, load_manifest
from divrob.recipes.schema import Distribution
from divrob.taxonomy.breeds import breeds_map
from divrob.taxonomy.imagenet import relabel_by_depth, under_synset
from divrob.workspace import init_workspace, open_workspace

ANIMALS = under_synset("animal.n.01")
OBJECTS = under_synset("animal.n.01", complement=True)
BREEDS = breeds_map("paper-16x12")

# inat: 3 supercategories with uneven sizes (Aves largest), species of uneven counts
INAT = [
    (0, "Aves", "Turdus migratorius", 6, 1), (1, "Aves", "Cardinalis cardinalis", 5, 1),
    (2, "Aves", "Pica pica", 4, 1), (3, "Aves", "Corvus corax", 3, 1),
    (4, "Plantae", "Aconitum napellus", 3, 1), (5, "Plantae", "Quercus robur", 4, 1),
    (6, "Insecta", "Danaus plexippus", 2, 1),
]


COUNTS = {w: 3 for subs in BREEDS.values() for w in subs}
COUNTS.update({w: 6 for w in ANIMALS[:6] + OBJECTS[:6]})


@pytest.fixture(scope="module")
def ws(imagenet_factory, inat2017_factory, tmp_path_factory):
    imagenet = imagenet_factory(COUNTS, val=0)
    inat = inat2017_factory(INAT)
    w = init_workspace(tmp_path_factory.mktemp("ws"))
    cfg = w.config_path.read_text()
    cfg = cfg.replace('imagenet = ""', f'imagenet = "{imagenet}"').replace('inat2017 = ""', f'inat2017 = "{inat}"')
    w.config_path.write_text(cfg)
    return open_workspace(w.root)


def rows_of(ws, **kw):
    d = Distribution(name="d", **kw)
    return load_manifest(ws, build_manifest(ws, d).manifest_id)


def per_label(rows):
    return rows.groupby("label_name").size()


def test_semantics_under_and_not_under_partition_the_classes(ws):
    animals = rows_of(ws, source="imagenet", classes={"under": "animal.n.01"})
    objects = rows_of(ws, source="imagenet", classes={"not_under": "animal.n.01"})
    a, o = set(animals.label_name), set(objects.label_name)
    assert a <= set(ANIMALS) and o <= set(OBJECTS) and not a & o
    assert a == set(COUNTS) & set(ANIMALS) and o == set(COUNTS) - set(ANIMALS)
    assert 350 <= len(ANIMALS) <= 450


def test_granularity_relabels_along_wordnet(ws):
    rows = rows_of(ws, source="imagenet", labels={"wordnet_depth": 2}, classes={"under": "animal.n.01"})
    mapping = relabel_by_depth(2)
    wnids = rows.path.str.split("/").str[0]
    assert (rows.label_name == wnids.map(mapping)).all()
    assert rows.label_name.nunique() < wnids.nunique()
    # labels are dense ids in sorted-name order
    assert sorted(rows.drop_duplicates("label").sort_values("label").label_name) == list(
        rows.drop_duplicates("label").sort_values("label").label_name)


def test_random_classes_fixed_total_nested(ws):
    small = rows_of(ws, source="imagenet", classes={"most_frequent": 12, "random": 4}, total=24)
    big = rows_of(ws, source="imagenet", classes={"most_frequent": 12, "random": 8}, total=24)
    assert len(small) == len(big) == 24
    assert (per_label(small) == 6).all() and (per_label(big) == 3).all()
    assert set(small.label_name) < set(big.label_name)


def test_breeds_superclasses_nested_and_balanced_over_subclasses(ws):
    p33 = rows_of(ws, source="imagenet", classes={"breeds": "paper-16x12", "subclass_fraction": 0.33}, total=192)
    p67 = rows_of(ws, source="imagenet", classes={"breeds": "paper-16x12", "subclass_fraction": 0.67}, total=192)
    for rows, k in ((p33, 4), (p67, 8)):
        assert sorted(rows.label_name.unique()) == sorted(BREEDS)
        assert (per_label(rows) == 12).all()
        subs = rows.path.str.split("/").str[0]
        assert subs.groupby(rows.label_name).nunique().eq(k).all()
        assert subs.value_counts().max() - subs.value_counts().min() <= 1
    assert set(p33.path.str.split("/").str[0]) < set(p67.path.str.split("/").str[0])


def test_inat_quantity_granularity_and_diversity(ws):
    top = rows_of(ws, source="inat2017", classes={"most_frequent": 3}, per_class=3)
    assert sorted(top.label_name.unique()) == ["Cardinalis cardinalis", "Pica pica", "Turdus migratorius"]
    coarse = rows_of(ws, source="inat2017", labels={"supercategory": True})
    assert per_label(coarse).to_dict() == {"Aves": 18, "Insecta": 2, "Plantae": 7}
    div = rows_of(ws, source="inat2017", classes={"largest_supercategories": 2, "subclass_fraction": 0.5},
                  total=20, replace=True)
    assert per_label(div).to_dict() == {"Aves": 10, "Plantae": 10}
    species = div.path.str.split("/").str[2]
    assert species[div.label_name == "Aves"].nunique() == 2
    whole = rows_of(ws, source="inat2017", classes={"largest_supercategories": 2, "subclass_fraction": 1.0},
                    total=20, replace=True)
    assert set(species) < set(whole.path.str.split("/").str[2])


def test_mixture_splits_total_and_keeps_labels_apart(ws):
    rows = rows_of(ws, source={"imagenet": 3, "inat2017": 1}, classes={"random": 3}, total=12)
    assert rows.source.value_counts().to_dict() == {"imagenet": 9, "inat2017": 3}
    assert rows.label_name.str.startswith(("imagenet/", "inat2017/")).all()


def test_determinism_and_seed(ws):
    kw = dict(source="imagenet", classes={"most_frequent": 12, "random": 5}, total=20)
    a = build_manifest(ws, Distribution(name="a", seed=3, **kw))
    b = build_manifest(ws, Distribution(name="b", seed=3, **kw))
    c = build_manifest(ws, Distribution(name="c", seed=4, **kw))
    assert a.manifest_id == b.manifest_id != c.manifest_id


def test_build_time_errors_write_nothing(ws):
    before = set(ws.manifests.iterdir())
    with pytest.raises(ManifestError, match="has only"):
        rows_of(ws, source="imagenet", classes={"under": "animal.n.01"}, per_class=7)
    with pytest.raises(ManifestError, match="has only 3"):
        rows_of(ws, source="imagenet", classes={"breeds": "paper-16x12"}, per_class=37)
    with pytest.raises(ManifestError, match="selection is empty"):
        rows_of(ws, source="imagenet", classes={"under": "fungus.n.01"})
    with pytest.raises(ManifestError, match="needs a source with ImageNet wnids"):
        rows_of(ws, source="inat2017", classes={"under": "animal.n.01"})
    assert set(ws.manifests.iterdir()) == before


@pytest.mark.parametrize("dist, field, reason", [
    ('classes = { under = "animall.n.01" }', "classes.under", "animall.n.01"),
    ('classes = { wnids = ["n99999999"] }', "classes.wnids", "n99999999"),
    ('labels = { wordnet_depth = 99 }', "labels.wordnet_depth", "99"),
    ('classes = { breeds = "paper-16x12", subclass_fraction = 1.5 }', "classes.subclass_fraction", "less than or equal to 1"),
    ('classes = { breeds = "paper-16x12", subclass_fraction = 0 }', "classes.subclass_fraction", "greater than 0"),
    ('total = 0', "total", "greater than 0"),
    ('classes = { subclass_fraction = 0.5 }', "classes", "needs breeds"),
    ('source = { imagenet = 1, inat2017 = 1 }', "distribution[0]", "needs total"),
])
def test_recipe_time_errors(tmp_path, dist, field, reason):
    p = tmp_path / "r.toml"
    src = "" if dist.startswith("source") else 'source = "imagenet"\n'
    p.write_text(textwrap.dedent(f"""
        [study]
        name = "t"
        archs = ["resnet18"]
        [[distribution]]
        name = "d"
        {src}{dist}
    """))
    with pytest.raises(RecipeError) as exc:
        load_recipe(p)
    assert field in str(exc.value) and reason in str(exc.value)


def test_supercategories_by_name_on_the_real_inat_layout(ws):
    """The form fig08 uses: supercategories named (not the largest k), labels = those names, a
    nested fraction of each one's species; a name the dataset lacks is an error naming them."""
    named = rows_of(ws, source="inat2017", classes={"supercategories": ["Insecta", "Plantae"]}, total=10, replace=True)
    assert per_label(named).to_dict() == {"Insecta": 5, "Plantae": 5}  # not Aves, the largest
    half = rows_of(ws, source="inat2017", classes={"supercategories": ["Aves", "Plantae"], "subclass_fraction": 0.5},
                   total=20, replace=True)
    assert half[half.label_name == "Aves"].path.str.split("/").str[2].nunique() == 2
    with pytest.raises(ManifestError, match=r"\['Fungi'\] not in 'inat2017'.*Aves"):
        rows_of(ws, source="inat2017", classes={"supercategories": ["Aves", "Fungi"]})
