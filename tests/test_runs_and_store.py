"""RunSpec ids, run directories, and idempotent ingest into DuckDB."""

from __future__ import annotations

from divrob.runs.rundir import RunDir
from divrob.runs.spec import RunSpec
from divrob.store.db import SCHEMA_VERSION, read_connection, write_connection
from divrob.store.ingest import ingest_run
from divrob.train.config import finetune_config, pretrain_config


def spec(**kw) -> RunSpec:
    base = dict(arch="resnet18", seed=0, downstream="camtrap-sim", finetune=finetune_config("resnet18", {"epochs": 2}),
                manifest_id="abc", pretrain_classes=10, pretrain=pretrain_config("resnet18", {"epochs": 1}))
    base.update(kw)
    return RunSpec(**base)


def test_run_id_is_content_addressed():
    assert spec().run_id == spec().run_id
    assert spec(seed=1).run_id != spec().run_id
    assert spec(manifest_id="abd").run_id != spec().run_id
    # speed-only settings do not change the run id
    assert spec(finetune=finetune_config("resnet18", {"epochs": 2, "workers": 7})).run_id == spec().run_id
    assert RunSpec.from_dict(spec().to_dict()) == spec()


def test_reference_defaults():
    p = pretrain_config("resnet50", {"batch_size": 512})
    assert (p.lr, p.momentum, p.weight_decay, p.lr_step, p.epochs, p.image_size) == (0.2, 0.9, 1e-4, 30, 90, 224)
    assert pretrain_config("alexnet").lr == 0.01
    f = finetune_config("resnet50")
    assert (f.optimizer, f.lr, f.weight_decay, f.batch_size, f.epochs, f.image_size, f.lr_step) == ("adam", 3e-5, 0.0, 16, 12, 448, None)


def test_epochs_are_appended_once(tmp_path):
    rd = RunDir.for_spec(tmp_path, spec())
    assert rd.append_epoch("finetune", 1, {"test": {"f1_macro": 0.5}})
    assert not rd.append_epoch("finetune", 1, {"test": {"f1_macro": 0.9}})
    assert [e["metrics"]["test"]["f1_macro"] for e in rd.events()] == [0.5]
    # a torn last line from a killed writer is ignored, not fatal
    with open(rd.events_path, "a") as f:
        f.write('{"phase": "finetune", "epo')
    assert len(rd.events()) == 1


def test_ingest_twice_changes_nothing(tmp_path):
    rd = RunDir.for_spec(tmp_path / "runs", spec())
    for epoch in (1, 2):
        rd.append_epoch("finetune", epoch, {s: {"f1_macro": 0.1 * epoch, "acc": 0.5, "n": 10} for s in ("id_test", "test")})
    rd.set_status("finished")
    db = tmp_path / "s.duckdb"
    for _ in range(2):
        with write_connection(db) as con:
            ingest_run(con, rd)
    with read_connection(db) as con:
        assert con.execute("SELECT count(*) FROM epochs").fetchone()[0] == 4
        assert con.execute("SELECT count(*), min(state) FROM runs").fetchone() == (1, "finished")
        assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)


def test_writer_waits_for_a_reader_in_the_same_process(tmp_path):
    import threading
    import time

    db = tmp_path / "s.duckdb"
    with write_connection(db):
        pass
    opened = threading.Event()

    def read_briefly():
        with read_connection(db) as con:
            opened.set()
            time.sleep(0.3)
            con.execute("SELECT 1")

    t = threading.Thread(target=read_briefly)
    t.start()
    opened.wait(5)
    with write_connection(db) as con:  # DuckDB refuses mixed modes at once; the store waits instead
        con.execute("INSERT INTO meta VALUES ('k', 'v')")
    t.join()
    with read_connection(db) as con:
        assert con.execute("SELECT value FROM meta WHERE key = 'k'").fetchone()[0] == "v"
