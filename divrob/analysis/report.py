"""From the store to what a user reads: a study's points, its trends, a per-run summary."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from divrob.errors import DivrobError
from divrob.store.db import read_connection
from divrob.store.queries import results, studies
from divrob.workspace import Workspace


def resolve_study(ws: Workspace, study_or_recipe: str) -> str:
    """A study name, given either the name or the path of its recipe."""
    p = Path(study_or_recipe)
    if p.suffix == ".toml" and p.exists():
        from divrob.recipes.load import load_recipe

        return load_recipe(p).study.name
    return study_or_recipe


def study_points(ws: Workspace, study: str | None) -> pd.DataFrame:
    """One row per fine-tuning epoch (ID and OOD macro-F1) of a study, or of all studies."""
    with read_connection(ws.db_path) as con:
        df = results(con, study)
        known = studies(con)
    if study is not None and study not in known:
        hint = f"studies in this workspace: {', '.join(known)}" if known else "this workspace has no results yet"
        raise DivrobError(f"no study named {study!r} in {ws.db_path}; {hint}")
    return df


def run_summary(points: pd.DataFrame) -> pd.DataFrame:
    """Per run: epochs done and the ID / OOD macro-F1 at its last epoch."""
    if points.empty:
        return points
    last = points.sort_values("epoch").groupby("run_id", as_index=False).tail(1)
    out = last[["distribution", "arch", "seed", "run_id", "epoch", "id_f1", "ood_f1"]].copy()
    return out.sort_values(["distribution", "arch", "seed"]).reset_index(drop=True)


def study_trends(points: pd.DataFrame, group_by: str = "distribution", transform: str = "probit"):
    """Fit one OOD-on-ID trend per group over every fine-tuning epoch of every run."""
    from divrob.analysis.trends import fit_trends

    if group_by not in points.columns:
        raise DivrobError(f"cannot group by {group_by!r}; choose from {', '.join(points.columns)}")
    df = points.dropna(subset=["id_f1", "ood_f1"]).copy()
    df["group"] = df[group_by].astype(str)
    return df, fit_trends(df, group_col="group", id_col="id_f1", ood_col="ood_f1", transform=transform)
