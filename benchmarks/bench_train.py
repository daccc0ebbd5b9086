"""Training throughput, end-to-end through divrob's data path vs model-bound.

    python benchmarks/bench_train.py [--arch resnet50] [--res 224] [--phase pretrain|finetune]
                                     [--batch N] [--steps N] [--device auto] [--compile] [--sweep]

Prints model-bound img/s (random tensors already on the device), end-to-end img/s (synthetic
JPEGs in a temp dir → decode-once cache of whole frames → loader thread → the phase's input made
on the device → step) and their ratio. `--sweep` runs the DESIGN.md anchor architectures at
224 px with the pre-training input, plus ResNet-50 at 448 with the fine-tuning input
(iWildCam). On one H200 the targets are ratio >= 0.9 for ResNet-50 @ 224 and >= 1,050 img/s
end-to-end for ResNet-50 @ 448. benchmarks/gpu_suite.sh runs the ones the README reports.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from divrob.train.bench import bench_train  # noqa: E402

SWEEP = [("resnet50", 224, "pretrain"), ("resnet18", 224, "pretrain"), ("resnext50_32x4d", 224, "pretrain"),
         ("densenet121", 224, "pretrain"), ("mobilenet_v3_large", 224, "pretrain"), ("alexnet", 224, "pretrain"),
         ("resnet50", 448, "finetune")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--res", type=int, default=224)
    ap.add_argument("--phase", default="pretrain", choices=["pretrain", "finetune"])
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--sweep", action="store_true", help="every anchor architecture (slow on CPU)")
    args = ap.parse_args()
    runs = SWEEP if args.sweep else [(args.arch, args.res, args.phase)]
    for arch, res, phase in runs:
        result = bench_train(arch, res, args.batch, args.steps, args.device, args.compile, phase=phase)
        print("\n".join(result.lines()))
        print(f"ratio: {result.ratio:.3f}", flush=True)


if __name__ == "__main__":
    main()
