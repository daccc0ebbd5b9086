"""Training throughput: end-to-end through divrob's real data path vs model-bound.

End-to-end writes a synthetic JPEG dataset to a temporary directory, decodes it once into the
uint8 cache, and trains `train_phase` on it (loader thread, host→device copy, normalisation,
RandomResizedCrop + flip on the device, bf16 autocast, channels_last); its second epoch is timed.
Model-bound times the same optimizer step on random tensors already on the device. Their ratio
says how much the data path costs (DESIGN.md's target: >= 0.9).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from divrob.progress import SILENT, Reporter


@dataclass(frozen=True)
class BenchResult:
    arch: str
    res: int
    batch: int
    steps: int
    device: str
    model_bound: float  # images/s
    end_to_end: float  # images/s
    decode_once: float  # images/s of the one-time JPEG decode into the cache

    @property
    def ratio(self) -> float:
        return self.end_to_end / self.model_bound

    def lines(self) -> list[str]:
        return [
            f"{self.arch} @ {self.res} px, batch {self.batch}, {self.steps} timed steps, device {self.device}",
            f"model-bound   {self.model_bound:10.1f} img/s  (random tensors on the device)",
            f"end-to-end    {self.end_to_end:10.1f} img/s  (decode cache → loader → augment → step)",
            f"ratio         {self.ratio:10.2f}",
            f"decode once   {self.decode_once:10.1f} img/s  (JPEG → uint8 cache, first use only)",
        ]


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_bound(arch: str, res: int, batch: int, steps: int, device, warmup: int = 3, compile: bool = False) -> float:
    import torch

    from divrob.train.archs import build_model

    torch.manual_seed(0)
    model = build_model(arch, 1000).to(device).to(memory_format=torch.channels_last).train()
    net = torch.compile(model) if compile and device.type == "cuda" else model
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, res, res, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), device=device)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = loss_fn(net(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return batch * steps / (time.perf_counter() - t0)


def write_synthetic_jpegs(root: Path, n: int, res: int, classes: int = 10) -> tuple[list[Path], np.ndarray]:
    """n smooth random-colour JPEGs a little larger than `res` (so the cache resizes them)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    side = int(res * 1.15)
    ramp = np.linspace(0, 1, side, dtype=np.float32)
    paths, labels = [], rng.integers(0, classes, n)
    for i in range(n):
        c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        img = (c0[None, None] * (1 - ramp[None, :, None]) + c1[None, None] * ramp[:, None, None]).astype(np.uint8)
        p = root / f"{i:06d}.jpg"
        Image.fromarray(img).save(p, quality=90)
        paths.append(p)
    return paths, labels


def end_to_end(arch: str, res: int, batch: int, steps: int, device, workdir: Path, compile: bool = False,
               reporter: Reporter = SILENT) -> tuple[float, float]:
    """(training img/s of a warm epoch through train_phase, one-time decode img/s)."""
    import torch

    from divrob.train.archs import build_model
    from divrob.train.config import pretrain_config
    from divrob.train.data import decode_images
    from divrob.train.loop import PhaseData, train_phase
    from divrob.train.recorder import MemoryRecorder

    n = batch * steps
    paths, labels = write_synthetic_jpegs(workdir / "images", n, res)
    t0 = time.perf_counter()
    train = decode_images(paths, labels, res, workdir / "cache", reporter, "decoding synthetic images")
    decode_rate = n / (time.perf_counter() - t0)
    cfg = pretrain_config(arch, {"epochs": 2, "batch_size": batch, "image_size": res, "compile": compile,
                                 "checkpoint_minutes": 1e9})
    rec = MemoryRecorder(workdir / "checkpoints")
    torch.manual_seed(0)
    model = build_model(arch, 1000)  # the head model_bound() times
    # epoch 1 warms up (allocator, cudnn autotuning, compilation); epoch 2 is the figure
    train_phase(phase="pretrain", model=model, cfg=cfg, data=PhaseData(train=train, augment=True),
                recorder=rec, seed=0, device=device, reporter=reporter, label="bench")
    return float(rec.epochs[-1]["images_per_s"]), decode_rate


def bench_train(arch: str, res: int, batch: int | None = None, steps: int | None = None, device: str = "auto",
                compile: bool = False, reporter: Reporter = SILENT) -> BenchResult:
    from divrob.errors import RunError
    from divrob.archs import ARCHS, image_size_problem

    if arch not in ARCHS:
        raise RunError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHS)}")
    problem = image_size_problem(arch, res)
    if problem:
        raise RunError(f"--res: {problem}")
    from divrob.devices import resolve_device

    dev = resolve_device(device)
    on_cuda = dev.type == "cuda"
    if on_cuda:
        import torch

        torch.backends.cudnn.benchmark = True
    batch = batch or (256 if on_cuda else 16)
    steps = steps or (30 if on_cuda else 5)
    mb = model_bound(arch, res, batch, steps, dev, compile=compile)
    with tempfile.TemporaryDirectory(prefix="divrob-bench-") as tmp:
        e2e, dec = end_to_end(arch, res, batch, steps, dev, Path(tmp), compile=compile, reporter=reporter)
    name = str(dev)
    if on_cuda:
        import torch

        name += f" ({torch.cuda.get_device_name(dev)})"
    return BenchResult(arch, res, batch, steps, name, mb, e2e, dec)
