"""Batches from the decode cache to the device, prepared one step ahead in a background thread.

The thread gathers each batch's rows from the memory-mapped uint8 cache straight into a (pinned,
on CUDA) tensor, so the host-to-device copy is asynchronous and moves bytes, not floats; crops,
resizing and normalisation then run on the device (divrob.train.inputs). The thread's work is
a numpy copy that releases the GIL, so it overlaps with the model's step on CPU and GPU alike.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from divrob.train.data import DecodedImages
from divrob.train.distributed import Dist

_DONE = object()


@dataclass
class Batch:
    step: int
    images: object  # torch.uint8 (b, C, C, 3): this rank's rows of cached frames, pinned when feeding CUDA
    labels: object  # torch.int64 (b,)
    rows: slice  # this rank's rows within the global batch
    global_size: int
    indices: np.ndarray  # (global_size,) the dataset rows of the global batch, in batch order
    sizes: np.ndarray  # (global_size, 2) their original (width, height)


def steps_per_epoch(n: int, batch_size: int, world: int = 1) -> int:
    """Global steps in an epoch; a last batch smaller than the number of ranks is dropped, so
    that every rank has at least one image in every step."""
    full, rem = divmod(n, batch_size)
    return full + (1 if rem and rem >= world else 0)


def _gather(images: np.ndarray, labels: np.ndarray, sel: np.ndarray, pin: bool, pool: ThreadPoolExecutor | None,
            threads: int):
    """One copy, memmap → (pinned) tensor; split over the pool's threads, since one thread's
    memory copy (~1.5-3k frames/s of 448 px) is slower than a GPU trains (DESIGN.md)."""
    import torch

    x = torch.empty((len(sel), *images.shape[1:]), dtype=torch.uint8, pin_memory=pin)
    out = x.numpy()
    if pool is None or len(sel) < 2:
        np.take(images, sel, axis=0, out=out)
    else:
        bounds = np.linspace(0, len(sel), threads + 1).astype(int)
        parts = [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        list(pool.map(lambda ab: np.take(images, sel[ab[0]:ab[1]], axis=0, out=out[ab[0]:ab[1]]), parts))
    y = torch.from_numpy(np.ascontiguousarray(labels[sel]))
    return x, (y.pin_memory() if pin else y)


def stream_batches(
    data: DecodedImages,
    batch_size: int,
    order: np.ndarray,
    start_step: int = 0,
    dist: Dist = Dist(),
    pin: bool = False,
    depth: int = 3,
    threads: int = 1,
) -> Iterator[Batch]:
    """The batches of `order` from `start_step` on; in a DDP run, this rank's share of each.
    `threads` copy each batch's rows together (a speed setting: the batches are the same)."""
    n_steps = steps_per_epoch(len(order), batch_size, dist.world)
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():  # a consumer that stopped early must not leave us blocked
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for step in range(start_step, n_steps):
                # sorted rows read the memmap front to back; the batch's content is unchanged
                sel = np.sort(order[step * batch_size:(step + 1) * batch_size])
                rows = dist.shard(len(sel))
                x, y = _gather(data.images, data.labels, sel[rows], pin, pool, threads)
                if not put(Batch(step, x, y, rows, len(sel), sel, data.sizes[sel])):
                    return
            put(_DONE)
        except BaseException as e:  # hand the error to the consumer instead of dying silently
            put(e)

    pool = ThreadPoolExecutor(threads, thread_name_prefix="divrob-gather") if threads > 1 else None
    thread = threading.Thread(target=produce, name="divrob-batches", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)
        if pool is not None:
            pool.shutdown(wait=False)
