"""Generated datasets on disk (demo-shapes, camtrap-sim, FractalDB, diffusion images): a directory
is either the exact dataset its parameters file describes, or not touched."""

from __future__ import annotations

import json
from pathlib import Path

from divrob.errors import SourceError


def check_existing(root: Path, params_file: str, params: dict, what: str) -> bool:
    """True if `root` already holds this exact generated dataset; raise if it holds another.

    Shared by the offline generators: an existing directory is never regenerated or
    overwritten behind the user's back, because atomic_dir would replace it wholesale.
    """
    meta = root / params_file
    if meta.is_file():
        try:
            old = json.loads(meta.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise SourceError(f"{meta} is unreadable ({e}); delete {root} and generate again") from e
        # Extra keys on disk (e.g. class names) are descriptive, not parameters.
        old = {k: old.get(k) if isinstance(old, dict) else None for k in params}
        if old == params:
            return False
        keys = sorted(params)
        diffs = ", ".join(f"{k}: on disk {old[k]!r}, asked {params[k]!r}" for k in keys if old[k] != params[k])
        raise SourceError(
            f"{root} already holds a {what} dataset generated with other parameters ({diffs}); "
            f"delete the directory or ask for the parameters it was made with"
        )
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise SourceError(
            f"{root} exists but is not a {what} dataset (no {params_file}); "
            f"refusing to overwrite it: choose an empty or new directory"
        )
    return True
