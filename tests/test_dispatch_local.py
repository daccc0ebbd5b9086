"""The local executor with no-op jobs: slot workers, failures that stay local, concurrent ingest
under a polling reader, SIGKILL detection (fail / requeue, then resume), the detached scheduler,
cancel requests and the `divrob jobs` commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from divrob.cli import app
from divrob.dispatch.jobs import live_manager, load_jobs, pid_alive, upsert_jobs
from divrob.dispatch.kinds import make_noop_jobs
from divrob.dispatch.scheduler import make_manager, start_detached
from divrob.runs.rundir import RunDir
from divrob.store.db import SCHEMA_VERSION, read_connection, write_connection
from divrob.workspace import init_workspace


@pytest.fixture
def ws(tmp_path):
    return init_workspace(tmp_path / "ws")


def queue(ws, jobs):
    with write_connection(ws.db_path) as con:
        upsert_jobs(con, jobs)
    return {j.job_id: j for j in jobs}


def states(ws):
    with read_connection(ws.db_path) as con:
        return {j.job_id: j for j in load_jobs(con)}


def wait_for(pred, timeout=30.0, every=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(every)
    raise AssertionError("timed out")


def test_one_failing_job_never_stops_the_others(ws):
    jobs = make_noop_jobs(ws, 4, "s", epochs=2) + make_noop_jobs(ws, 1, "s", first_seed=10, epochs=2, fail_at=2)
    bad = jobs[-1].job_id
    queue(ws, jobs)
    counts = make_manager(ws, "local", {"cpu_slots": 2}).run()
    assert counts == {"finished": 4, "failed": 1, "cancelled": 0}
    got = states(ws)
    assert got[bad].state == "failed" and "failing at epoch 2" in got[bad].reason
    assert "failing at epoch 2" in got[bad].log_tail
    assert got[bad].progress.epoch == 1  # progress as far as it went
    assert {got[j.job_id].slot for j in jobs} <= {"cpu0", "cpu1"}
    with read_connection(ws.db_path) as con:
        assert con.execute("SELECT count(*) FROM epochs").fetchone()[0] == (4 * 2 + 1) * 2
        assert con.execute("SELECT state FROM runs WHERE run_id = ?", [bad]).fetchone()[0] == "failed"
    res = CliRunner().invoke(app, ["jobs", "logs", bad[:8], "-w", str(ws.root)])
    assert res.exit_code == 0 and "failed" in res.output and "failing at epoch 2 as asked" in res.output


READER = """
import sys, time
from divrob.dispatch.control import list_jobs
from divrob.store.db import read_connection
from divrob.workspace import open_workspace
ws = open_workspace(sys.argv[1]); polls = 0; errors = []
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    try:
        with read_connection(ws.db_path) as con:
            con.execute("SELECT count(*) FROM epochs").fetchall()
        list_jobs(ws)
        polls += 1
    except Exception as e:
        errors.append(repr(e))
