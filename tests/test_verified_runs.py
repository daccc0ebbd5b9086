"""Run directories are verified (issue 13 item 4): event lines carry a sequence number and a
checksum, damage marks a run `damaged` (never finished), a resumed run repairs itself, ingest
keeps only the rows its directory backs, and `divrob doctor` checks and repairs a workspace.
Real run directories written by the real no-op job body, a real DuckDB store."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import duckdb
import pytest
from typer.testing import CliRunner

from divrob.cli import app
from divrob.dispatch.kinds import make_noop_jobs, run_job
from divrob.runs.claim import CLAIM_NAME
from divrob.runs.rundir import RunDir, check_event_bytes
from divrob.store.db import write_connection
from divrob.store.doctor import check_workspace
from divrob.store.ingest import ingest_runs
from divrob.workspace import init_workspace


@pytest.fixture
def ws(tmp_path):
    return init_workspace(tmp_path / "ws")


def finished_run(ws, epochs=4):
    (job,) = make_noop_jobs(ws, 1, "s", epochs=epochs)
    run_job(ws, job.job_id, "noop", job.params)
    rd = RunDir(ws.runs / job.job_id)
    assert rd.is_finished
    return job, rd


def store_rows(ws, run_id):
    con = duckdb.connect(str(ws.db_path), read_only=True)
    try:
        state = con.execute("SELECT state, reason FROM runs WHERE run_id = ?", [run_id]).fetchone()
        epochs = [r[0] for r in con.execute(
            "SELECT DISTINCT epoch FROM epochs WHERE run_id = ? ORDER BY 1", [run_id]).fetchall()]
    finally:
        con.close()
    return state, epochs


def ingest(ws, rd):
    with write_connection(ws.db_path) as con:
        ingest_runs(con, [rd])


def test_each_event_line_has_its_sequence_number_and_checksum_and_old_lines_still_read(ws):
    _, rd = finished_run(ws, epochs=3)
    lines = [json.loads(x) for x in rd.events_path.read_text().splitlines()]
    assert [e["seq"] for e in lines] == [1, 2, 3] and all(len(e["sum"]) == 16 for e in lines)
    old = b'{"phase": "finetune", "epoch": 1, "metrics": {}}\n'  # written before lines were numbered
    assert check_event_bytes(old).damage is None and check_event_bytes(old).events[0]["epoch"] == 1


@pytest.mark.parametrize("how", ["cut a middle line", "edit a number", "drop the last line", "cut the last line short"])
def test_damage_marks_the_run_damaged_and_the_store_keeps_only_backed_rows(ws, how):
    job, rd = finished_run(ws)
    ingest(ws, rd)
    assert store_rows(ws, rd.run_id) == (("finished", None), [1, 2, 3, 4])
    lines = rd.events_path.read_text().splitlines(keepends=True)
    if how == "cut a middle line":
        del lines[1]
    elif how == "edit a number":
        lines[2] = lines[2].replace('"f1_macro": 0.53', '"f1_macro": 0.93')
    elif how == "drop the last line":
        del lines[-1]
    else:
        lines[-1] = lines[-1][:25]
    rd.events_path.write_text("".join(lines))
    assert not rd.is_finished
    seen = rd.observed()
    assert seen.state == "damaged" and "events.jsonl" in seen.reason
    ingest(ws, rd)
    (state, reason), epochs = store_rows(ws, rd.run_id)
    assert state == "damaged" and reason == seen.reason
    # rows the directory no longer backs are gone (lines after a missing one are out of sequence)
    assert epochs == {"cut a middle line": [1], "edit a number": [1, 2, 4], "drop the last line": [1, 2, 3],
                      "cut the last line short": [1, 2, 3]}[how]
    # the next run repairs and resumes it: every epoch once, finished, undamaged
    run_job(ws, job.job_id, "noop", job.params)
    events = rd.events()
    assert sorted(e["epoch"] for e in events) == [1, 2, 3, 4] and rd.is_finished and rd.damage() is None
    assert "repaired a damaged run" in rd.log_path.read_text()
    ingest(ws, rd)
    assert store_rows(ws, rd.run_id) == (("finished", None), [1, 2, 3, 4])


def test_a_torn_last_line_of_a_stopped_run_is_cut_on_resume_not_damage(ws):
    (job,) = make_noop_jobs(ws, 1, "s", epochs=3, fail_at=3)
    with pytest.raises(Exception):
        run_job(ws, job.job_id, "noop", job.params)
    rd = RunDir(ws.runs / job.job_id)
    with open(rd.events_path, "a") as f:
        f.write('{"phase": "finetune", "epo')  # killed mid-append
    (rd.checkpoints / ".last.pt.abc123.tmp").write_bytes(b"x" * 1000)  # killed mid-checkpoint
    assert rd.damage() is None and rd.status().state == "failed"
    run_job(ws, job.job_id, "noop", {"epochs": 3})
    assert [e["epoch"] for e in rd.events()] == [1, 2, 3] and rd.is_finished
    assert not list(rd.checkpoints.glob("*.tmp"))
    log = rd.log_path.read_text()
    assert "cut a torn last line" in log and "removed the orphan temporary file .last.pt.abc123.tmp" in log


def test_a_running_state_with_a_dead_pid_is_reconciled_once(ws):
    _, rd = finished_run(ws)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    rd.set_status("running", pid=dead.pid)
    seen = rd.observed()
    assert seen.state == "failed" and f"pid {dead.pid}" in seen.reason
    assert rd.status().state == "failed"  # recorded, so `study run` resumes it
    assert not (rd.path / CLAIM_NAME).exists()


def test_doctor_finds_and_fixes_what_is_safe(ws):
    _, damaged = finished_run(ws)
    (job2,) = make_noop_jobs(ws, 1, "s", first_seed=5, epochs=2)
    run_job(ws, job2.job_id, "noop", job2.params)
    dead_run = RunDir(ws.runs / job2.job_id)
    with write_connection(ws.db_path) as con:
        ingest_runs(con, [damaged, dead_run])
    lines = damaged.events_path.read_text().splitlines(keepends=True)
    damaged.events_path.write_text("".join(lines[:1] + lines[2:]))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    dead_run.set_status("running", pid=dead.pid)
    (dead_run.path / CLAIM_NAME).write_text(json.dumps(
        {"host": socket.gethostname(), "pid": dead.pid, "token": "t", "since": time.time()}))
    (dead_run.checkpoints / ".last.pt.zz.tmp").write_bytes(b"half a checkpoint")
    old_tmp = ws.manifests / ".m.parquet.qq.tmp"
    old_tmp.write_bytes(b"x")
    os.utime(old_tmp, (time.time() - 7200, time.time() - 7200))

    runner = CliRunner()
    res = runner.invoke(app, ["doctor", "-w", str(ws.root)], env={"COLUMNS": "250"})
    assert res.exit_code == 1, res.output
    kinds = sorted(f.kind for f in check_workspace(ws))
    assert kinds == ["damaged", "dead running", "orphan temp file", "orphan temp file", "stale claim", "store",
                     "store"], kinds
    for word in ("damaged", "stale claim", "orphan temp file", "dead running", "--fix"):
        assert word in res.output

    res = runner.invoke(app, ["doctor", "--fix", "-w", str(ws.root)], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    assert not old_tmp.exists() and not list(dead_run.checkpoints.glob("*.tmp"))
    assert not (dead_run.path / CLAIM_NAME).exists()
    assert dead_run.status().state == "failed" and damaged.status().state == "failed"
    res = runner.invoke(app, ["doctor", "-w", str(ws.root)], env={"COLUMNS": "250"})
    assert res.exit_code == 0 and "nothing to repair" in res.output, res.output


PLAN_RECIPE = """
[study]
name = "v"
downstream = "camtrap-sim"
archs = ["resnet18"]
seeds = [0]
finetune = { epochs = 2, image_size = 16 }

