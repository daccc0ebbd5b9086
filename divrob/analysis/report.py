"""From the store to what a user reads: a study's points, its trends, a per-run summary."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from divrob.analysis import ID_COL, OOD_COL
from divrob.analysis.groups import group_label, group_order  # noqa: F401 - re-exported
from divrob.analysis.studies import UNKNOWN_METRIC, check_study, choose_ood, task_facts
from divrob.errors import DivrobError
from divrob.store.db import read_connection
from divrob.store.queries import RESULT_COLUMNS, SCORE_COLUMNS, last_epochs, study_results
from divrob.workspace import Workspace

if TYPE_CHECKING:  # pandas loads inside the functions, after the store is read (see study_points)
    import pandas as pd

# The `axis` value of a distribution that sweeps nothing (scratch, full ImageNet): such
# distributions are the references drawn in every panel of a faceted figure.
NO_AXIS = "-"


def study_points(ws: Workspace, study: str | None, scores=SCORE_COLUMNS, ood: str | None = None) -> pd.DataFrame:
    """One row per fine-tuning epoch of a study, or of all studies: the task's own metric on the
    ID and OOD split (`id_score`, `ood_score`; `metric` names it), macro-F1 and accuracy, with
    each swept recipe key as a column of its own (see `expand_sweeps`). `scores`: the score
    columns to read (an analysis needs id_score and ood_score only). `ood`: the OOD split
    (`analysis.studies.choose_ood`; `ALL_OOD`: a row per OOD split too); `ood` names it per row.

    Text fields are read once per run and shared by that run's epoch rows, and sweeps are parsed
    once per distinct sweep: a study of 100,000 runs x 12 epochs loads in about a second.
    """
    with read_connection(ws.db_path) as con:
        check_study(con, ws, study)
        split = choose_ood(con, study, ood)
        facts = task_facts(con, study)
        runs, scores = study_results(con, study, scores, split, facts.id_splits)
    import pandas as pd  # after the store is read: it may be loading meanwhile (divrob.preload)

    runs = runs.to_pandas()
    k = scores.pop("k")
    names = [split] if isinstance(split, str) else split
    scores["ood"] = pd.Categorical.from_codes(scores.pop("ood", np.zeros(len(k), np.int64)), categories=names)
    runs = expand_sweeps(runs.drop(columns=["k", "downstream_options"]).assign(metric=_metric_per_run(runs, facts.words)))
    cols = {c: _per_row(runs[c], k) for c in runs.columns}
    fields = [c for c in RESULT_COLUMNS if c in cols or c in scores]
    ordered = {c: cols[c] if c in cols else scores[c] for c in fields}
    extra = {c: cols[c] for c in runs.columns if c not in ordered}
    return pd.DataFrame({**ordered, **extra})


def _metric_per_run(runs: pd.DataFrame, words: dict) -> pd.Categorical:
    """Each run's metric in words, looked up once per distinct (task, options) pair."""
    import pandas as pd

    pairs = list(zip(runs["downstream"].astype(object), runs["downstream_options"].astype(object)))
    codes, uniques = pd.factorize(pd.Series(pairs, dtype=object)) if pairs else (np.zeros(0, np.intp), [])
    labels = [words.get(tuple(None if pd.isna(v) else v for v in pair), UNKNOWN_METRIC) for pair in uniques]
    label_codes, names = pd.factorize(pd.Series(labels + [UNKNOWN_METRIC], dtype=object))
    return pd.Categorical.from_codes(label_codes[codes], categories=names)


def metric_words(points: pd.DataFrame) -> str:
    """What the points' scores measure, for titles ("macro-F1", "worst-region accuracy")."""
    import pandas as pd

    if "metric" not in points.columns or points.empty:
        return "macro-F1"
    return " / ".join(sorted(map(str, pd.unique(points["metric"].dropna())))) or UNKNOWN_METRIC


