"""Which study a command reads, and the results table of one: light code (no numpy, no pandas),
so `divrob results` on a study of 100,000 runs answers in well under a second."""

from __future__ import annotations

from pathlib import Path

from divrob.errors import DivrobError
from divrob.store.db import read_connection
from divrob.store.queries import last_epoch_rows, studies
from divrob.workspace import Workspace


def resolve_study(ws: Workspace, study_or_recipe: str) -> str:
    """A study name, given either the name or the path of its recipe."""
    p = Path(study_or_recipe)
    if p.suffix == ".toml" and p.exists():
        from divrob.recipes.load import load_recipe

        return load_recipe(p).study.name
    return study_or_recipe


def only_study(ws: Workspace) -> str:
    """The study of a workspace that holds exactly one; otherwise say which to choose."""
    with read_connection(ws.db_path) as con:
        known = studies(con)
    if len(known) == 1:
        return known[0]
    if not known:
        raise DivrobError(f"{ws.db_path} has no results yet; run a study first (`divrob study run RECIPE`)")
    raise DivrobError(f"this workspace holds several studies; choose one with --study: {', '.join(known)}")


def check_study(con, ws: Workspace, study: str | None) -> None:
    """Raise, naming the studies there are, when `study` is not in the store (None: all)."""
    if study is None:
        return
    known = studies(con)
    if study not in known:
        hint = f"studies in this workspace: {', '.join(known)}" if known else "this workspace has no results yet"
        raise DivrobError(f"no study named {study!r} in {ws.db_path}; {hint}")


def results_table(ws: Workspace, study: str | None, limit: int) -> tuple[str, list[tuple], int]:
    """`store.queries.last_epoch_rows` of a study (None: every study)."""
    with read_connection(ws.db_path) as con:
        check_study(con, ws, study)
        return last_epoch_rows(con, study, limit)
