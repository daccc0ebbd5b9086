"""Read-side queries: every function takes a connection and returns a pandas DataFrame (or, for
the large numeric tables, numpy arrays).

A study's results come in two parts so that 100,000 runs stay fast: one row per run with its text
fields (`study_run_table`), and the fine-tuning scores as plain numbers keyed by the run's row in
that table (`epoch_scores`). Strings are then made once per run, not once per epoch.

Splits. A run's ID test split is `id_test` unless its task says otherwise (`id_splits`: task
label -> split, e.g. Camelyon17's `id_val`); its OOD split is chosen by the reader (`ood`: WILDS's
`test`, a DomainNet domain, a folder task's `ood_<name>`). `score` is the task's own metric on a
split (divrob.downstream), f1 and acc the generic macro-F1 and accuracy every split records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy and pandas load inside the functions: `divrob results` needs neither
    import numpy as np
    import pandas as pd

RUN_FIELDS = ["study", "distribution", "source", "arch", "seed", "run_id", "state", "sweep", "downstream"]
SCORE_COLUMNS = ["id_f1", "ood_f1", "id_acc", "ood_acc", "id_val_f1", "val_f1", "id_score", "ood_score"]
RESULT_COLUMNS = ["study", "distribution", "source", "arch", "seed", "run_id", "epoch", *SCORE_COLUMNS,
                  "ood", "metric", "downstream", "state", "sweep"]
ID_SPLIT = "id_test"
NOT_OOD = ("train", "id_test", "id_val")  # splits that are never an OOD split

# Each score: (metric column, role). The role "id" is the run's ID split, "ood" the chosen OOD
# split; any other role is the split of that name.
_SCORES = {"id_f1": ("f1_macro", "id"), "ood_f1": ("f1_macro", "ood"), "id_acc": ("acc", "id"),
           "ood_acc": ("acc", "ood"), "id_val_f1": ("f1_macro", "id_val"), "val_f1": ("f1_macro", "val"),
           "id_score": ("score", "id"), "ood_score": ("score", "ood")}

# The study's runs, numbered in the order results are listed. `sweep` is the distribution's swept
# keys and values as JSON (analysis.report turns them into columns); `state` is the run's last
# known state (a running run's epochs are real results too); `downstream` its task's label and
# `downstream_options` the task's other options as JSON (NULL until the run is ingested).
_RUNS = """
    SELECT row_number() OVER (ORDER BY s.study, s.distribution, s.arch, s.seed, s.run_id) - 1 AS k,
           s.study, s.distribution, s.source, s.arch, s.seed, s.run_id, r.state, s.sweep, r.downstream,
           json_extract_string(r.spec, '$.downstream_options') AS downstream_options
    FROM study_runs s LEFT JOIN runs r ON r.run_id = s.run_id
    WHERE (? IS NULL OR s.study = ?)
"""


def _runs_with_id_split(study: str | None, id_splits: dict[str, str]) -> tuple[str, list]:
    """_RUNS plus each run's ID split, and the query's parameters in order."""
    whens = " ".join("WHEN ? THEN ?" for _ in id_splits)
    case = f"CASE r0.downstream {whens} ELSE '{ID_SPLIT}' END" if id_splits else f"'{ID_SPLIT}'"
    params = [v for pair in id_splits.items() for v in pair]
    return f"SELECT r0.*, {case} AS id_split FROM ({_RUNS}) r0", [*params, study, study]


def study_run_table(con, study: str | None = None) -> pd.DataFrame:
    """One row per (study, distribution, run), in listing order; `k` is the row's number. Text
    fields with few values come back as categoricals (a study of 100,000 runs has a handful of
    distributions), `run_id` as text."""
    _materialise_runs(con, study, {})
    return _run_arrow(con).to_pandas()


# A temporary table of one connection: the study's runs with their row number `k` and ID split,
# computed once and read by both halves of `study_results` (numbering 100,000 runs costs a sort).
_RUN_ROWS = "divrob_study_run_rows"


def _materialise_runs(con, study: str | None, id_splits: dict[str, str]) -> None:
    sql, params = _runs_with_id_split(study, id_splits)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_RUN_ROWS} AS {sql}", params)


def _run_arrow(con):
    """The materialised runs as an Arrow table whose text columns but `run_id` are
    dictionary-encoded: its `.to_pandas()` has categoricals, so 100,000 runs cost a handful of
    strings per column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = con.sql(f"SELECT * EXCLUDE (id_split) FROM {_RUN_ROWS} ORDER BY k").to_arrow_table()
    columns = {}
    for name in table.column_names:
        col = table[name]
        if (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)) and name != "run_id":
            col = pc.dictionary_encode(col)
        elif pa.types.is_integer(col.type):
            col = col.cast(pa.int64())
        columns[name] = col
    return pa.table(columns)


