"""Training throughput, end-to-end through divrob's data path vs model-bound.

    python benchmarks/bench_train.py [--arch resnet50] [--res 224] [--batch N] [--steps N]
                                     [--device auto] [--compile] [--sweep]

Prints model-bound img/s (random tensors already on the device), end-to-end img/s (synthetic
JPEGs in a temp dir → decode-once uint8 cache → loader thread → device augmentation → step)
and their ratio. `--sweep` runs the DESIGN.md anchor architectures (GPU: at 224 px, plus
ResNet-50 at 448 for iWildCam fine-tuning). On one H200 the targets are ratio >= 0.9 for
ResNet-50 @ 224 and >= 1,050 img/s end-to-end for ResNet-50 @ 448.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from divrob.train.bench import bench_train  # noqa: E402

SWEEP = [("resnet50", 224), ("resnet18", 224), ("resnext50_32x4d", 224), ("densenet121", 224),
         ("mobilenet_v3_large", 224), ("alexnet", 224), ("resnet50", 448)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--res", type=int, default=224)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--sweep", action="store_true", help="every anchor architecture (slow on CPU)")
    args = ap.parse_args()
    runs = SWEEP if args.sweep else [(args.arch, args.res)]
    for arch, res in runs:
        batch = args.batch
        if batch is None and res >= 448:
            batch = 64  # ResNet-50 @ 448 with 256 images needs ~4x the activations of @224
        result = bench_train(arch, res, batch, args.steps, args.device, args.compile)
        print("\n".join(result.lines()))
        print(f"ratio: {result.ratio:.3f}", flush=True)


if __name__ == "__main__":
    main()
