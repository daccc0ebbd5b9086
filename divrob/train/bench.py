"""Training throughput: end-to-end through divrob's real data path vs model-bound.

End-to-end writes a synthetic JPEG dataset to a temporary directory (ImageNet-like 4:3 frames
for pre-training, camera-trap-like 16:9 frames for fine-tuning), decodes it once into the cache
and trains `train_phase` on it: loader thread, host→device copy, the phase's input
(RandomResizedCrop over the whole frame + flip for pre-training, the whole frame at image_size
for fine-tuning), its precision, channels_last; its second epoch is timed. Model-bound times the
same optimizer step on random tensors already on the device. Their ratio says how much the data
path costs (DESIGN.md's target: >= 0.9). Data path alone times the loader and the input making
without a model: the rate the data path could feed.
"""

from __future__ import annotations

import io
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from divrob.progress import SILENT, Reporter

PHASES = ("pretrain", "finetune")  # the CLI's choices (this module is imported without numpy or torch)


@dataclass(frozen=True)
class BenchResult:
    arch: str
    res: int
    phase: str
    batch: int
    steps: int
    device: str
    precision: str
    compiled: bool
    cache_side: int
    model_bound: float  # images/s
    end_to_end: float  # images/s
    data_path: float  # images/s of loader + input making alone
    decode_once: float  # images/s of the one-time JPEG decode into the cache

    @property
    def ratio(self) -> float:
        return self.end_to_end / self.model_bound

    def lines(self) -> list[str]:
        what = "RandomResizedCrop + flip" if self.phase == "pretrain" else "whole frame, no augmentation"
        return [
            f"{self.arch} @ {self.res} px, {self.phase} input ({what}, from {self.cache_side} px cached frames), "
            f"batch {self.batch}, {self.steps} timed steps, {self.precision}{', compiled' if self.compiled else ''}, "
            f"device {self.device}",
            f"model-bound   {self.model_bound:10.1f} img/s  (random tensors on the device)",
            f"end-to-end    {self.end_to_end:10.1f} img/s  (decode cache → loader → crops/resize → step)",
            f"ratio         {self.ratio:10.2f}",
            f"data path     {self.data_path:10.1f} img/s  (loader → crops/resize on the device, no model)",
            f"decode once   {self.decode_once:10.1f} img/s  (JPEG → uint8 cache, first use only)",
        ]


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def phase_config(phase: str, arch: str, res: int, batch: int, compile: bool, epochs: int = 2):
    from divrob.train.config import finetune_config, pretrain_config

    make = pretrain_config if phase == "pretrain" else finetune_config
    return make(arch, {"epochs": epochs, "batch_size": batch, "image_size": res, "compile": compile,
                       "checkpoint_minutes": 1e9})


