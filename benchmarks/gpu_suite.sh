#!/usr/bin/env bash
# The speed figures of the README's performance table, in one call (<= 8 minutes on one GPU):
#
#   benchmarks/gpu_suite.sh          # GPU if one is visible, else the CPU path
#   benchmarks/gpu_suite.sh --cpu    # the CPU path: tiny sizes, a few minutes on 2 cores
#
# GPU: ResNet-50 end-to-end vs model-bound training images/s at 224 px with the pre-training input
# (RandomResizedCrop over whole frames + flip; eager and torch.compile) and at 448 px with the
# fine-tuning input (whole 16:9 frames, no augmentation); the decode-cache formats compared;
# FractalDB images/s at 362 px; the demo's wall time. The target is end-to-end >= 0.9 of
# model-bound. Each section has a time limit, so the suite always finishes and says what ran out.
# The CPU path runs the same sections at toy sizes (the demo only with DEMO=1): it checks that the
# suite works, its figures say nothing about a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python}

mode=auto
[ "${1:-}" = "--cpu" ] && mode=cpu
[ "${1:-}" = "--gpu" ] && mode=gpu
if [ "$mode" = auto ]; then
  mode=$($PY -c "import torch; print('gpu' if torch.cuda.is_available() else 'cpu')")
fi
log=$(mktemp -t divrob-gpu-suite.XXXXXX)
work=$(mktemp -d -t divrob-gpu-suite-work.XXXXXX)
trap 'rm -rf "$work"' EXIT
start=$SECONDS

section() {  # section LIMIT_S TITLE COMMAND...
  local limit=$1 title=$2
  shift 2
  printf '\n== %s  (limit %ss, at %ss)\n' "$title" "$limit" "$((SECONDS - start))" | tee -a "$log"
  local t0=$SECONDS
  timeout "$limit" "$@" 2>&1 | grep -v -E '^\s*$|it/s|━' | tee -a "$log"
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 124 ] && echo "!! ran out of its ${limit}s" | tee -a "$log"
  [ "$rc" != 0 ] && [ "$rc" != 124 ] && echo "!! failed (exit $rc)" | tee -a "$log"
  echo "-- ${title}: $((SECONDS - t0))s wall" | tee -a "$log"
}

$PY -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU: CPU path')" | tee -a "$log"

if [ "$mode" = gpu ]; then
  section 100 "ResNet-50 @ 224, pre-training input, eager" \
    $PY -m divrob bench train --arch resnet50 --res 224 --phase pretrain --batch 256 --steps 30
  section 200 "ResNet-50 @ 224, pre-training input, torch.compile" \
    $PY -m divrob bench train --arch resnet50 --res 224 --phase pretrain --batch 256 --steps 30 --compile
  section 80 "ResNet-50 @ 448, fine-tuning input (iWildCam), eager" \
    $PY -m divrob bench train --arch resnet50 --res 448 --phase finetune --batch 64 --steps 30
  section 45 "decode-cache formats (bytes/image, images/s)" \
    $PY benchmarks/bench_train_cache.py --device cuda
  section 60 "FractalDB @ 362 px" \
    $PY benchmarks/bench_fractaldb.py --device cuda --batch 500 --repeats 3
  section 150 "demo wall time (divrob demo, fresh workspace)" \
    $PY -m divrob demo -w "$work/demo"
else
  # generous limits: a shared CPU machine can be slow; these only stop a hung section
  section 300 "ResNet-18 @ 32, pre-training input (CPU, toy size)" \
    $PY -m divrob bench train --arch resnet18 --res 32 --phase pretrain --batch 16 --steps 4 --device cpu
  section 300 "ResNet-18 @ 64, fine-tuning input (CPU, toy size)" \
    $PY -m divrob bench train --arch resnet18 --res 64 --phase finetune --batch 8 --steps 4 --device cpu
  section 300 "decode-cache formats (bytes/image, images/s; CPU)" \
    $PY benchmarks/bench_train_cache.py --device cpu --side 128 --out-size 64 --batch 32
  section 300 "FractalDB @ 362 px (CPU, few points)" \
    $PY benchmarks/bench_fractaldb.py --points 20000 --batch 4 --repeats 2
  if [ "${DEMO:-0}" = 1 ]; then
    section 900 "demo wall time (divrob demo, fresh workspace)" $PY -m divrob demo -w "$work/demo"
  else
    echo; echo "== demo wall time: skipped on the CPU path (DEMO=1 runs it; a few minutes on 2 cores)"
  fi
fi

printf '\n== summary (%s path, %ss)\n' "$mode" "$((SECONDS - start))"
grep -E '^[a-z0-9_]+ @ [0-9]+ px|^(model-bound|end-to-end|ratio|data path) |^divrob \(torch|^-- demo' "$log"
rm -f "$log"
