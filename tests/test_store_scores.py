"""The store keeps each split's task score (epochs.score): a store of schema 3 gains it from its
macro-F1 (every task before was a macro-F1 task), and so do events written before runs recorded
a score; the ID split a reader takes is the task's own (Camelyon17: id_val)."""

from __future__ import annotations

import duckdb
import numpy as np

from divrob.runs.grid import PlannedRun
from divrob.runs.rundir import RunDir
from divrob.runs.spec import RunSpec
from divrob.store.db import SCHEMA_VERSION, read_connection, write_connection
from divrob.store.ingest import ingest_runs, record_study_run
from divrob.store.queries import epoch_scores, last_epochs
from divrob.train.config import finetune_config


def test_schema_3_store_gains_the_score_from_macro_f1(tmp_path):
    db = tmp_path / "v3.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute("INSERT INTO meta VALUES ('schema_version', '3')")
    con.execute("""CREATE TABLE epochs (run_id VARCHAR, phase VARCHAR, epoch INTEGER, split VARCHAR,
        f1_macro DOUBLE, acc DOUBLE, recall_macro DOUBLE, loss DOUBLE, n INTEGER,
        PRIMARY KEY (run_id, phase, epoch, split))""")
    con.execute("INSERT INTO epochs VALUES ('r', 'finetune', 1, 'test', 0.4, 0.7, 0.4, NULL, 10), "
                "('r', 'finetune', 1, 'train', NULL, 0.9, NULL, 0.3, 50)")
    con.close()
    with write_connection(db):
        pass
    with read_connection(db) as con:
        assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
        rows = dict(con.execute("SELECT split, score FROM epochs").fetchall())
    assert rows == {"test": 0.4, "train": None}


def _run(tmp_path, downstream: str, metrics: dict, seed: int = 0) -> tuple[RunSpec, RunDir]:
    spec = RunSpec(arch="resnet18", seed=seed, downstream=downstream, finetune=finetune_config("resnet18"))
    rd = RunDir.for_spec(tmp_path / "runs", spec)
    rd.append_epoch("finetune", 1, metrics)
    return spec, rd


def test_ingest_and_the_id_split_a_reader_takes(tmp_path):
    old_spec, old = _run(tmp_path, "iwildcam", {s: {"f1_macro": f, "acc": 0.9, "n": 4} for s, f in (("id_test", 0.5), ("test", 0.3))})
    new_spec, new = _run(tmp_path, "wilds:camelyon17", {"id_val": {"f1_macro": 0.6, "acc": 0.8, "score": 0.8, "n": 4},
                                              "test": {"f1_macro": 0.2, "acc": 0.6, "score": 0.6, "n": 4}}, seed=1)
    db = tmp_path / "store.duckdb"
    with write_connection(db) as con:
        ingest_runs(con, [old, new])
        for spec, name in ((old_spec, "a"), (new_spec, "b")):
            record_study_run(con, "s", PlannedRun(name, None, {}, spec, None))
    with read_connection(db) as con:
        scores = dict(con.execute("SELECT run_id || split, score FROM epochs").fetchall())
        assert scores[old.run_id + "test"] == 0.3  # written before runs kept a score: its macro-F1
        assert scores[new.run_id + "test"] == 0.6  # Camelyon17's accuracy, not its macro-F1
        plain = epoch_scores(con, "s", ["id_score", "ood_score"])
        own = epoch_scores(con, "s", ["id_score", "ood_score"], id_splits={"wilds:camelyon17": "id_val"})
        last = last_epochs(con, "s", "test", {"wilds:camelyon17": "id_val"})
    assert np.isnan(plain["id_score"][1]) and own["id_score"].tolist() == [0.5, 0.8]
    assert own["ood_score"].tolist() == [0.3, 0.6]
    assert last[["distribution", "id_score", "ood_score"]].values.tolist() == [["a", 0.5, 0.3], ["b", 0.8, 0.6]]
