"""BREEDS-style superclass maps over ImageNet-1k, shipped as JSON in data_manifests/.

`paper-16x12` is the paper's Table 3 (appendix C.1): 16 superclasses of 12 ImageNet classes
each, in the table's order. Per-class diversity (paper §4.4.2) keeps the first k subclasses
of every superclass, so smaller subsets nest inside larger ones: p = 0.33, 0.67, 1.0 keep
4, 8, 12 subclasses.
"""

from __future__ import annotations

import functools
import json
import math

from divrob.bundled import bundled
from divrob.taxonomy.wordnet import TaxonomyError

BREEDS_MAPS = {"paper-16x12": "breeds_paper_16x12.json"}


@functools.lru_cache(maxsize=None)
def _load(name: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if name not in BREEDS_MAPS:
        known = ", ".join(sorted(BREEDS_MAPS))
        raise TaxonomyError(f"unknown BREEDS map {name!r}; known maps: {known}")
    doc = json.loads(bundled(f"data_manifests/{BREEDS_MAPS[name]}").read_text())
    return tuple(
        (sup["name"], tuple(wnid for wnid, _name in sup["subclasses"]))
        for sup in doc["superclasses"]
    )


def breeds_map(name: str = "paper-16x12") -> dict[str, list[str]]:
    """Superclass name -> its subclass wnids, both in the map's order."""
    return {sup: list(subs) for sup, subs in _load(name)}


def subclasses_per_superclass(fraction: float, n_subclasses: int = 12) -> int:
    """How many subclasses a diversity ratio keeps: round(fraction * n), halves rounded up."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise TaxonomyError(f"subclass_fraction must be a number in (0, 1]; got {fraction!r}")
    if not 0 < fraction <= 1:  # also rejects NaN
        raise TaxonomyError(f"subclass_fraction must be in (0, 1]; got {fraction!r}")
    # round(), not ceil(): the paper's p = 0.67 means 8 of 12 (ceil(8.04) would be 9).
    k = math.floor(fraction * n_subclasses + 0.5)
    if k < 1:
        raise TaxonomyError(
            f"subclass_fraction {fraction!r} keeps no subclass of {n_subclasses}; "
            f"use at least {1 / n_subclasses:.3f}"
        )
    return k


def breeds_subset(fraction: float, name: str = "paper-16x12") -> dict[str, list[str]]:
    """The first round(fraction * n) subclasses of every superclass (nested across fractions)."""
    out = {}
    for sup, subs in _load(name):
        out[sup] = list(subs[: subclasses_per_superclass(fraction, len(subs))])
    return out
