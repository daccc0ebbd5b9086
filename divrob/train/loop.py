"""The training loop: plain, top to bottom. One call trains one phase (pre-train or fine-tune)
of one run, resuming from the run's last checkpoint, evaluating and recording every epoch."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from divrob.errors import RunError
from divrob.progress import SILENT, Reporter
from divrob.runs.rundir import RunDir
from divrob.train.checkpoint import load_checkpoint, save_checkpoint
from divrob.train.config import PhaseConfig
from divrob.train.data import (
    DecodedImages, batch_order, iterate_batches, n_batches, random_resized_crop_flip, to_tensor,
)
from divrob.train.metrics import classification_metrics


@dataclass
class PhaseData:
    train: DecodedImages
    evals: dict[str, DecodedImages] = field(default_factory=dict)
    augment: bool = True  # RandomResizedCrop + flip (pre-training); WILDS fine-tunes without


def make_optimizer(model, cfg: PhaseConfig):
    import torch

    params = model.parameters()
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}")
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_step, gamma=cfg.lr_gamma) if cfg.lr_step else None
    return opt, sched


def evaluate(model, data: DecodedImages, device, batch_size: int = 256) -> dict[str, float]:
    import torch

    model.eval()
    order = batch_order(data.valid, seed=0, epoch=0, shuffle=False)
    preds, labels = [], []
    with torch.inference_mode():
        for _, x, y in iterate_batches(data, batch_size, order):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(to_tensor(x, device))
            preds.append(logits.argmax(1).cpu().numpy())
            labels.append(y)
    if not preds:
        return classification_metrics(np.array([]), np.array([]))
    return classification_metrics(np.concatenate(preds), np.concatenate(labels))


def train_phase(
    *,
    phase: str,
    model,
    cfg: PhaseConfig,
    data: PhaseData,
    rundir: RunDir,
    seed: int,
    device,
    reporter: Reporter = SILENT,
    label: str = "",
) -> None:
    import torch

    model.to(device).to(memory_format=torch.channels_last)
    opt, sched = make_optimizer(model, cfg)
    ckpt_path = rundir.checkpoints / "last.pt"
    start_epoch = 0
    ckpt = load_checkpoint(ckpt_path)
    if ckpt is not None and ckpt.get("phase") == phase:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        if sched is not None and ckpt.get("scheduler"):
            sched.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["rng_torch"])
        start_epoch = int(ckpt["epoch"])
        rundir.log(f"{phase}: resuming after epoch {start_epoch}")
    else:
        torch.manual_seed(seed)

    loss_fn = torch.nn.CrossEntropyLoss()
    n_train = int(data.train.valid.sum())
    if n_train == 0:
        raise RunError(f"{phase}: no readable training images")
    steps = n_batches(n_train, cfg.batch_size)
    task = reporter.task(f"{label} {phase}", total=cfg.epochs * steps)
    task.advance(start_epoch * steps)
    try:
        for epoch in range(start_epoch + 1, cfg.epochs + 1):
            model.train()
            t0 = time.perf_counter()
            gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
            order = batch_order(data.train.valid, seed, epoch, shuffle=True)
            loss_sum, correct, seen = 0.0, 0, 0
            for step, x_u8, y_np in iterate_batches(data.train, cfg.batch_size, order):
                x = to_tensor(x_u8, device)
                if data.augment:
                    x = random_resized_crop_flip(x, gen)
                y = torch.from_numpy(y_np).to(device)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                    logits = model(x)
                    loss = loss_fn(logits.float(), y)
                if not math.isfinite(loss.item()):
                    raise RunError(f"{phase}: loss became {loss.item()} at epoch {epoch} step {step}; "
                                   f"lower the learning rate (now {cfg.lr})")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += loss.item() * len(y_np)
                correct += int((logits.argmax(1) == y).sum())
                seen += len(y_np)
                task.advance()
            if sched is not None:
                sched.step()
            train_seconds = time.perf_counter() - t0
            metrics = {"train": {"loss": loss_sum / seen, "acc": correct / seen, "n": seen}}
            for split, split_data in data.evals.items():
                metrics[split] = evaluate(model, split_data, device)
            rundir.append_epoch(
                phase, epoch, metrics,
                images_per_s=seen / train_seconds,
                skipped_images=data.train.n_skipped + sum(d.n_skipped for d in data.evals.values()),
            )
            save_checkpoint(ckpt_path, {
                "phase": phase,
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict() if sched is not None else {},
                "rng_torch": torch.get_rng_state(),
            })
            rundir.log(f"{phase}: epoch {epoch}/{cfg.epochs} loss {loss_sum / seen:.4f} ({seen / train_seconds:.0f} img/s)")
    finally:
        task.close()
