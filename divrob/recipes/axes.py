"""The paper's axes as operations on a SourceIndex: which classes to keep, and what to call them.

`apply_axes` returns the index rows that a distribution draws from, with `class_name` (the
source class: the unit sampling is balanced over) and `label_name` (what the model is trained
to predict: the class itself, a WordNet ancestor, a BREEDS superclass or an iNat supercategory).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from divrob.errors import ManifestError
from divrob.recipes.schema import ClassSelector, Distribution, LabelMap

IMAGENET_LIKE = ("imagenet",)  # sources whose class names are ImageNet wnids


def _rng(dist: Distribution, salt: int) -> np.random.Generator:
    return np.random.default_rng([dist.seed, salt])


def _nested_prefix(items: list[str], fraction: float | None, count: int | None, rng: np.random.Generator) -> list[str]:
    """A seeded permutation's first k: so k=100 ⊂ k=400 and p=0.33 ⊂ p=0.67 for one seed."""
    order = [items[i] for i in rng.permutation(len(items))]
    if fraction is not None:
        count = max(1, int(round(fraction * len(items))))
    return order[: min(count, len(items))] if count is not None else order


def _need(source: str, allowed: tuple[str, ...], what: str) -> None:
    if source not in allowed:
        raise ManifestError(f"{what} needs a source with {'ImageNet wnids' if allowed == IMAGENET_LIKE else 'iNat supercategories'} "
                            f"({', '.join(allowed)}), not {source!r}")


def select_classes(index: pd.DataFrame, sel: ClassSelector, dist: Distribution, source: str) -> pd.DataFrame:
    df = index
    counts = df.groupby("class_name").size()
    if sel.most_frequent is not None:
        if sel.most_frequent > len(counts):
            raise ManifestError(f"classes.most_frequent = {sel.most_frequent}, but {source!r} has only {len(counts)} classes")
        top = counts.reset_index(name="n").sort_values(["n", "class_name"], ascending=[False, True])
        df = df[df["class_name"].isin(top["class_name"].head(sel.most_frequent))]
    if sel.under or sel.not_under:
        from divrob.taxonomy.imagenet import under_synset

        _need(source, IMAGENET_LIKE, "classes.under / not_under")
        keep = set(under_synset(sel.under or sel.not_under, complement=bool(sel.not_under)))
        df = df[df["class_name"].isin(keep)]
    if sel.wnids:
        _need(source, IMAGENET_LIKE, "classes.wnids")
        missing = sorted(set(sel.wnids) - set(df["class_name"]))
        if missing:
            raise ManifestError(f"classes.wnids: {missing[:5]} are not classes of {source!r}")
        df = df[df["class_name"].isin(sel.wnids)]
    if sel.breeds:
        from divrob.taxonomy.breeds import breeds_subset

        _need(source, IMAGENET_LIKE, "classes.breeds")
        # the table's order, first k per superclass: nested across fractions, as in the paper
        subset = breeds_subset(sel.subclass_fraction or 1.0, name=sel.breeds)
        sup_of = {wnid: sup for sup, subs in subset.items() for wnid in subs}
        df = df[df["class_name"].isin(sup_of)].assign(label_name=lambda d: d["class_name"].map(sup_of))
    if sel.supercategories or sel.largest_supercategories:
        if "supercategory" not in df.columns:
            _need(source, ("inat2017",), "classes.supercategories")
        sups = df.groupby("supercategory").size()
        if sel.supercategories:
            unknown = sorted(set(sel.supercategories) - set(sups.index))
            if unknown:
                raise ManifestError(f"classes.supercategories: {unknown} not in {source!r} (it has {sorted(sups.index)})")
            chosen = list(sel.supercategories)
        else:
            if sel.largest_supercategories > len(sups):
                raise ManifestError(f"classes.largest_supercategories = {sel.largest_supercategories}, but {source!r} has {len(sups)}")
            ranked = sups.reset_index(name="n").sort_values(["n", "supercategory"], ascending=[False, True])
            chosen = list(ranked["supercategory"].head(sel.largest_supercategories))
        df = df[df["supercategory"].isin(chosen)]
        if sel.subclass_fraction is not None:
            keep = []
            for k, sup in enumerate(sorted(chosen)):
                species = sorted(df.loc[df["supercategory"] == sup, "class_name"].unique())
                keep += _nested_prefix(species, sel.subclass_fraction, None, _rng(dist, 2000 + k))
            df = df[df["class_name"].isin(keep)]
        df = df.assign(label_name=df["supercategory"])
    if sel.random is not None:
        names = sorted(df["class_name"].unique())
        if sel.random > len(names):
            raise ManifestError(f"classes.random = {sel.random}, but only {len(names)} classes are left to draw from")
        df = df[df["class_name"].isin(_nested_prefix(names, None, sel.random, _rng(dist, 3000)))]
    return df


def relabel(df: pd.DataFrame, labels: LabelMap, source: str) -> pd.DataFrame:
    if labels.wordnet_depth is not None:
        from divrob.taxonomy.imagenet import relabel_by_depth

        _need(source, IMAGENET_LIKE, "labels.wordnet_depth")
        mapping = relabel_by_depth(labels.wordnet_depth)
        return df.assign(label_name=df["class_name"].map(mapping))
    if labels.supercategory:
        if "supercategory" not in df.columns:
            _need(source, ("inat2017",), "labels.supercategory")
        return df.assign(label_name=df["supercategory"])
    return df


def apply_axes(index: pd.DataFrame, dist: Distribution, source: str) -> pd.DataFrame:
    df = index
    if dist.classes is not None:
        df = select_classes(df, dist.classes, dist, source)
    if dist.labels is not None:
        df = relabel(df, dist.labels, source)
    if "label_name" not in df.columns:
        df = df.assign(label_name=df["class_name"])
    if df.empty:
        raise ManifestError(f"distribution {dist.name!r}: the class selection is empty; loosen `classes`")
    return df.reset_index(drop=True)


def check_taxonomy(dist: Distribution) -> tuple[str, str] | None:
    """Check names against the shipped class metadata, before any dataset is touched.
    Returns (field, reason) for the first problem, or None."""
    from divrob.errors import DivrobError

    sel, labels = dist.classes, dist.labels
    checks = []
    if sel is not None:
        if sel.under or sel.not_under:
            from divrob.taxonomy.imagenet import under_synset

            field = "classes.under" if sel.under else "classes.not_under"
            checks.append((field, lambda: under_synset(sel.under or sel.not_under)))
        if sel.wnids:
            from divrob.taxonomy.imagenet import imagenet_classes

            def known():
                unknown = sorted(set(sel.wnids) - set(imagenet_classes()["wnid"]))
                if unknown:
                    raise ManifestError(f"unknown ImageNet-1k wnid(s) {unknown[:5]}")
            checks.append(("classes.wnids", known))
        if sel.breeds:
            from divrob.taxonomy.breeds import breeds_subset

            checks.append(("classes.breeds", lambda: breeds_subset(sel.subclass_fraction or 1.0, name=sel.breeds)))
    if labels is not None and labels.wordnet_depth is not None:
        from divrob.taxonomy.imagenet import relabel_by_depth

        checks.append(("labels.wordnet_depth", lambda: relabel_by_depth(labels.wordnet_depth)))
    for field, check in checks:
        try:
            check()
        except (DivrobError, KeyError, ValueError) as e:
            return field, str(e).strip("'\"")
    return None
