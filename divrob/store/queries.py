"""Read-side queries: every function takes a connection and returns a pandas DataFrame (or, for
the large numeric tables, numpy arrays).

A study's results come in two parts so that 100,000 runs stay fast: one row per run with its text
fields (`study_run_table`), and the fine-tuning scores as plain numbers keyed by the run's row in
that table (`epoch_scores`). Strings are then made once per run, not once per epoch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy and pandas load inside the functions: `divrob results` needs neither
    import numpy as np
    import pandas as pd

RUN_FIELDS = ["study", "distribution", "source", "arch", "seed", "run_id", "state", "sweep"]
SCORE_COLUMNS = ["id_f1", "ood_f1", "id_acc", "ood_acc", "id_val_f1", "val_f1"]
RESULT_COLUMNS = ["study", "distribution", "source", "arch", "seed", "run_id", "epoch", *SCORE_COLUMNS, "state", "sweep"]

# Each score: (metric column, split). id_test is the ID test split, test the OOD one (WILDS names).
_SCORES = {"id_f1": ("f1_macro", "id_test"), "ood_f1": ("f1_macro", "test"), "id_acc": ("acc", "id_test"),
           "ood_acc": ("acc", "test"), "id_val_f1": ("f1_macro", "id_val"), "val_f1": ("f1_macro", "val")}

# The study's runs, numbered in the order results are listed. `sweep` is the distribution's swept
# keys and values as JSON (analysis.report turns them into columns); `state` is the run's last
# known state (a running run's epochs are real results too).
_RUNS = """
    SELECT row_number() OVER (ORDER BY s.study, s.distribution, s.arch, s.seed, s.run_id) - 1 AS k,
           s.study, s.distribution, s.source, s.arch, s.seed, s.run_id, r.state, s.sweep
    FROM study_runs s LEFT JOIN runs r ON r.run_id = s.run_id
    WHERE (? IS NULL OR s.study = ?)
"""


def study_run_table(con, study: str | None = None) -> pd.DataFrame:
    """One row per (study, distribution, run), in listing order; `k` is the row's number."""
    return con.execute(_RUNS + " ORDER BY k", [study, study]).df()


def epoch_scores(con, study: str | None = None, columns=SCORE_COLUMNS) -> dict[str, np.ndarray]:
    """Per fine-tuning epoch of every run of `study_run_table`: `k` (that table's row), `epoch`
    and the asked scores, as numpy arrays sorted by (k, epoch). A missing split is NaN."""
    import numpy as np

    unknown = [c for c in columns if c not in _SCORES]
    if unknown:
        raise ValueError(f"unknown score column(s) {', '.join(unknown)}; choose from {', '.join(_SCORES)}")
    splits = sorted({_SCORES[c][1] for c in columns})
    picks = ", ".join(f"max(e.{_SCORES[c][0]}) FILTER (WHERE e.split = '{_SCORES[c][1]}') AS {c}" for c in columns)
    sql = f"""
        WITH r AS ({_RUNS})
        SELECT r.k, e.epoch, {picks}
        FROM r JOIN epochs e ON e.run_id = r.run_id AND e.phase = 'finetune'
        WHERE e.split IN ({', '.join('?' for _ in splits)})
        GROUP BY r.k, e.epoch
    """
    out = con.execute(sql, [study, study, *splits]).fetchnumpy()
    # Columns with NULLs come back as masked arrays: a missing score is NaN here.
    out = {name: (np.ma.filled(np.ma.asarray(v).astype(np.float64), np.nan) if name in _SCORES
                  else np.ma.getdata(v).astype(np.int64)) for name, v in out.items()}
    order = np.lexsort((out["epoch"], out["k"]))
    return {name: values[order] for name, values in out.items()}


_LAST = f"""
    WITH r AS ({_RUNS}),
    last AS (
        SELECT e.run_id, max(e.epoch) AS epoch,
               arg_max(e.f1_macro, e.epoch) FILTER (WHERE e.split = 'id_test') AS id_f1,
               arg_max(e.f1_macro, e.epoch) FILTER (WHERE e.split = 'test') AS ood_f1
        FROM epochs e
        WHERE e.phase = 'finetune' AND e.split IN ('id_test', 'test')
          AND e.run_id IN (SELECT run_id FROM r)
        GROUP BY e.run_id
    )
    SELECT r.k, r.distribution, r.arch, r.seed, r.run_id, r.state, last.epoch, last.id_f1, last.ood_f1
    FROM r JOIN last ON last.run_id = r.run_id
"""
LAST_EPOCH_FIELDS = ["distribution", "arch", "seed", "run_id", "state", "epoch", "id_f1", "ood_f1"]
GROUPED_FIELDS = ["distribution", "arch", "runs", "epochs", "id_f1", "ood_f1"]


def last_epochs(con, study: str | None = None) -> pd.DataFrame:
    """Per run: its last fine-tuning epoch and the ID / OOD macro-F1 there (one pass, no pivot
    of every epoch), with the run's fields, in listing order."""
    return con.execute(f"SELECT {', '.join(LAST_EPOCH_FIELDS)} FROM ({_LAST}) ORDER BY k", [study, study]).df()


def last_epoch_rows(con, study: str | None, limit: int) -> tuple[str, list[tuple], int]:
    """What a results table shows, as plain tuples (no pandas): ("runs", rows of
    LAST_EPOCH_FIELDS, n) for at most `limit` runs; else ("grouped", rows of GROUPED_FIELDS per
    distribution and architecture, n) with the number of runs, their mean epochs and mean
    last-epoch scores."""
    # One pass over the epochs for the large case; the per-run listing is read only when small.
    grouped = con.execute(f"""
        SELECT distribution, arch, count(*) AS runs, avg(epoch) AS epochs, avg(id_f1), avg(ood_f1)
        FROM ({_LAST}) GROUP BY distribution, arch ORDER BY distribution, arch""", [study, study]).fetchall()
    n = sum(row[2] for row in grouped)
    if n > limit:
        return "grouped", grouped, n
    rows = con.execute(f"SELECT {', '.join(LAST_EPOCH_FIELDS)} FROM ({_LAST}) ORDER BY k", [study, study]).fetchall()
    return "runs", rows, n


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
