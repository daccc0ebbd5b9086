"""Taxonomy: shipped ImageNet-1k metadata, WordNet-depth relabelling, BREEDS maps, WordNet."""

from __future__ import annotations

import csv
import json

import pytest

from divrob.errors import DivrobError
from divrob.taxonomy import imagenet, wordnet
from divrob.taxonomy.breeds import breeds_map, breeds_subset
from divrob.taxonomy.imagenet import (
    depth_counts,
    hypernym_paths,
    imagenet_classes,
    max_depth,
    relabel_by_depth,
    shortest_path,
    under_synset,
)
from divrob.taxonomy.wordnet import TaxonomyError, ensure_wordnet

MANIFESTS = imagenet.data_manifests_dir()


# --- shipped class list ------------------------------------------------------------------


def test_imagenet_classes_are_the_1000_in_sorted_wnid_order():
    df = imagenet_classes()
    assert list(df.columns) == ["index", "wnid", "name"]
    assert len(df) == 1000
    assert df["wnid"].is_unique and df["name"].is_unique
    assert list(df["index"]) == list(range(1000))
    assert list(df["wnid"]) == sorted(df["wnid"])
    assert df["wnid"].str.fullmatch(r"n\d{8}").all()
    first, last = df.iloc[0], df.iloc[-1]
    assert (first["wnid"], first["name"]) == ("n01440764", "tench")
    assert (last["wnid"], last["name"]) == ("n15075141", "toilet tissue")


def test_imagenet_classes_returns_a_copy():
    df = imagenet_classes()
    df.loc[0, "name"] = "changed"
    assert imagenet_classes().loc[0, "name"] == "tench"


def test_hypernym_paths_cover_every_class_and_run_root_to_class():
    paths = json.loads((MANIFESTS / "imagenet1k_wordnet.json").read_text())
    assert paths["wordnet_version"] == "3.0"
    assert set(paths["paths"]) == set(imagenet_classes()["wnid"])
    for wnid in imagenet_classes()["wnid"]:
        ps = hypernym_paths(wnid)
        assert ps, wnid
        leaves = {p[-1] for p in ps}
        assert len(leaves) == 1, wnid
        assert all(p[0] == "entity.n.01" for p in ps), wnid
    assert hypernym_paths("n01440764")[0][-1] == "tench.n.01"
    assert imagenet.class_synset("n02504458") == "african_elephant.n.01"


def test_unknown_wnid_raises():
    with pytest.raises(TaxonomyError, match="not an ImageNet-1k wnid"):
        hypernym_paths("n99999999")


# --- label semantics: classes under a synset -----------------------------------------------


def test_animal_classes_and_their_complement_split_imagenet():
    animals = under_synset("animal.n.01")
    rest = under_synset("animal.n.01", complement=True)
    assert 350 <= len(animals) <= 450
    assert len(animals) == 398  # WordNet 3.0
    assert len(animals) + len(rest) == 1000
    assert not set(animals) & set(rest)
    wnids = list(imagenet_classes()["wnid"])
    assert animals == [w for w in wnids if w in set(animals)]  # index order
    assert "n01440764" in animals  # tench
    assert "n04479046" in rest  # trench coat


def test_under_synset_includes_the_class_itself():
    assert under_synset("tench.n.01") == ["n01440764"]


@pytest.mark.parametrize(
    "name, message",
    [
        ("animal", "not a WordNet synset name"),
        ("animal.n.99", "no ImageNet-1k class under"),
        ("galaxy.n.01", "no ImageNet-1k class under"),  # a real synset, no class below it
        ("", "not a WordNet synset name"),
    ],
)
def test_under_synset_rejects_bad_names(name, message):
    with pytest.raises(TaxonomyError, match=message):
        under_synset(name)


# --- label granularity: relabelling by WordNet depth ---------------------------------------

# What the shortest-path contraction gives on WordNet 3.0; see divrob/taxonomy/imagenet.py
# for why depths 4-7 differ from the paper by 2-3 labels.
OUR_DEPTH_COUNTS = {2: 5, 4: 20, 5: 38, 6: 87, 7: 234}


def test_depth_counts_match_the_documented_values():
    counts = depth_counts()
    assert list(counts) == list(range(max_depth() + 1))
    assert {d: counts[d] for d in OUR_DEPTH_COUNTS} == OUR_DEPTH_COUNTS
    assert counts[0] == 1 and counts[max_depth()] == 1000
    assert all(a <= b for a, b in zip(list(counts.values()), list(counts.values())[1:]))


