"""Checkpoints are plain dicts, written atomically and loaded with weights_only=True."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from divrob.fileio import atomic_path


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    import torch

    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)