def study_results(con, study: str | None, columns=None, ood: str | list[str] = "test",
                  id_splits: dict[str, str] | None = None) -> tuple[object, dict[str, np.ndarray]]:
    """`study_run_table` and `epoch_scores` together, the runs numbered once for both. The runs
    come as an Arrow table (`.to_pandas()`: the frame), so a caller can read the store before
    pandas is loaded (it may be loading in the background: divrob.preload)."""
    id_splits = dict(id_splits or {})
    _materialise_runs(con, study, id_splits)
    return _run_arrow(con), _scores(con, SCORE_COLUMNS if columns is None else columns, ood, id_splits)


_STUDY_RUN_IDS = "SELECT run_id FROM study_runs WHERE (? IS NULL OR study = ?)"


def study_tasks(con, study: str | None = None) -> list[tuple[str, str | None]]:
    """The distinct (task label, options JSON) of a study's ingested runs."""
    return con.execute(f"""
        SELECT DISTINCT downstream, json_extract_string(spec, '$.downstream_options') FROM runs
        WHERE run_id IN ({_STUDY_RUN_IDS}) ORDER BY 1, 2""", [study, study]).fetchall()


def eval_splits(con, study: str | None = None) -> list[str]:
    """Every split a study's fine-tuning epochs were evaluated on (train excluded), sorted."""
    rows = con.execute(f"""
        SELECT DISTINCT split FROM epochs
        WHERE phase = 'finetune' AND split != 'train' AND run_id IN ({_STUDY_RUN_IDS})
        ORDER BY 1""", [study, study]).fetchall()
    return [r[0] for r in rows]


def _picks(columns, id_splits: dict[str, str], ood: str) -> tuple[str, list, list[str]]:
    """The FILTER expressions of `columns`, their parameters, and the splits to read."""
    exprs, params, splits = [], [], {ID_SPLIT, *id_splits.values()}
    for c in columns:
        metric, role = _SCORES[c]
        if role == "id":
            exprs.append(f"max(e.{metric}) FILTER (WHERE e.split = r.id_split) AS {c}")
            continue
        split = ood if role == "ood" else role
        exprs.append(f"max(e.{metric}) FILTER (WHERE e.split = ?) AS {c}")
        params.append(split)
        splits.add(split)
    return ", ".join(exprs), params, sorted(splits)