def test_depth_counts_are_close_to_the_papers():
    counts = depth_counts()
    assert counts[2] == imagenet.PAPER_DEPTH_COUNTS[2]
    for depth, paper in imagenet.PAPER_DEPTH_COUNTS.items():
        assert 0 <= counts[depth] - paper <= 3, (depth, counts[depth], paper)


def test_depth_2_labels_are_the_papers_five_superclasses():
    assert set(relabel_by_depth(2).values()) == {
        "object.n.01",
        "matter.n.03",
        "causal_agent.n.01",
        "communication.n.02",
        "attribute.n.02",
    }


@pytest.mark.parametrize("depth", [0, 2, 4, 5, 6, 7, 10])
def test_every_class_contracts_to_an_ancestor_on_its_shortest_path(depth):
    mapping = relabel_by_depth(depth)
    assert list(mapping) == list(imagenet_classes()["wnid"])
    assert len(set(mapping.values())) == depth_counts()[depth]
    for wnid, label in mapping.items():
        path = shortest_path(wnid)
        assert label in path
        assert path.index(label) == min(depth, len(path) - 1)
        assert any(label in p for p in hypernym_paths(wnid))
        assert min(len(p) for p in hypernym_paths(wnid)) == len(path)


def test_tied_shortest_paths_go_the_most_shared_way():
    # African elephant: pachyderm (elephants, rhinos, hippos...) beats proboscidean.
    assert "pachyderm.n.01" in shortest_path("n02504458")
    assert len(hypernym_paths("n02504458")) == 2


def test_relabel_nests_coarser_depths():
    # A depth-d label is an ancestor of (or equal to) the depth-(d+1) label of the same class.
    fine, coarse = relabel_by_depth(6), relabel_by_depth(5)
    for wnid in fine:
        path = shortest_path(wnid)
        assert path.index(coarse[wnid]) <= path.index(fine[wnid])


def test_full_depth_keeps_every_class():
    mapping = relabel_by_depth(max_depth())
    assert all(label == imagenet.class_synset(w) for w, label in mapping.items())


@pytest.mark.parametrize("depth", [-1, 10_000, 2.0, "4", True, None])
def test_relabel_rejects_depths_out_of_range(depth):
    with pytest.raises(TaxonomyError, match=f"from 0 to {max_depth()}"):
        relabel_by_depth(depth)


def test_taxonomy_error_is_a_user_error():
    assert issubclass(TaxonomyError, DivrobError)
    assert TaxonomyError.exit_code == 2


# --- BREEDS 16x12 -------------------------------------------------------------------------


def test_breeds_paper_map_is_16_superclasses_of_12_known_classes():
    mapping = breeds_map()
    assert len(mapping) == 16
    bad = {sup: len(subs) for sup, subs in mapping.items() if len(subs) != 12}
    assert not bad, f"superclasses without exactly 12 subclasses: {bad}"
    known = set(imagenet_classes()["wnid"])
    wnids = [w for subs in mapping.values() for w in subs]
    assert not set(wnids) - known, f"unknown wnids: {set(wnids) - known}"
    assert len(set(wnids)) == 192
    assert list(mapping)[:3] == ["garment", "bird", "reptile"]
    assert mapping["bird"][:2] == ["n01817953", "n01828970"]  # African grey, bee eater


def test_breeds_json_names_agree_with_the_class_list():
    # The table is transcribed by class name; every name must be the csv's name of its wnid.
    names = dict(zip(imagenet_classes()["wnid"], imagenet_classes()["name"]))
    doc = json.loads((MANIFESTS / "breeds_paper_16x12.json").read_text())
    mismatched = [
        (sup["name"], wnid, name)
        for sup in doc["superclasses"]
        for wnid, name in sup["subclasses"]
        if names.get(wnid) != name
    ]
    assert not mismatched, f"BREEDS entries that do not map to an ImageNet class: {mismatched}"


@pytest.mark.parametrize(
    "fraction, k", [(0.33, 4), (1 / 3, 4), (0.66, 8), (0.67, 8), (1.0, 12), (1, 12)]
)
def test_breeds_subset_sizes(fraction, k):
    subset = breeds_subset(fraction)
    assert list(subset) == list(breeds_map())
    assert all(len(subs) == k for subs in subset.values())


