"""Index speed on a synthetic ImageNet-layout tree of empty .JPEG files (indexing reads names only).

    python benchmarks/bench_index.py [--classes 200] [--per-class 500]

Prints files/s for a cold index (scan + Parquet write) and a warm one (fingerprint + Parquet
read); the last line is `seconds: X` for the cold index. The tree was just written, so its
directory entries are in the page cache: on a cold network file system the scan is slower.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from divrob.sources.imagenet import index_imagenet  # noqa: E402


def build_tree(root: Path, classes: int, per_class: int) -> int:
    train = root / "train"
    for c in range(classes):
        wnid = f"n{1440764 + 1000 * c:08d}"
        d = train / wnid
        d.mkdir(parents=True)
        for i in range(per_class):
            (d / f"{wnid}_{i}.JPEG").touch()
    return classes * per_class


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classes", type=int, default=200)
    ap.add_argument("--per-class", type=int, default=500)
    ap.add_argument("--warm-repeats", type=int, default=5)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="divrob-bench-index-") as tmp:
        root, cache = Path(tmp) / "ilsvrc", Path(tmp) / "cache"
        t0 = time.perf_counter()
        n = build_tree(root, args.classes, args.per_class)
        print(f"tree: {args.classes} classes x {args.per_class} files = {n} files "
              f"(written in {time.perf_counter() - t0:.2f} s)")

        t0 = time.perf_counter()
        df = index_imagenet(root, cache)
        cold = time.perf_counter() - t0
        assert len(df) == n, (len(df), n)
        print(f"cold: {cold:.3f} s  {n / cold:,.0f} files/s")

        warm_times = []
        for _ in range(args.warm_repeats):
            t0 = time.perf_counter()
            warm_df = index_imagenet(root, cache)
            warm_times.append(time.perf_counter() - t0)
        assert len(warm_df) == n
        warm = min(warm_times)
        print(f"warm (cached, best of {args.warm_repeats}): {warm:.3f} s  {n / warm:,.0f} files/s")
        print(f"seconds: {cold:.3f}")


if __name__ == "__main__":
    main()