print(polls, len(errors), errors[:3])
"""


@pytest.mark.slow
def test_eight_jobs_finish_at_once_while_a_reader_polls(ws):
    jobs = make_noop_jobs(ws, 8, "s", epochs=3, sleep=0.3)
    queue(ws, jobs)
    reader = subprocess.Popen([sys.executable, "-c", READER, str(ws.root), "6"], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    counts = make_manager(ws, "local", {"cpu_slots": 8}).run()
    out, _ = reader.communicate(timeout=60)
    polls, n_errors = map(int, out.split()[:2])
    assert counts["finished"] == 8
    assert n_errors == 0, out
    assert polls > 5
    with read_connection(ws.db_path) as con:
        rows = con.execute("SELECT run_id, epoch, split, count(*) FROM epochs GROUP BY ALL").fetchall()
    assert len(rows) == 8 * 3 * 2 and all(r[3] == 1 for r in rows)
    assert {r[0] for r in rows} == {j.job_id for j in jobs}


def _kill_after_epoch(ws, run_id, epoch):
    rd = RunDir(ws.runs / run_id)
    wait_for(lambda: epoch in rd.recorded_epochs("finetune"))
    pid = rd.status().pid
    os.kill(pid, signal.SIGKILL)
    return pid


@pytest.mark.parametrize("policy", ["fail", "requeue"])
@pytest.mark.slow
def test_sigkilled_job_is_detected_and_resumes(ws, policy):
    (job,) = make_noop_jobs(ws, 1, "s", epochs=4, sleep=0.25)
    queue(ws, [job])
    mgr = make_manager(ws, "local", {"cpu_slots": 1, "on_lost": policy})
    killer = threading.Thread(target=_kill_after_epoch, args=(ws, job.job_id, 2))
    killer.start()
    counts = mgr.run()
    killer.join()
    rd = RunDir(ws.runs / job.job_id)
    first = {e["epoch"]: e["time"] for e in rd.events()}
    got = states(ws)[job.job_id]
    if policy == "fail":
        assert counts == {"finished": 0, "failed": 1, "cancelled": 0}
        assert got.state == "failed" and "SIGKILL" in got.reason and rd.status().state == "failed"
        res = CliRunner().invoke(app, ["jobs", "ls", "--state", "failed", "-w", str(ws.root)])
        assert res.exit_code == 0 and job.job_id[:12] in res.output
        got.state = "queued"  # what the next `study run` does with a failed run
        queue(ws, [got])
        assert make_manager(ws, "local", {"cpu_slots": 1}).run()["finished"] == 1
    else:
        assert counts["finished"] == 1
    got = states(ws)[job.job_id]
    assert got.state == "finished" and got.attempts == 2
    events = rd.events()
    assert [e["epoch"] for e in events] == [1, 2, 3, 4]  # resumed: nothing recorded twice
    assert all(first[e["epoch"]] == e["time"] for e in events if e["epoch"] in first)


@pytest.mark.slow
def test_detached_scheduler_serves_the_queue_and_cancels(ws):
    jobs = make_noop_jobs(ws, 4, "s", epochs=20, sleep=0.1)
    queue(ws, jobs)
    info = start_detached(ws, "local", {"cpu_slots": 2})
    assert info["pid"] != os.getpid() and os.getsid(info["pid"]) != os.getsid(0)  # its own session
    runner = CliRunner()
    wait_for(lambda: sum(j.state == "running" for j in states(ws).values()) == 2, timeout=20)
    res = runner.invoke(app, ["jobs", "ls", "-w", str(ws.root)])
    assert res.exit_code == 0 and "running" in res.output and f"pid {info['pid']}" in res.output
    running = next(j for j in states(ws).values() if j.state == "running")
    queued = next(j for j in states(ws).values() if j.state == "queued")
    wait_for(lambda: RunDir(ws.runs / running.job_id).recorded_epochs("finetune"))
    for target in (running, queued):
        res = runner.invoke(app, ["jobs", "cancel", target.job_id[:10], "-w", str(ws.root)])
        assert res.exit_code == 0, res.output
    wait_for(lambda: not pid_alive(info["pid"]), timeout=60)
    assert live_manager(ws, "local") is None
    got = states(ws)
    assert got[running.job_id].state == "cancelled", got[running.job_id]
    assert got[queued.job_id].state == "cancelled", got[queued.job_id]
    assert RunDir(ws.runs / running.job_id).status().state == "cancelled"
    assert sorted(j.state for j in got.values()) == ["cancelled", "cancelled", "finished", "finished"]
    log = (ws.root / "logs" / "scheduler-local.log").read_text()
    assert "queue empty" in log and f"cancelled {running.job_id}" in log and "[/" not in log  # plain text
    res = runner.invoke(app, ["jobs", "cancel", "--all", "-w", str(ws.root)])
    assert res.exit_code == 0 and "cancelling 0 job(s)" in res.output


def test_jobs_ls_does_not_import_torch(ws):
    queue(ws, make_noop_jobs(ws, 1, "s"))
    code = ("import sys; from divrob.cli import app; sys.argv = ['divrob', 'jobs', 'ls', '-w', sys.argv[1]]\n"
            "try:\n    app()\nexcept SystemExit:\n    pass\nprint(json.dumps('torch' in sys.modules))")
    out = subprocess.run([sys.executable, "-c", "import json\n" + code, str(ws.root)], capture_output=True, text=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) is False, out.stderr


def test_store_migrates_from_schema_1(tmp_path):
    import duckdb

    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.close()
    with read_connection(db) as con:  # read-only on an old store: no jobs table, no error
        assert load_jobs(con) == []
    with write_connection(db) as con:
        pass
    with read_connection(db) as con:
        assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
        assert load_jobs(con) == []


def test_store_migrates_from_schema_2_keeping_job_progress(tmp_path):
    """Schema 2 stored a job's throughput; schema 3 stores its whole progress."""
    import duckdb

    db = tmp_path / "v2.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    con.execute("""CREATE TABLE jobs (
        job_id VARCHAR PRIMARY KEY, kind VARCHAR, study VARCHAR, label VARCHAR, deps VARCHAR,
        params VARCHAR, executor VARCHAR, state VARCHAR, attempts INTEGER, slot VARCHAR, pid INTEGER,
        external_id VARCHAR, folder VARCHAR, reason VARCHAR, log_tail VARCHAR, phase VARCHAR,
        epoch INTEGER, step BIGINT, throughput DOUBLE, queued DOUBLE, started DOUBLE, ended DOUBLE,
        updated DOUBLE)""")
    con.execute("INSERT INTO jobs (job_id, kind, deps, params, state, phase, epoch, step, throughput) "
                "VALUES ('j1', 'run', '[]', '{}', 'finished', 'finetune', 3, 40, 812.5)")
    con.close()
    with write_connection(db) as con:
        (job,) = load_jobs(con)
        job.progress = replace(job.progress, epochs=3, steps_per_epoch=40)
        upsert_jobs(con, [job])
    with read_connection(db) as con:
        (job,) = load_jobs(con)
        assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    p = job.progress
    assert (p.phase, p.epoch, p.epochs, p.step, p.steps_per_epoch, p.images_per_s) == ("finetune", 3, 3, 40, 40, 812.5)