def test_breeds_subsets_nest():
    small, mid, full = breeds_subset(0.33), breeds_subset(0.67), breeds_subset(1.0)
    for sup in full:
        assert small[sup] == mid[sup][:4] and mid[sup] == full[sup][:8]
        assert full[sup] == breeds_map()[sup]


@pytest.mark.parametrize("fraction", [0, -0.5, 1.01, 2, float("nan"), 0.01, "0.5", True])
def test_breeds_subset_rejects_bad_fractions(fraction):
    with pytest.raises(TaxonomyError, match="subclass_fraction"):
        breeds_subset(fraction)


def test_unknown_breeds_map_raises():
    with pytest.raises(TaxonomyError, match="paper-16x12"):
        breeds_map("living-17")


# --- WordNet access -----------------------------------------------------------------------


def test_missing_wordnet_names_the_install_command(tmp_path, monkeypatch):
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "nltk_data")])
    monkeypatch.setattr(wordnet, "SYSTEM_DICT_DIRS", (str(tmp_path / "none"),))
    monkeypatch.delenv("WNSEARCHDIR", raising=False)
    monkeypatch.setenv("DIVROB_NLTK_DATA", str(tmp_path / "copy"))
    with pytest.raises(TaxonomyError, match="apt-get install wordnet-base wordnet-sense-index"):
        ensure_wordnet()


@pytest.mark.slow
def test_copy_system_wordnet_makes_a_corpus_nltk_reads(tmp_path):
    dict_dir = wordnet.system_wordnet_dir()
    if dict_dir is None:
        pytest.skip("no system WordNet 3.0 (apt-get install wordnet-base wordnet-sense-index)")
    from nltk.corpus.reader import WordNetCorpusReader

    corpus = wordnet.copy_system_wordnet(dict_dir, tmp_path)
    assert corpus == tmp_path / "corpora" / "wordnet"
    lexnames = (corpus / "lexnames").read_text().splitlines()
    assert len(lexnames) == 45 and lexnames[5] == "05\tnoun.animal\t1"
    import nltk

    nltk.data.path.append(str(tmp_path))
    try:
        root = nltk.data.find("corpora/wordnet", paths=[str(tmp_path)])
        with pytest.warns(UserWarning, match="multilingual"):  # no omw reader passed
            wn = WordNetCorpusReader(root, None)
        assert wn.synset_from_pos_and_offset("n", 2084071).name() == "dog.n.01"
        assert wn.synset("dog.n.01").lexname() == "noun.animal"
    finally:
        nltk.data.path.remove(str(tmp_path))


@pytest.fixture(scope="module")
def live_wordnet():
    try:
        return ensure_wordnet()
    except TaxonomyError as exc:
        pytest.skip(f"WordNet unavailable, cannot check shipped data against it: {exc}")


@pytest.mark.slow
def test_shipped_hypernym_paths_match_live_wordnet(live_wordnet):
    wn = live_wordnet
    assert wn.get_version() == "3.0"
    mismatched = []
    for wnid in imagenet_classes()["wnid"]:
        synset = wordnet.synset_of_wnid(wn, wnid)
        live = [[s.name() for s in p] for p in synset.hypernym_paths()]
        # nltk's path order varies with str hashing; the shipped order is (length, names).
        if sorted(live, key=lambda p: (len(p), p)) != hypernym_paths(wnid):
            mismatched.append(wnid)
        assert wordnet.wnid_of_synset(synset) == wnid
    hint = "regenerate with data_manifests/make_imagenet1k_wordnet.py"
    assert not mismatched, f"{hint}: {mismatched[:10]}"


def test_shipped_names_are_wordnet_lemmas_of_their_synsets(live_wordnet):
    # torchvision's names are WordNet lemmas except where it disambiguates two classes.
    wn = live_wordnet
    renamed = {"n02012849": "crane bird", "n03710721": "maillot tank suit"}
    for wnid, name in zip(imagenet_classes()["wnid"], imagenet_classes()["name"]):
        synset = wordnet.synset_of_wnid(wn, wnid)
        lemmas = {lem.name().replace("_", " ").lower() for lem in synset.lemmas()}
        assert name.lower() in lemmas or renamed.get(wnid) == name, (wnid, name, lemmas)


def test_classes_csv_is_plain_index_wnid_name():
    with open(MANIFESTS / "imagenet1k_classes.csv", newline="") as fp:
        rows = list(csv.reader(fp))
    assert rows[0] == ["index", "wnid", "name"]
    assert len(rows) == 1001