[[distribution]]
name = "scratch"
"""


def test_study_plan_and_jobs_ls_show_a_damaged_run_as_such(ws, tmp_path):
    from divrob.dispatch.control import list_jobs
    from divrob.dispatch.jobs import Job, upsert_jobs
    from divrob.recipes.load import load_recipe
    from divrob.runs.grid import plan_study

    recipe = tmp_path / "v.toml"
    recipe.write_text(PLAN_RECIPE)
    (pr,) = plan_study(ws, load_recipe(recipe)).runs
    rd = RunDir.for_spec(ws.runs, pr.spec)
    for epoch in (1, 2):
        rd.append_epoch("finetune", epoch, {"test": {"f1_macro": 0.5, "acc": 0.5, "n": 4}})
    rd.set_status("finished")
    with write_connection(ws.db_path) as con:
        upsert_jobs(con, [Job(rd.run_id, "run", "v", "scratch", executor="local", state="finished")])
    runner = CliRunner()
    res = runner.invoke(app, ["study", "plan", str(recipe), "-w", str(ws.root)], env={"COLUMNS": "250"})
    assert res.exit_code == 0 and "finished (never redone)" in res.output and "0 of 1 runs to do" in res.output
    lines = rd.events_path.read_text().splitlines(keepends=True)
    rd.events_path.write_text(lines[0])  # the finished run's last line is gone
    res = runner.invoke(app, ["study", "plan", str(recipe), "-w", str(ws.root)], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    assert "damaged (will repair and resume)" in res.output and "lacks fine-tuning epoch(s) 2" in res.output
    assert "1 of 1 runs to do" in res.output
    (job,) = list_jobs(ws)
    assert job.state == "damaged" and "lacks fine-tuning epoch(s) 2" in job.reason
    res = runner.invoke(app, ["jobs", "ls", "-w", str(ws.root)], env={"COLUMNS": "250"})
    assert res.exit_code == 0 and "damaged" in res.output, res.output


def test_atomic_writes_fsync_the_file_and_its_folder(tmp_path, monkeypatch):
    # durability cannot be observed without cutting the power: record the fsync calls instead
    from divrob import fileio

    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(os.path.realpath(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(fileio.os, "fsync", spy)
    target = tmp_path / "sub" / "x.json"
    fileio.write_json_atomic(target, {"a": 1})
    assert len(synced) == 2 and synced[0].endswith(".tmp") and synced[1] == str(tmp_path / "sub")
    assert json.loads(target.read_text()) == {"a": 1} and not list(target.parent.glob("*.tmp"))
