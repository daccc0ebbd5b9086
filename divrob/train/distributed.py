"""One run across several processes (DistributedDataParallel), or the single-process default.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; `Dist.from_env()` reads them. Every rank runs the
same loop on its own slice of each global batch (the recipe's batch_size is the global batch, so
a run's hyper-parameters and its id do not depend on how many GPUs it ran on). Rank 0 alone
writes the run directory.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterator

import numpy as np


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @classmethod
    def from_env(cls) -> "Dist":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        return cls(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))

    def init(self, device_type: str) -> None:
        """Join the process group (NCCL on CUDA, gloo on CPU); a no-op for a single process."""
        import torch.distributed as dist

        if not self.active or dist.is_initialized():
            return
        # Rank 0 evaluates and writes checkpoints while the others wait: allow for long pauses.
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo", timeout=timedelta(hours=2))

    def shutdown(self) -> None:
        import torch.distributed as dist

        if self.active and dist.is_initialized():
            dist.destroy_process_group()

    def shard(self, n: int) -> slice:
        """This rank's contiguous rows of an n-row global batch (np.array_split's split)."""
        bounds = _bounds(n, self.world)
        return slice(bounds[self.rank], bounds[self.rank + 1])

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def all_reduce_sum(self, t):
        if self.active:
            import torch.distributed as dist

            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def any(self, flag: bool, device) -> bool:
        """True on every rank if `flag` is true on any (one small all-reduce)."""
        if not self.active:
            return flag
        import torch

        t = torch.tensor([1.0 if flag else 0.0], device=device)
        return bool(self.all_reduce_sum(t).item() > 0)

    def gather_arrays(self, arr: np.ndarray) -> np.ndarray:
        """Concatenate every rank's array in rank order (for eval predictions)."""
        if not self.active:
            return arr
        import torch.distributed as dist

        parts: list = [None] * self.world
        dist.all_gather_object(parts, arr)
        return np.concatenate(parts)

    def sync_buffers(self, model) -> None:
        """Copy rank 0's BatchNorm running statistics to every rank, so all ranks evaluate the
        model rank 0 checkpoints (each rank's last forward updated its own statistics)."""
        if not self.active:
            return
        import torch.distributed as dist

        for b in model.buffers():
            dist.broadcast(b, 0)

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (e.g. builds the decode cache), then the others."""
        if self.active and not self.is_main:
            self.barrier()
        yield
        if self.active and self.is_main:
            self.barrier()


def _bounds(n: int, parts: int) -> list[int]:
    base, extra = divmod(n, parts)
    out = [0]
    for i in range(parts):
        out.append(out[-1] + base + (1 if i < extra else 0))
    return out