def model_bound(arch: str, cfg, steps: int, device, warmup: int = 3) -> float:
    import torch

    from divrob.train.archs import build_model
    from divrob.train.loop import make_optimizer
    from divrob.train.precision import Precision

    torch.manual_seed(0)
    model = build_model(arch, 1000).to(device).to(memory_format=torch.channels_last).train()
    net = torch.compile(model) if cfg.compile and device.type == "cuda" else model
    opt, _ = make_optimizer(model, cfg)
    precision = Precision.resolve(cfg.precision, device)
    scaler = precision.grad_scaler(device)
    res, batch = cfg.image_size, cfg.batch_size
    x = torch.randn(batch, 3, res, res, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), device=device)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        with precision.autocast(device):
            loss = loss_fn(net(x).float(), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    for _ in range(warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return batch * steps / (time.perf_counter() - t0)


def write_synthetic_jpegs(root: Path, n: int, width: int, height: int, classes: int = 10, distinct: int = 64):
    """n JPEG files of width x height: smooth random colours with some texture, so they
    compress like photos rather than flat colour; their paths and (numpy) labels. Only
    `distinct` images are rendered (the rest repeat their bytes): every file is still decoded."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    rx = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    ry = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    paths, labels, bodies = [], rng.integers(0, classes, n), []
    for i in range(n):
        if i < distinct:
            c0, c1, c2 = rng.integers(0, 256, (3, 3)).astype(np.float32)
            img = c0 * (1 - rx) * (1 - ry) + c1 * rx + c2 * ry * (1 - rx)
            img += rng.normal(0, 12, (height, width, 1)).astype(np.float32)
            buf = io.BytesIO()
            Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
            bodies.append(buf.getvalue())
        p = root / f"{i:06d}.jpg"
        p.write_bytes(bodies[i % distinct])
        paths.append(p)
    return paths, labels


def frame_shape(phase: str, res: int) -> tuple[int, int]:
    """Synthetic frame (width, height): ImageNet's typical 500 x 375 at 224 px for pre-training,
    a 16:9 camera-trap frame twice the input width for fine-tuning."""
    if phase == "pretrain":
        return round(res * 500 / 224), round(res * 375 / 224)
    return 2 * res, round(2 * res * 9 / 16)


def data_path_rate(data, cfg, device) -> float:
    """Images/s of one epoch of loader + model input, without a model."""
    import torch

    from divrob.train.data import batch_order
    from divrob.train.inputs import model_inputs
    from divrob.train.loader import stream_batches

    def epoch(seed: int) -> int:
        gen = torch.Generator().manual_seed(seed)
        order = batch_order(data.valid, seed, 1, shuffle=True)
        n = 0
        for b in stream_batches(data, cfg.batch_size, order, pin=device.type == "cuda", threads=cfg.workers):
            model_inputs(b, cfg.image_size, device, augment=cfg.augment, generator=gen, crop_scale=cfg.crop_scale)
            n += len(b.labels)
        _sync(device)
        return n

    epoch(0)  # warm-up: page cache, allocator
    t0 = time.perf_counter()
    n = epoch(1)
    return n / (time.perf_counter() - t0)


def end_to_end(arch: str, cfg, steps: int, device, workdir: Path, phase: str,
               reporter: Reporter = SILENT) -> tuple[float, float, float, int]:
    """(training img/s of a warm epoch through train_phase, data path img/s, one-time decode
    img/s, cache side)."""
    import torch

    from divrob.train.archs import build_model
    from divrob.train.data import phase_images
    from divrob.train.loop import PhaseData, train_phase
    from divrob.train.recorder import MemoryRecorder

    n = cfg.batch_size * steps
    paths, labels = write_synthetic_jpegs(workdir / "images", n, *frame_shape(phase, cfg.image_size))
    t0 = time.perf_counter()
    train = phase_images(paths, labels, cfg, workdir / "cache", training=True, reporter=reporter,
                         description="decoding synthetic images")
    decode_rate = n / (time.perf_counter() - t0)
    data_rate = data_path_rate(train, cfg, device)
    rec = MemoryRecorder(workdir / "checkpoints")
    torch.manual_seed(0)
    model = build_model(arch, 1000)  # the head model_bound() times
    # epoch 1 warms up (allocator, cudnn autotuning, compilation); epoch 2 is the figure
    train_phase(phase=phase, model=model, cfg=cfg, data=PhaseData(train=train), recorder=rec, seed=0,
                device=device, reporter=reporter, label="bench")
    return float(rec.epochs[-1]["images_per_s"]), data_rate, decode_rate, train.side


def bench_train(arch: str, res: int, batch: int | None = None, steps: int | None = None, device: str = "auto",
                compile: bool = False, reporter: Reporter = SILENT, phase: str = "pretrain") -> BenchResult:
    from divrob.archs import ARCHS, image_size_problem
    from divrob.devices import resolve_device
    from divrob.errors import RunError
    from divrob.train.precision import Precision

    if arch not in ARCHS:
        raise RunError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHS)}")
    if phase not in PHASES:
        raise RunError(f"--phase {phase!r}: choose from {', '.join(PHASES)}")
    problem = image_size_problem(arch, res)
    if problem:
        raise RunError(f"--res: {problem}")
    dev = resolve_device(device)
    on_cuda = dev.type == "cuda"
    if on_cuda:
        import torch

        torch.backends.cudnn.benchmark = True
    batch = batch or ((256 if res < 448 else 64) if on_cuda else 16)
    steps = steps or (30 if on_cuda else 5)
    cfg = phase_config(phase, arch, res, batch, compile)
    mb = model_bound(arch, cfg, steps, dev)
    with tempfile.TemporaryDirectory(prefix="divrob-bench-") as tmp:
        e2e, data_rate, dec, side = end_to_end(arch, cfg, steps, dev, Path(tmp), phase, reporter)
    name = str(dev)
    if on_cuda:
        import torch

        name += f" ({torch.cuda.get_device_name(dev)})"
    return BenchResult(arch, res, phase, batch, steps, name, Precision.resolve(cfg.precision, dev).name,
                       compile and on_cuda, side, mb, e2e, data_rate, dec)
