"""Decode-cache formats compared: bytes per image and images/s of turning them into model input.

    python benchmarks/bench_train_cache.py [--side 448] [--out-size 224] [--batch 256] [--device auto]

On real photographs (the sample JPEGs scikit-learn and matplotlib ship, 640 x 427 and 512 x
600, about ImageNet's sizes), for the format divrob uses and the ones it was weighed against
(train/data.py's docstring):

- uint8 square (divrob): a batch gathered out of a memory-mapped cache (1 and N threads), and
  the crop-and-resize to model input on the device (`model_inputs`, RandomResizedCrop + flip);
- JPEG (quality 90) of the same square: PIL decode per CPU core, and nvJPEG on the GPU (batched
  torchvision.io.decode_jpeg) where there is one;
- the original JPEG: PIL decode + torchvision RandomResizedCrop, per CPU core (the reference
  recipe's loader).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def photos():
    import matplotlib.cbook
    from PIL import Image
    from sklearn.datasets import load_sample_image

    out = [Image.fromarray(load_sample_image(n)) for n in ("china.jpg", "flower.jpg")]
    out.append(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB"))
    return out


def jpeg_bytes(image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def rate(fn, n: int, seconds: float = 2.0) -> float:
    """Items/s of `fn()` (which handles n items), repeated for about `seconds`; best of the runs."""
    fn()
    best, spent = 0.0, 0.0
    while spent < seconds:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        spent += dt
        best = max(best, n / dt)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=448, help="cached square side (default: 2 x 224)")
    ap.add_argument("--out-size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=4, help="gather threads (the phase's `workers`)")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()

    import torch
    import torchvision.transforms as T
    from PIL import Image

    from divrob.devices import resolve_device
    from divrob.train.crops import epoch_generator
    from divrob.train.data import decode_images
    from divrob.train.inputs import model_inputs
    from divrob.train.loader import Batch, _gather

    dev = resolve_device(args.device)
    ims = photos()
    side, b = args.side, args.batch
    squares = [im.resize((side, side), Image.BILINEAR) for im in ims]
    sq_jpegs = [jpeg_bytes(s) for s in squares]
    orig_jpegs = [jpeg_bytes(im) for im in ims]
    print(f"torch {torch.__version__}, device {dev}, {len(ims)} photos "
          f"({', '.join(f'{im.width}x{im.height}' for im in ims)}), cache side {side}, batch {b}")
    print(f"{'format':34s} {'bytes/image':>12s}  rate")

    with tempfile.TemporaryDirectory(prefix="divrob-bench-cache-") as tmp:
        paths = []
        for k in range(4 * b):  # a cache of 4 batches of the photos, saved as files once
            p = Path(tmp) / f"{k:05d}.jpg"
            p.write_bytes(orig_jpegs[k % len(ims)])
            paths.append(p)
        data = decode_images(paths, np.zeros(len(paths)), side, Path(tmp) / "cache")
        rng = np.random.default_rng(0)
        sels = [np.sort(rng.choice(len(paths), b, replace=False)) for _ in range(8)]
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(args.threads)
        k = iter(range(10**9))
        one = rate(lambda: _gather(data.images, data.labels, sels[next(k) % 8], False, None, 1), b)
        many = rate(lambda: _gather(data.images, data.labels, sels[next(k) % 8], False, pool, args.threads), b)
        print(f"{'uint8 square (divrob): gather':34s} {side * side * 3:12,d}  "
              f"{one:8.0f} img/s (1 thread), {many:.0f} img/s ({args.threads} threads)")
        x, _ = _gather(data.images, data.labels, sels[0], dev.type == "cuda", None, 1)
        batch = Batch(0, x, None, slice(0, b), b, sels[0], data.sizes[sels[0]])
        gen = epoch_generator(0, 1)

        def make_inputs():
            model_inputs(batch, args.out_size, dev, augment=True, generator=gen)
            if dev.type == "cuda":
                torch.cuda.synchronize()

        print(f"{'  + crops/resize on ' + dev.type:34s} {'':12s}  {rate(make_inputs, b):8.0f} img/s "
              f"(copy to the device, RandomResizedCrop + flip, normalise)")
        if dev.type == "cuda":  # making input must never make the CPU wait for the GPU
            torch.cuda.set_sync_debug_mode("error")
            try:
                model_inputs(batch, args.out_size, dev, augment=True, generator=gen)
                print("  model input made without a CPU-GPU synchronisation")
            except RuntimeError as e:
                print(f"  !! model input synchronises the CPU with the GPU: {e}")
            finally:
                torch.cuda.set_sync_debug_mode("default")

    def pil_decode():
        for j in range(len(sq_jpegs)):
            Image.open(io.BytesIO(sq_jpegs[j])).convert("RGB").load()

    mean_sq = int(np.mean([len(j) for j in sq_jpegs]))
    print(f"{'JPEG q90 of the square: PIL':34s} {mean_sq:12,d}  {rate(pil_decode, len(sq_jpegs)):8.0f} img/s per core")
    if dev.type == "cuda":
        from torchvision.io import decode_jpeg

        datas = [torch.frombuffer(bytearray(sq_jpegs[j % len(sq_jpegs)]), dtype=torch.uint8) for j in range(b)]

        def nvjpeg():
            decode_jpeg(datas, device=dev)
            torch.cuda.synchronize()

        print(f"{'JPEG q90 of the square: nvJPEG':34s} {mean_sq:12,d}  {rate(nvjpeg, b):8.0f} img/s (GPU, batched)")
    rrc = T.RandomResizedCrop(args.out_size)

    def pil_reference():
        for j in range(len(orig_jpegs)):
            rrc(Image.open(io.BytesIO(orig_jpegs[j])).convert("RGB"))

    mean_orig = int(np.mean([len(j) for j in orig_jpegs]))
    print(f"{'original JPEG: PIL + RRC':34s} {mean_orig:12,d}  {rate(pil_reference, len(orig_jpegs)):8.0f} img/s per core")


if __name__ == "__main__":
    main()
