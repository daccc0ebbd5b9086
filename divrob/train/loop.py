"""The training loop: plain, top to bottom. One call trains one phase (pre-train or fine-tune)
of one run, resuming from the run's last checkpoint (even mid-epoch), evaluating and recording
every epoch. The same code runs single-process and as one rank of a DDP run (`dist`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from divrob.errors import RunError
from divrob.progress import SILENT, Reporter
from divrob.train import interrupt
from divrob.train.archs import freeze_backbone_stats, set_linear_probe
from divrob.train.checkpoint import load_checkpoint, save_checkpoint
from divrob.train.config import PhaseConfig
from divrob.train.crops import epoch_generator
from divrob.train.data import DecodedImages, batch_order
from divrob.train.distributed import Dist
from divrob.train.inputs import model_inputs
from divrob.train.loader import stream_batches, steps_per_epoch
from divrob.train.precision import Precision
from divrob.train.recorder import PhaseRecorder
from divrob.train.metrics import classification_metrics
from divrob.train.state import check_order, make_checkpoint, restore_checkpoint, restore_rng

STATUS_EVERY_S = 5.0  # status.json is rewritten at most this often while training


@dataclass
class PhaseData:
    train: DecodedImages  # at cfg.train_decode_size (train.data.phase_images)
    evals: dict[str, DecodedImages] = field(default_factory=dict)  # at cfg.image_size
    # per eval split, the downstream task's own metric: (predictions, labels, their rows in the
    # split) -> {"score": ..., ...}, added to the generic metrics
    scorers: dict[str, Callable] = field(default_factory=dict)


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


def oom_error(phase: str, cfg: PhaseConfig, what: str = "training") -> RunError:
    half = max(1, cfg.batch_size // 2)
    return RunError(
        f"{phase}: out of GPU memory while {what} at batch_size {cfg.batch_size}, {cfg.image_size} px; "
        f"set batch_size = {half} under [study] {phase} in the recipe (a new batch size is a new run)"
    )


def evaluate(model, data: DecodedImages, device, image_size: int, batch_size: int = 256, dist: Dist = Dist(),
             precision: Precision | None = None, score: Callable | None = None) -> dict[str, float]:
    """WILDS metrics on the whole split (each whole frame at image_size square); in a DDP run
    each rank predicts a slice, rank 0 scores."""
    import torch

    precision = precision or Precision("fp32")
    model.train(False)  # evaluation mode: BatchNorm running stats, no dropout
    order = batch_order(data.valid, seed=0, epoch=0, shuffle=False)
    order = order[dist.shard(len(order))]
    preds, labels = [], []
    with torch.inference_mode():
        for b in stream_batches(data, batch_size, order, pin=device.type == "cuda"):
            x = model_inputs(b, image_size, device)
            with precision.autocast(device):
                logits = model(x)
            preds.append(logits.argmax(1).cpu().numpy())
            labels.append(b.labels.numpy())
    empty = np.array([], dtype=np.int64)
    preds = dist.gather_arrays(np.concatenate(preds) if preds else empty)
    labels = dist.gather_arrays(np.concatenate(labels) if labels else empty)
    metrics = classification_metrics(preds, labels)
    if score is not None and len(labels):
        metrics.update(score(preds, labels, dist.gather_arrays(order)))  # rows: which images were scored
    return metrics


def _wrap(model, cfg: PhaseConfig, device, dist: Dist, recorder: PhaseRecorder):
    """The module the steps call: DDP across ranks, then torch.compile if asked (CUDA only)."""
    import torch

    net = model
    if dist.active:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        if device.type == "cuda":
            net = torch.compile(net)
        else:
            recorder.log("compile: ignored on CPU (it only pays off on CUDA)")
    return net


def _check_finite(pending, phase: str, cfg: PhaseConfig) -> None:
    """Stop on a NaN/inf loss. Checked one step late, so the CPU never waits for the GPU to
    finish the step it just queued."""
    if pending is None:
        return
    loss, epoch, step = pending
    value = float(loss.item())
    if not np.isfinite(value):
        raise RunError(f"{phase}: loss became {value} at epoch {epoch} step {step}; "
                       f"lower the learning rate (now {cfg.lr})")


def train_phase(
    *,
    phase: str,
    model,
    cfg: PhaseConfig,
    data: PhaseData,
    recorder: PhaseRecorder,
    seed: int,
    device,
    reporter: Reporter = SILENT,
    label: str = "",
    dist: Dist = Dist(),
) -> None:
    import torch

    model.to(device).to(memory_format=torch.channels_last)
    opt, sched = make_optimizer(model, cfg)
    precision = Precision.resolve(cfg.precision, device)
    scaler = precision.grad_scaler(device)
    ckpt_path = recorder.checkpoints / "last.pt"
    resume = restore_checkpoint(load_checkpoint(ckpt_path), phase, model, opt, sched, scaler)
    if resume is None:
        torch.manual_seed(seed)
        start_epoch, start_step = 1, 0
    else:
        start_epoch, start_step = resume.epoch, resume.step
        if start_step == 0 and resume.rng:
            restore_rng(resume.rng, None)
        recorder.log(f"{phase}: resuming at epoch {start_epoch} step {start_step}")
    recorder.log(f"{phase}: precision {precision.describe(cfg.precision)}, input {cfg.image_size} px "
                 f"from {data.train.side} px cached frames, "
                 + (f"RandomResizedCrop(scale {cfg.crop_scale:g}-1) + flip" if cfg.augment else "whole frame, no augmentation"))

    n_train = int(data.train.valid.sum())
    if n_train == 0:
        raise RunError(f"{phase}: no readable training images")
    steps = steps_per_epoch(n_train, cfg.batch_size, dist.world)
    skipped = data.train.n_skipped + sum(d.n_skipped for d in data.evals.values())
    net, linear = None, None  # wrapped per epoch: DDP hooks only the parameters that train then
    loss_fn = torch.nn.CrossEntropyLoss()
    on_cuda = device.type == "cuda"
    task = reporter.task(f"{label} {phase}", total=cfg.epochs * steps)
    task.advance((start_epoch - 1) * steps + start_step)
    last_ckpt = last_status = time.monotonic()
    status_images = 0

    def checkpoint(epoch_done: int, step: int, sums, seconds: float, order, gen) -> None:
        if dist.is_main:
            save_checkpoint(ckpt_path, make_checkpoint(
                phase=phase, epoch_done=epoch_done, step=step, model=model, opt=opt, sched=sched,
                sums=sums, train_seconds=seconds, order=order, augment_gen=gen,
                batch_size=cfg.batch_size, world=dist.world, scaler=scaler))

    try:
        for epoch in range(start_epoch, cfg.epochs + 1):
            if cfg.linear_at(epoch) != linear:
                linear = cfg.linear_at(epoch)
                if cfg.mode != "full":
                    set_linear_probe(model, linear)
                    recorder.log(f"{phase}: epoch {epoch} on: " + (
                        "linear probe (backbone frozen)" if linear else "every layer trains"))
                net = _wrap(model, cfg, device, dist, recorder)
            model.train()
            if linear:
                freeze_backbone_stats(model)
            order = batch_order(data.train.valid, seed, epoch, shuffle=True)
            gen = epoch_generator(seed, epoch)
            # [loss sum, correct, seen] on the device: adding to them never syncs with the CPU
            sums = torch.zeros(3, dtype=torch.float64, device=device)
            seconds_before = 0.0
            first_step = start_step if epoch == start_epoch else 0
            if first_step:
                check_order(resume, order, phase)
                restore_rng(resume.rng, gen)
                if dist.is_main:  # the others' partial sums were folded into rank 0's checkpoint
                    sums += torch.tensor(resume.sums, dtype=torch.float64, device=device)
                seconds_before = resume.train_seconds
            t0 = time.perf_counter()
            pending = None
            for b in stream_batches(data.train, cfg.batch_size, order, first_step, dist, pin=on_cuda,
                                    threads=cfg.workers):
                # crops are drawn for the global batch on every rank, each keeps its rows
                x = model_inputs(b, cfg.image_size, device, augment=cfg.augment, generator=gen,
                                 crop_scale=cfg.crop_scale)
                y = b.labels.to(device, non_blocking=True)
                try:
                    with precision.autocast(device):
                        logits = net(x)
                        loss = loss_fn(logits.float(), y)
                    opt.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()  # fp16: loss scaling; otherwise a pass-through
                    scaler.step(opt)
                    scaler.update()
                except torch.cuda.OutOfMemoryError:
                    raise oom_error(phase, cfg) from None
                _check_finite(pending, phase, cfg)
                pending = (loss.detach(), epoch, b.step)
                n = len(b.labels)
                # in place, with a Python number for the count: a tensor made from it on the CPU
                # would be copied to the GPU and make the CPU wait for the step it just queued
                sums[0] += loss.detach().double() * n
                sums[1] += (logits.argmax(1) == y).sum()
                sums[2] += n
                task.advance()
                status_images += n * dist.world
                now = time.monotonic()
                stop = interrupt.stop_requested() is not None  # SLURM's time-limit warning, preemption
                due = stop or cfg.checkpoint_minutes <= 0 or now - last_ckpt >= cfg.checkpoint_minutes * 60
                if dist.any(due, device) and b.step + 1 < steps:  # the epoch-end one follows anyway
                    _check_finite(pending, phase, cfg)
                    total = dist.all_reduce_sum(sums.clone())
                    checkpoint(epoch - 1, b.step + 1, total.tolist(),
                               seconds_before + time.perf_counter() - t0, order, gen)
                    if not dist.is_main:  # rank 0 now carries everyone's sums
                        sums.zero_()
                    elif dist.active:
                        sums.copy_(total)
                    last_ckpt = now
                    interrupt.stop_here(phase, epoch, b.step + 1, lambda flag: dist.any(flag, device))
                if dist.is_main and now - last_status >= STATUS_EVERY_S:
                    recorder.set_progress(phase=phase, epoch=epoch, epochs=cfg.epochs, step=b.step + 1,
                                        steps_per_epoch=steps, images_per_s=round(status_images / (now - last_status), 1))
                    last_status, status_images = now, 0
            _check_finite(pending, phase, cfg)
            train_seconds = seconds_before + time.perf_counter() - t0
            if sched is not None:
                sched.step()
            loss_sum, correct, seen = dist.all_reduce_sum(sums).tolist()
            dist.sync_buffers(model)
            metrics = {"train": {"loss": loss_sum / seen, "acc": correct / seen, "n": int(seen)}}
            for split, split_data in data.evals.items():
                try:
                    metrics[split] = evaluate(model, split_data, device, cfg.image_size, dist=dist,
                                              precision=precision, score=data.scorers.get(split))
                except torch.cuda.OutOfMemoryError:
                    raise oom_error(phase, cfg, f"evaluating {split}") from None
            recorder.append_epoch(phase, epoch, metrics, images_per_s=seen / train_seconds, skipped_images=skipped)
            checkpoint(epoch, 0, [0.0, 0.0, 0.0], 0.0, None, None)
            last_ckpt = time.monotonic()
            if dist.is_main:
                recorder.set_progress(phase=phase, epoch=epoch, epochs=cfg.epochs, step=steps,
                                    steps_per_epoch=steps, images_per_s=round(seen / train_seconds, 1))
            recorder.log(f"{phase}: epoch {epoch}/{cfg.epochs} loss {loss_sum / seen:.4f} ({seen / train_seconds:.0f} img/s)")
            if epoch < cfg.epochs:  # a request that came during the last step or the evaluation
                interrupt.stop_here(phase, epoch + 1, 0, lambda flag: dist.any(flag, device))
    finally:
        task.close()
