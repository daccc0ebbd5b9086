"""From the store to what a user reads: a study's points, its trends, a per-run summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from divrob.errors import DivrobError
from divrob.store.db import read_connection
from divrob.store.queries import results, studies
from divrob.workspace import Workspace

# The `axis` value of a distribution that sweeps nothing (scratch, full ImageNet): such
# distributions are the references drawn in every panel of a faceted figure.
NO_AXIS = "-"


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


def study_points(ws: Workspace, study: str | None) -> pd.DataFrame:
    """One row per fine-tuning epoch (ID and OOD macro-F1) of a study, or of all studies,
    with each swept recipe key as a column of its own (see `expand_sweeps`)."""
    with read_connection(ws.db_path) as con:
        df = results(con, study)
        known = studies(con)
    if study is not None and study not in known:
        hint = f"studies in this workspace: {', '.join(known)}" if known else "this workspace has no results yet"
        raise DivrobError(f"no study named {study!r} in {ws.db_path}; {hint}")
    return expand_sweeps(df)


def expand_sweeps(df: pd.DataFrame) -> pd.DataFrame:
    """Turn the `sweep` JSON column into one column per swept key, plus `axis`.

    A key keeps its dotted recipe path (`total`, `classes.random`, `labels.wordnet_depth`);
    one that would shadow a run field (a swept sampling `seed`, a swept `source`) becomes
    `sweep.<key>`. `axis` names what a distribution sweeps ("total", or keys joined by "+"),
    or "-" when it sweeps nothing; rows of distributions without a key hold NaN there.
    """
    df = df.copy()
    raw = df.pop("sweep") if "sweep" in df.columns else pd.Series([None] * len(df), index=df.index, dtype=object)
    parsed = {s: _parse_sweep(s) for s in raw.dropna().unique()}
    dicts = [parsed.get(s, {}) if isinstance(s, str) else {} for s in raw]
    keys = sorted({k for d in parsed.values() for k in d})
    base = set(df.columns)
    for key in keys:
        col = f"sweep.{key}" if key in base or key == "axis" else key
        values = [d.get(key) for d in dicts]
        df[col] = _numeric_if_possible(pd.Series(values, index=df.index, dtype=object))
    df["axis"] = ["+".join(sorted(d)) if d else NO_AXIS for d in dicts]
    return df


def _numeric_if_possible(col: pd.Series) -> pd.Series:
    try:
        return pd.to_numeric(col)
    except (ValueError, TypeError):
        return col


def _parse_sweep(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {}
    # A swept list value (e.g. wnids) is not a scalar a filter or a group can use.
    return {k: (json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else v)
            for k, v in value.items()} if isinstance(value, dict) else {}


def run_summary(points: pd.DataFrame) -> pd.DataFrame:
    """Per run: epochs done and the ID / OOD macro-F1 at its last epoch."""
    if points.empty:
        return points
    last = points.sort_values("epoch").groupby(["distribution", "run_id"], as_index=False).tail(1)
    out = last[["distribution", "arch", "seed", "run_id", "epoch", "id_f1", "ood_f1"]].copy()
    return out.sort_values(["distribution", "arch", "seed"]).reset_index(drop=True)


def group_label(value) -> str:
    """A group value as text: 5000.0 → '5000' (sweep values come back from JSON as floats)."""
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return str(value)


def group_order(names) -> list[str]:
    """Numbers in numeric order (5000 before 25000), then text in alphabetical order."""
    def key(name: str):
        try:
            return (0, float(name), "")
        except ValueError:
            return (1, 0.0, name)
    return sorted(names, key=key)


def with_groups(points: pd.DataFrame, group_by: str) -> pd.DataFrame:
    """Rows with both metrics and a value of `group_by`, labelled in a `group` column."""
    if group_by not in points.columns:
        raise DivrobError(f"cannot group by {group_by!r}; choose from {', '.join(map(str, points.columns))}")
    df = points.dropna(subset=["id_f1", "ood_f1"])
    df = df[df[group_by].notna()].copy()
    df["group"] = df[group_by].map(group_label)
    return df.reset_index(drop=True)


def facet_panels(points: pd.DataFrame, facet: str | None, group_by: str) -> dict[str, pd.DataFrame]:
    """Rows per panel of a figure; {"": points} for a single panel.

    `facet=None` is automatic: a study grouped by distribution whose distributions sweep two
    or more different keys (quantity and label granularity, say) gets one panel per axis,
    because their trends answer different questions. Rows of distributions that sweep nothing
    (scratch, full ImageNet) are the references every panel is read against, so they appear
    in each. `facet="none"` forces one panel; any other field gives one panel per value.
    """
    if facet == "none" or points.empty:
        return {"": points}
    if facet is None:
        axes = sorted(set(points["axis"]) - {NO_AXIS}) if "axis" in points.columns else []
        if group_by != "distribution" or len(axes) < 2:
            return {"": points}
        facet = "axis"
    if facet not in points.columns:
        raise DivrobError(f"cannot facet by {facet!r}; choose from none, {', '.join(map(str, points.columns))}")
    labels = points[facet].map(lambda v: group_label(v) if pd.notna(v) else "")
    panels: dict[str, pd.DataFrame] = {}
    for value in group_order(set(labels) - {"", NO_AXIS}):
        keep = labels == value
        if facet == "axis":
            keep |= labels == NO_AXIS
        panels[value] = points[keep]
    return panels or {"": points}
