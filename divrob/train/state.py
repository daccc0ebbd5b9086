"""What a training checkpoint holds, and how a resumed phase picks up exactly where it stopped.

A checkpoint is written at every epoch end and every `checkpoint_minutes` inside an epoch:
model, optimizer, scheduler, the fp16 loss scaler (empty for bf16 and fp32, which need none),
the completed epoch and the steps done in the next, every RNG state (torch, CUDA, numpy, python
and the epoch's augmentation generator), the partial training sums of the epoch, and a digest
of the epoch's sample order. The order is a pure function of (seed, epoch); the digest proves
it on resume, so a changed dataset fails loudly instead of silently training on other batches.

Everything is stored as tensors, numbers, strings, lists and dicts so that
`torch.load(weights_only=True)` reads it.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from divrob.errors import RunError

FORMAT = 2


def order_digest(order: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(order, dtype=np.int64).tobytes()).hexdigest()[:16]


def rng_states(augment_gen) -> dict[str, Any]:
    import torch

    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": list(_py_state()),
        "augment": augment_gen.get_state() if augment_gen is not None else None,
    }


def _py_state():
    version, internal, gauss = random.getstate()
    return version, list(internal), gauss


def restore_rng(states: dict[str, Any], augment_gen) -> None:
    import torch

    torch.set_rng_state(states["torch"])
    if states.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    n = states.get("numpy")
    if n:
        np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = states.get("python")
    if p:
        random.setstate((p[0], tuple(p[1]), p[2]))
    if augment_gen is not None and states.get("augment") is not None:
        augment_gen.set_state(states["augment"])


@dataclass
class ResumePoint:
    """Where a phase restarts: `epoch` is in progress with `step` steps already done."""

    epoch: int
    step: int
    sums: list[float]  # loss sum, correct, seen: this epoch's training totals so far (all ranks)
    train_seconds: float
    rng: dict[str, Any] | None
    order_sha: str | None


def make_checkpoint(*, phase: str, epoch_done: int, step: int, model, opt, sched, sums: list[float],
                    train_seconds: float, order: np.ndarray | None, augment_gen, batch_size: int,
                    world: int, scaler=None) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "phase": phase,
        "epoch": epoch_done,  # completed epochs
        "step": step,  # steps done in epoch `epoch_done + 1`; 0 at an epoch boundary
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict() if sched is not None else {},
        "scaler": scaler.state_dict() if scaler is not None else {},  # {} when not enabled
        "rng": rng_states(augment_gen),
        "train_sums": [float(v) for v in sums],
        "train_seconds": float(train_seconds),
        "data": {"order_sha": order_digest(order) if order is not None else None,
                 "batch_size": batch_size, "world": world},
    }


def restore_checkpoint(ckpt: dict[str, Any] | None, phase: str, model, opt, sched, scaler=None) -> ResumePoint | None:
    """Load a phase's checkpoint into model/optimizer/scheduler/scaler; None if there is none."""
    if ckpt is None or ckpt.get("phase") != phase:
        return None
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    if sched is not None and ckpt.get("scheduler"):
        sched.load_state_dict(ckpt["scheduler"])
    if scaler is not None and scaler.is_enabled() and ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    step = int(ckpt.get("step", 0))
    rng = ckpt.get("rng")
    if rng is None and "rng_torch" in ckpt:  # format 1: epoch-end checkpoints, torch RNG only
        rng = {"torch": ckpt["rng_torch"]}
    data = ckpt.get("data", {})
    return ResumePoint(
        epoch=int(ckpt["epoch"]) + 1, step=step, sums=list(ckpt.get("train_sums", [0.0, 0.0, 0.0])),
        train_seconds=float(ckpt.get("train_seconds", 0.0)), rng=rng,
        order_sha=data.get("order_sha") if step else None,
    )


def check_order(resume: ResumePoint, order: np.ndarray, phase: str) -> None:
    if resume.order_sha is not None and resume.order_sha != order_digest(order):
        raise RunError(
            f"{phase}: the training images changed since the checkpoint of epoch {resume.epoch} "
            f"(different sample order); delete the run directory to start it over"
        )
