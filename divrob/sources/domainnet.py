"""DomainNet (Peng et al. 2019): six domains of the same 345 classes, in its standard layout

    <root>/<domain>/<class>/<file>.jpg
    <root>/<domain>_train.txt, <root>/<domain>_test.txt   lines "<domain>/<class>/<file> <label>"

The split lists are the truth: their labels (0-344, one per class name) are what a model learns,
and the train list is what a domain offers as a pre-training source (`source =
"domainnet:<domain>"`), so a domain's test images stay unseen wherever they are evaluated.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from divrob.errors import SourceError
from divrob.fileio import short_hash
from divrob.progress import SILENT, Reporter

if TYPE_CHECKING:  # naming domains (recipes, `divrob results`) must not import pandas
    import pandas as pd

DOMAINS = ("clipart", "infograph", "painting", "quickdraw", "real", "sketch")
PARTS = ("train", "test")
LAYOUT = ("<root>/<domain>/<class>/<image> with the split lists <root>/<domain>_train.txt and "
          "<root>/<domain>_test.txt (lines '<domain>/<class>/<file> <label>')")


def check_domain(domain: str, what: str = "domain") -> str:
    if domain not in DOMAINS:
        raise SourceError(f"{what} {domain!r} is not a DomainNet domain; choose from {', '.join(DOMAINS)}")
    return domain


def split_file(root: Path, domain: str, part: str) -> Path:
    path = Path(root) / f"{check_domain(domain)}_{part}.txt"
    if not path.is_file():
        raise SourceError(f"DomainNet: {path} not found; expected {LAYOUT}")
    return path


def read_split(root: Path, domain: str, part: str) -> pd.DataFrame:
    """Rows (path, label, class_name) of `<domain>_<part>.txt`, checked line by line: a path in
    the domain's own folder with a class folder, an integer label, one label per class."""
    import pandas as pd

    path = split_file(root, domain, part)
    paths, labels = [], []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = line.split()
            parts = fields[0].split("/") if fields else []
            if len(fields) != 2 or len(parts) != 3 or parts[0] != domain or not fields[1].isdigit():
                raise SourceError(f"{path}, line {n}: {line.strip()!r} is not '{domain}/<class>/<file> <label>'")
            paths.append(fields[0])
            labels.append(int(fields[1]))
    if not paths:
        raise SourceError(f"{path} lists no images; expected {LAYOUT}")
    df = pd.DataFrame({"path": paths, "label": labels})
    df["class_name"] = df["path"].str.split("/", n=2).str[1]
    check_labels(df, str(path))
    return df


def check_labels(df: pd.DataFrame, where: str) -> None:
    """Every class name has one label and every label one class name."""
    pairs = df[["class_name", "label"]].drop_duplicates()
    for col, other in (("class_name", "label"), ("label", "class_name")):
        dup = pairs[pairs.duplicated(col, keep=False)]
        if len(dup):
            first = dup[col].iloc[0]
            shown = sorted(map(str, dup[dup[col] == first][other]))
            raise SourceError(f"{where}: {col} {first!r} comes with several {other}s ({', '.join(shown)}); "
                              f"DomainNet gives each class one label")


def index_domainnet(root: Path, domain: str, cache_dir: Path, reporter: Reporter = SILENT) -> pd.DataFrame:
    """The SourceIndex of a domain's training images (its train list), cached until the list
    changes. `class_name` is the class folder; class ids follow sorted names, as DomainNet's
    labels do."""
    from divrob.sources.index import cached_index

    path = split_file(root, domain, "train")
    st = os.stat(path)
    fingerprint = short_hash([str(path.resolve()), st.st_size, st.st_mtime_ns])
    task = reporter.task(f"indexing DomainNet {domain}", total=None)
    try:
        return cached_index(Path(cache_dir), f"domainnet_{domain}", fingerprint,
                            lambda: read_split(root, domain, "train")[["path", "class_name"]])
    finally:
        task.close()
