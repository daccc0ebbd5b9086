"""Checkpoints are plain dicts, written atomically and loaded with weights_only=True."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from divrob.errors import RunError
from divrob.fileio import atomic_path


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint at `path`, None if there is none. One that cannot be read (empty, cut short,
    not a divrob checkpoint) is a RunError naming the file and what to do; it never passes on
    PyTorch's advice to load it with weights_only=False (that would run code from the file)."""
    import pickle
    import zipfile

    import torch

    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (EOFError, RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise RunError(f"checkpoint {path} is unreadable ({_why(e, path)}); delete the run directory "
                       f"{path.parent.parent} to train the run again from scratch") from None
    if not isinstance(state, dict):
        raise RunError(f"checkpoint {path} is unreadable (it holds a {type(state).__name__}, not a divrob "
                       f"checkpoint); delete the run directory {path.parent.parent} to train the run again")
    return state


def _why(e: BaseException, path: Path) -> str:
    if isinstance(e, EOFError) or (path.stat().st_size == 0):
        return "it is empty or cut short"
    text = str(e)
    if "weights_only" in text or "Unsupported global" in text or type(e).__name__ == "UnpicklingError":
        return "it holds objects other than tensors and plain values: not a checkpoint divrob wrote"
    first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
    return f"{type(e).__name__}: {first[:200]}"
