"""Files shipped beside the package in the repository: recipes/ and data_manifests/."""

from __future__ import annotations

from pathlib import Path

from divrob.errors import DivrobError

REPO_ROOT = Path(__file__).resolve().parent.parent


def bundled(relative: str) -> Path:
    """A file under the repository root (recipes/..., data_manifests/...)."""
    path = REPO_ROOT / relative
    if not path.exists():
        raise DivrobError(
            f"{relative} is not at {path}: divrob's bundled recipes and class metadata live in its "
            "source checkout; install it from a clone with `pip install -e .`"
        )
    return path