def epoch_scores(con, study: str | None = None, columns=SCORE_COLUMNS, ood: str | list[str] = "test",
                 id_splits: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    """Per fine-tuning epoch of every run of `study_run_table`: `k` (that table's row), `epoch`
    and the asked scores, as numpy arrays sorted by (k, epoch). A missing split is NaN.

    `ood` a list: one row per (run, epoch, OOD split) for each split the run was evaluated on,
    with `ood` holding the split's position in the list (sorted by k, the split, epoch)."""
    id_splits = dict(id_splits or {})
    _materialise_runs(con, study, id_splits)
    return _scores(con, columns, ood, id_splits)


def _scores(con, columns, ood: str | list[str], id_splits: dict[str, str]) -> dict[str, np.ndarray]:
    """epoch_scores of the runs `_materialise_runs` numbered."""
    import numpy as np

    unknown = [c for c in columns if c not in _SCORES]
    if unknown:
        raise ValueError(f"unknown score column(s) {', '.join(unknown)}; choose from {', '.join(_SCORES)}")
    parts = []
    for i, split in enumerate([ood] if isinstance(ood, str) else ood):
        picks, pick_params, splits = _picks(columns, id_splits, split)
        # several OOD splits: a run not evaluated on this one has no row for it
        having = "HAVING count(*) FILTER (WHERE e.split = ?) > 0" if not isinstance(ood, str) else ""
        sql = f"""
            SELECT r.k, e.epoch, {i} AS ood, {picks}
            FROM {_RUN_ROWS} r JOIN epochs e ON e.run_id = r.run_id AND e.phase = 'finetune'
            WHERE e.split IN ({', '.join('?' for _ in splits)})
            GROUP BY r.k, e.epoch {having}
            ORDER BY r.k, e.epoch
        """
        parts.append(con.execute(sql, [*pick_params, *splits, *([split] if having else [])]).fetchnumpy())
    # Columns with NULLs come back as masked arrays: a missing score is NaN here.
    out = {name: np.concatenate([(np.ma.filled(np.ma.asarray(p[name]).astype(np.float64), np.nan)
                                  if name in _SCORES else np.ma.getdata(p[name]).astype(np.int64))
                                 for p in parts]) for name in parts[0]}
    if len(parts) > 1:  # each part is in (k, epoch) order (sorted by DuckDB, off the GIL)
        order = np.lexsort((out["epoch"], out["ood"], out["k"]))
        out = {name: values[order] for name, values in out.items()}
    if isinstance(ood, str):
        del out["ood"]
    return out


def _last(study: str | None, ood: str, id_splits: dict[str, str]) -> tuple[str, list]:
    """Per run: its last fine-tuning epoch and the ID / OOD score there (one pass, no pivot of
    every epoch); the query and its parameters."""
    runs, params = _runs_with_id_split(study, id_splits)
    return f"""
    WITH r AS ({runs}),
    last AS (
        SELECT e.run_id, max(e.epoch) AS epoch,
               arg_max(e.score, e.epoch) FILTER (WHERE e.split = r.id_split) AS id_score,
               arg_max(e.score, e.epoch) FILTER (WHERE e.split = ?) AS ood_score
        FROM r JOIN epochs e ON e.run_id = r.run_id
        WHERE e.phase = 'finetune' AND (e.split = r.id_split OR e.split = ?)
        GROUP BY e.run_id
        HAVING count(*) FILTER (WHERE e.split = ?) > 0
    )
    SELECT r.k, r.distribution, r.arch, r.seed, r.run_id, r.state, last.epoch, last.id_score, last.ood_score
    FROM r JOIN last ON last.run_id = r.run_id
""", [*params, ood, ood, ood]


LAST_EPOCH_FIELDS = ["distribution", "arch", "seed", "run_id", "state", "epoch", "id_score", "ood_score"]
GROUPED_FIELDS = ["distribution", "arch", "runs", "epochs", "id_score", "ood_score"]


def last_epochs(con, study: str | None = None, ood: str = "test",
                id_splits: dict[str, str] | None = None) -> pd.DataFrame:
    """Per run with an `ood` evaluation: its last fine-tuning epoch and the ID / OOD score there,
    with the run's fields, in listing order."""
    sql, params = _last(study, ood, dict(id_splits or {}))
    return con.execute(f"SELECT {', '.join(LAST_EPOCH_FIELDS)} FROM ({sql}) ORDER BY k", params).df()


def last_epoch_rows(con, study: str | None, limit: int, ood: str = "test",
                    id_splits: dict[str, str] | None = None) -> tuple[str, list[tuple], int]:
    """What a results table shows, as plain tuples (no pandas): ("runs", rows of
    LAST_EPOCH_FIELDS, n) for at most `limit` runs; else ("grouped", rows of GROUPED_FIELDS per
    distribution and architecture, n) with the number of runs, their mean epochs and mean
    last-epoch scores."""
    sql, params = _last(study, ood, dict(id_splits or {}))
    # One pass over the epochs for the large case; the per-run listing is read only when small.
    grouped = con.execute(f"""
        SELECT distribution, arch, count(*) AS runs, avg(epoch) AS epochs, avg(id_score), avg(ood_score)
        FROM ({sql}) GROUP BY distribution, arch ORDER BY distribution, arch""", params).fetchall()
    n = sum(row[2] for row in grouped)
    if n > limit:
        return "grouped", grouped, n
    rows = con.execute(f"SELECT {', '.join(LAST_EPOCH_FIELDS)} FROM ({sql}) ORDER BY k", params).fetchall()
    return "runs", rows, n


def last_epoch_page(con, study: str | None, limit: int, ood: str = "test",
                    id_splits: dict[str, str] | None = None) -> tuple[list[tuple], int]:
    """The first `limit` runs (rows of LAST_EPOCH_FIELDS, listing order) and how many there are,
    in one pass and without pandas: what a screen shows first of a big study."""
    sql, params = _last(study, ood, dict(id_splits or {}))
    rows = con.execute(f"SELECT {', '.join(LAST_EPOCH_FIELDS)}, count(*) OVER () FROM ({sql}) ORDER BY k "
                       f"LIMIT {int(limit)}", params).fetchall()
    return [r[:-1] for r in rows], (rows[0][-1] if rows else 0)


def studies(con) -> list[str]:
    return [r[0] for r in con.execute("SELECT DISTINCT study FROM study_runs ORDER BY study").fetchall()]


def run_states(con, study: str | None = None) -> pd.DataFrame:
    sql = """
        SELECT s.study, s.distribution, s.arch, s.seed, r.run_id, r.state, r.reason,
               (SELECT max(epoch) FROM epochs e WHERE e.run_id = r.run_id AND e.phase = 'finetune') AS finetune_epochs
        FROM study_runs s JOIN runs r USING (run_id)
        WHERE (? IS NULL OR s.study = ?)
        ORDER BY s.study, s.distribution, s.arch, s.seed
    """
    return con.execute(sql, [study, study]).df()


def run_notes(con, study: str | None = None) -> list[tuple]:
    """Runs of a study (all when None) whose results need a word: damaged directories and runs
    that skipped unreadable images. Rows: (run_id, state, reason, unreadable, images)."""
    return con.execute("""
        SELECT DISTINCT r.run_id, r.state, r.reason, r.unreadable, r.images
        FROM runs r JOIN study_runs s USING (run_id)
        WHERE (? IS NULL OR s.study = ?) AND (r.state = 'damaged' OR coalesce(r.unreadable, 0) > 0)
        ORDER BY r.run_id
    """, [study, study]).fetchall()


def distribution_scores(con, study: str, ood: str = "test",
                        id_splits: dict[str, str] | None = None) -> tuple[list[str], dict[str, np.ndarray]]:
    """Per fine-tuning epoch of a study's runs, numbers only and sorted by group (within a group
    in no set order: sums over them may differ in the last bits from one call to the next, so
    this is for drawing, not for printing numbers): `group` (the
    run's distribution, as its position in the sorted list returned first), `id_score` and
    `ood_score` on the run's ID split and on `ood` (NaN where missing). No run table, no strings
    per row, no pandas: what a screen draws its first trends from (analysis.glance)."""
    import numpy as np

    names = [r[0] for r in con.execute(
        "SELECT DISTINCT distribution FROM study_runs WHERE study = ? ORDER BY 1", [study]).fetchall()]
    id_splits = dict(id_splits or {})
    whens = " ".join("WHEN ? THEN ?" for _ in id_splits)
    case = f"CASE r0.downstream {whens} ELSE '{ID_SPLIT}' END" if id_splits else f"'{ID_SPLIT}'"
    splits = sorted({ID_SPLIT, *id_splits.values(), ood})
    sql = f"""
        WITH r AS (
            SELECT s.run_id, row_number() OVER () AS k, list_position(?, s.distribution) - 1 AS g,
                   {case} AS id_split
            FROM study_runs s LEFT JOIN runs r0 ON r0.run_id = s.run_id WHERE s.study = ?)
        SELECT r.g, max(e.score) FILTER (WHERE e.split = r.id_split) AS id_score,
               max(e.score) FILTER (WHERE e.split = ?) AS ood_score
        FROM r JOIN epochs e ON e.run_id = r.run_id AND e.phase = 'finetune'
        WHERE e.split IN ({', '.join('?' for _ in splits)})
        GROUP BY r.k, r.g, e.epoch
        ORDER BY r.g
    """
    params = [names, *[v for pair in id_splits.items() for v in pair], study, ood, *splits]
    got = con.execute(sql, params).fetchnumpy()
    return names, {"group": np.ma.getdata(got["g"]),
                   **{c: np.ma.filled(got[c], np.nan) if np.ma.isMaskedArray(got[c]) else got[c]
                      for c in ("id_score", "ood_score")}}
