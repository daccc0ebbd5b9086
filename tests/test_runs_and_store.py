"""RunSpec ids, run directories, and idempotent ingest into DuckDB."""

from __future__ import annotations

import json
import os
import socket

import pytest

from divrob.runs.rundir import RunDir
from divrob.runs.status import Progress, RunStatus, read_status
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


def test_status_is_written_and_read_as_one_typed_model(tmp_path):
    rd = RunDir.for_spec(tmp_path, spec())
    assert rd.status() == RunStatus()  # nothing written yet: queued
    rd.set_status("running", pid=os.getpid(), world_size=1)
    rd.set_progress(phase="pretrain", epoch=1, epochs=2, step=5, steps_per_epoch=10, images_per_s=100.0)
    s = rd.status()
    assert (s.state, s.pid, s.host, s.world_size) == ("running", os.getpid(), socket.gethostname(), 1)
    assert s.started is not None and s.progress.updated is not None
    # half of pre-training epoch 1 of (2 pre-training + 3 fine-tuning) epochs
    assert s.progress.label() == "pre 1/2" and s.progress.run_fraction(2, 3) == pytest.approx(0.5 / 5)
    rd.set_progress(phase="finetune", epoch=3, epochs=3, step=4, steps_per_epoch=10, images_per_s=90.0)
    assert rd.status().progress.run_fraction(2, 3) == pytest.approx((2 + 2.4) / 5)
    rd.set_status("failed", reason="out of memory")
    rd.set_status("finished")
    end = rd.status()
    assert (end.state, end.reason, end.started, end.pid) == ("finished", None, s.started, os.getpid())
    assert end.progress.epoch == 3 and end.progress.images_per_s == 90.0  # the last progress stays
    on_disk = json.loads(rd.status_path.read_text())  # flat, as documented in divrob.runs.status
    assert (on_disk["phase"], on_disk["step"], on_disk["steps_per_epoch"]) == ("finetune", 4, 10)
    assert "progress" not in on_disk and on_disk["progress_updated"] == end.progress.updated


def test_an_epoch_counts_only_when_its_steps_are_done():
    assert Progress(phase="finetune", epoch=3, epochs=3).epochs_done == 2.0  # no step count: in progress
    assert Progress(phase="finetune", epoch=3, epochs=3, step=10, steps_per_epoch=10).epochs_done == 3.0
    assert Progress().run_fraction(0, 3) is None


def test_status_reader_ignores_unknown_keys_and_names_damage(tmp_path):
    path = tmp_path / "status.json"
    path.write_text(json.dumps({"state": "running", "epoch": 2, "claim": {"host": "elsewhere"}}))  # a newer writer
    assert read_status(path).progress.epoch == 2
    path.write_text(json.dumps({"state": "running", "epoch": "2"}))
    damaged = read_status(path)
    assert damaged.state == "queued" and "epoch = '2', expected int" in damaged.reason
    path.write_text(json.dumps({"state": "exploded"}))
    assert "unknown state 'exploded'" in read_status(path).reason
    path.write_text("{")
    assert read_status(path).state == "queued"