def _per_row(per_run: pd.Series, k: np.ndarray):
    """A run field repeated for each of the run's epoch rows (`k`: each row's run). Text becomes
    a categorical over the runs' values: a million rows then cost a million integers, not a
    million strings."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(per_run.dtype):
        return per_run.to_numpy()[k]
    codes, uniques = pd.factorize(per_run)
    return pd.Categorical.from_codes(codes[k], categories=uniques)


def study_run_summary(ws: Workspace, study: str | None, ood: str | None = None) -> pd.DataFrame:
    """`run_summary` of the task's own metric for a whole study straight from the store (no
    epoch rows loaded)."""
    with read_connection(ws.db_path) as con:
        check_study(con, ws, study)
        split = choose_ood(con, study, ood)
        if not isinstance(split, str):
            raise DivrobError("a run summary shows one OOD split; choose one with --ood")
        return last_epochs(con, study, split, task_facts(con, study).id_splits)


def expand_sweeps(df: pd.DataFrame) -> pd.DataFrame:
    """Turn the `sweep` JSON column into one column per swept key, plus `axis`.

    A key keeps its dotted recipe path (`total`, `classes.random`, `labels.wordnet_depth`);
    one that would shadow a run field (a swept sampling `seed`, a swept `source`) becomes
    `sweep.<key>`. `axis` names what a distribution sweeps ("total", or keys joined by "+"),
    or "-" when it sweeps nothing; rows of distributions without a key hold NaN there.
    """
    import pandas as pd

    df = df.copy()
    raw = df.pop("sweep") if "sweep" in df.columns else pd.Series([None] * len(df), index=df.index, dtype=object)
    # Parse each distinct sweep once: a study has a handful, its rows may number millions.
    codes, uniques = pd.factorize(raw, use_na_sentinel=True)
    dicts = [_parse_sweep(s) if isinstance(s, str) else {} for s in uniques] + [{}]  # [-1]: no sweep
    keys = sorted({k for d in dicts for k in d})
    base = set(df.columns)
    for key in keys:
        col = f"sweep.{key}" if key in base or key == "axis" else key
        per_unique = _numeric_if_possible(pd.Series([d.get(key) for d in dicts], dtype=object))
        df[col] = per_unique.to_numpy()[codes]
    axes = np.array(["+".join(sorted(d)) if d else NO_AXIS for d in dicts], dtype=object)
    df["axis"] = axes[codes]
    return df


def _numeric_if_possible(col: pd.Series) -> pd.Series:
    import pandas as pd

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


def run_summary(points: pd.DataFrame, scores=("id_f1", "ood_f1"), context: bool = False) -> pd.DataFrame:
    """Per run: epochs done and the ID / OOD `scores` at its last epoch (default macro-F1;
    `(ID_COL, OOD_COL)`: the task's own metric). `context`: also the run's study (first) and
    state (last), for rows of several studies, where a run still running must not look done."""
    if points.empty:
        return points
    key = ["study", "distribution", "run_id"] if context and "study" in points.columns else ["distribution", "run_id"]
    last = points.sort_values("epoch", kind="stable").drop_duplicates(key, keep="last")
    cols = ["distribution", "arch", "seed", "run_id", "epoch", *scores]
    if context:
        cols = [c for c in ("study",) if c in last.columns] + cols + [c for c in ("state",) if c in last.columns]
    out = last[cols]
    return out.sort_values([c for c in ("study", "distribution", "arch", "seed") if c in cols],
                           kind="stable").reset_index(drop=True)


def with_groups(points: pd.DataFrame, group_by: str) -> pd.DataFrame:
    """Rows with both metrics and a value of `group_by`, labelled in a `group` column."""
    import pandas as pd

    if group_by not in points.columns:
        raise DivrobError(f"cannot group by {group_by!r}; choose from {', '.join(map(str, points.columns))}")
    keep = points[ID_COL].notna() & points[OOD_COL].notna() & points[group_by].notna()
    df = points[keep.to_numpy()].reset_index(drop=True)
    # Label each distinct value once, not each row (5000 and 5000.0 share the label "5000").
    codes, uniques = pd.factorize(df[group_by])
    label_codes, labels = pd.factorize(np.array([group_label(v) for v in uniques] + [""], dtype=object))
    df["group"] = pd.Categorical.from_codes(label_codes[codes], categories=labels)
    return df


def facet_panels(points: pd.DataFrame, facet: str | None, group_by: str) -> dict[str, pd.DataFrame]:
    """Rows per panel of a figure; {"": points} for a single panel.

    `facet=None` is automatic: a study grouped by distribution whose distributions sweep two
    or more different keys (quantity and label granularity, say) gets one panel per axis,
    because their trends answer different questions. Rows of distributions that sweep nothing
    (scratch, full ImageNet) are the references every panel is read against, so they appear
    in each. `facet="none"` forces one panel; any other field gives one panel per value.
    `facet="ood"` gives one panel per OOD split, and per task too when the rows hold several
    (a DomainNet study over every ID domain: one panel per domain pair, "infograph → sketch").
    """
    import pandas as pd

    if facet == "none" or points.empty:
        return {"": points}
    if facet == "ood" and "downstream" in points.columns and points["downstream"].nunique() > 1:
        pair = points["downstream"].astype(str).str.split(":").str[-1] + " → " + points["ood"].astype(str)
        return {name: points[(pair == name).to_numpy()] for name in sorted(set(pair))}
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
