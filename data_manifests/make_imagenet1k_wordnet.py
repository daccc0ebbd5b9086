"""Regenerate the shipped ImageNet-1k metadata in this directory.

    python data_manifests/make_imagenet1k_wordnet.py --timm-wheel /tmp/timm/timm-*.whl

Writes
- imagenet1k_classes.csv   index,wnid,name for the 1000 ILSVRC-2012 classes; index = position
                           in sorted wnid order (torchvision's order); name = torchvision's
                           `ResNet18_Weights.IMAGENET1K_V1.meta["categories"]`, which is in
                           that order and has no duplicate names.
- imagenet1k_wordnet.json  {"wordnet_version": "3.0", "paths": {wnid: [[root..class], ...]}}
                           every hypernym path of the class synset (nltk's
                           `Synset.hypernym_paths()`), as synset names, sorted by (length,
                           names). nltk keeps a synset's pointers in a set, so its own path
                           order changes from process to process with str hashing; the
                           sorted order makes "the first shortest path" reproducible.

The wnid list comes from timm's `timm/data/_info/imagenet_synsets.txt` (get the wheel with
`pip download timm --no-deps -d /tmp/timm`; timm is not a divrob dependency), or from any
text file with one wnid per line (`--wnids`). Needs nltk + WordNet 3.0 and torchvision.
breeds_paper_16x12.json is a transcription of the paper's Table 3 and is not generated here.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from divrob.fileio import atomic_path, write_text_atomic  # noqa: E402
from divrob.taxonomy.wordnet import ensure_wordnet, synset_of_wnid  # noqa: E402

TIMM_SYNSETS = "timm/data/_info/imagenet_synsets.txt"


def read_wnids(args) -> list[str]:
    if args.wnids:
        text = Path(args.wnids).read_text()
    else:
        with zipfile.ZipFile(args.timm_wheel) as zf:
            text = zf.read(TIMM_SYNSETS).decode()
    wnids = [line.strip() for line in text.splitlines() if line.strip()]
    if len(wnids) != 1000 or len(set(wnids)) != 1000:
        raise SystemExit(f"expected 1000 distinct wnids, got {len(wnids)}")
    return sorted(wnids)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--timm-wheel", help="a downloaded timm wheel (.whl)")
    src.add_argument("--wnids", help="a text file with the 1000 wnids, one per line")
    ap.add_argument("--out", default=str(HERE), help="output directory (default: here)")
    args = ap.parse_args()
    out = Path(args.out)

    wnids = read_wnids(args)

    from torchvision.models import ResNet18_Weights

    names = list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])
    assert len(names) == 1000 and len(set(names)) == 1000

    wn = ensure_wordnet()
    paths = {}
    for wnid in wnids:
        synset = synset_of_wnid(wn, wnid)
        found = [[s.name() for s in path] for path in synset.hypernym_paths()]
        paths[wnid] = sorted(found, key=lambda path: (len(path), path))

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["index", "wnid", "name"])
    for i, (wnid, name) in enumerate(zip(wnids, names)):
        writer.writerow([i, wnid, name])
    write_text_atomic(out / "imagenet1k_classes.csv", buf.getvalue())
    os.chmod(out / "imagenet1k_classes.csv", 0o644)

    # One class per line: small diffs when WordNet or nltk change.
    lines = [f"  {json.dumps(w)}: {json.dumps(paths[w])}" for w in wnids]
    doc = '{\n"wordnet_version": "3.0",\n"paths": {\n' + ",\n".join(lines) + "\n}\n}\n"
    json.loads(doc)
    with atomic_path(out / "imagenet1k_wordnet.json") as tmp:
        tmp.write_text(doc)
    os.chmod(out / "imagenet1k_wordnet.json", 0o644)
    print(f"wrote {len(wnids)} classes to {out}")


if __name__ == "__main__":
    main()
