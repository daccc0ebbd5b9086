"""Read-side queries: every function takes a connection and returns a pandas DataFrame."""

from __future__ import annotations

import pandas as pd

RESULT_COLUMNS = ["study", "distribution", "source", "arch", "seed", "run_id", "epoch", "id_f1", "ood_f1",
                  "id_acc", "ood_acc", "id_val_f1", "val_f1", "state", "sweep"]


def results(con, study: str | None = None) -> pd.DataFrame:
    """One row per fine-tuning epoch of every run of a study: ID (id_test) and OOD (test) scores.

    `sweep` is the distribution's swept keys and values as JSON (see analysis.report, which
    turns them into columns); `state` is the run's last known state (a running run's epochs
    are real results too).
    """
    sql = """
        SELECT s.study, s.distribution, s.source, s.arch, s.seed, s.run_id, e.epoch,
               max(CASE WHEN e.split = 'id_test' THEN e.f1_macro END) AS id_f1,
               max(CASE WHEN e.split = 'test' THEN e.f1_macro END) AS ood_f1,
               max(CASE WHEN e.split = 'id_test' THEN e.acc END) AS id_acc,
               max(CASE WHEN e.split = 'test' THEN e.acc END) AS ood_acc,
               max(CASE WHEN e.split = 'id_val' THEN e.f1_macro END) AS id_val_f1,
               max(CASE WHEN e.split = 'val' THEN e.f1_macro END) AS val_f1,
               any_value(r.state) AS state,
               s.sweep
        FROM study_runs s JOIN epochs e ON e.run_id = s.run_id AND e.phase = 'finetune'
        LEFT JOIN runs r ON r.run_id = s.run_id
        WHERE (? IS NULL OR s.study = ?)
        GROUP BY ALL
        ORDER BY s.study, s.distribution, s.arch, s.seed, e.epoch
    """
    return con.execute(sql, [study, study]).df()


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
