"""Stalls and alerts: a job whose heartbeat stops while its process lives becomes `stalled` (and
is requeued when asked); a study's end, a failed run and a stall each send one line to the
configured command (a real process that appends to a file) and webhook (a real local HTTP server).
Jobs are the no-op stand-in run by the real local backend and manager."""

from __future__ import annotations

import json
from dataclasses import replace
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from divrob.dispatch.jobs import load_jobs, upsert_jobs
from divrob.dispatch.kinds import make_noop_jobs
from divrob.dispatch.local import LocalBackend, local_slots
from divrob.dispatch.manager import Manager
from divrob.dispatch.notify import Notifier
from divrob.store.db import read_connection, write_connection
from divrob.workspace import NotifyConfig, init_workspace


class Lines:
    """A reporter that keeps the manager's log lines."""

    def __init__(self):
        self.lines: list[str] = []

    def task(self, description, total=None):
        from divrob.progress import SILENT

        return SILENT.task(description, total)

    def log(self, message: str) -> None:
        self.lines.append(message)


def appender(path) -> list[str]:
    """An argv that appends its last argument (the message) to `path`."""
    return [sys.executable, "-c", "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + '\\n')", str(path)]


def manager(ws, reporter, notify_file, **kw) -> Manager:
    notifier = Notifier(NotifyConfig(command=appender(notify_file)), reporter.log)
    backend = LocalBackend(ws, local_slots(ws.config.executor, None, 2))
    return Manager(ws, backend, reporter=reporter, notifier=notifier, **kw)


def test_stateful_vocabulary():
    from divrob.states import ACTIVE, RUNNING, STATE_STYLE, STATES

    assert "stalled" in STATES and "stalled" in ACTIVE and "stalled" in RUNNING and "stalled" in STATE_STYLE


@pytest.mark.slow
def test_a_quiet_job_is_stalled_then_running_again_and_alerts_go_out(tmp_path):
    ws = init_workspace(tmp_path / "ws")
    quiet = make_noop_jobs(ws, 1, "s", epochs=2, sleep=3.0)  # 3 s between heartbeats
    failing = make_noop_jobs(ws, 1, "s", first_seed=5, epochs=1, fail_at=1)
    with write_connection(ws.db_path) as con:
        upsert_jobs(con, quiet + failing)
    out = tmp_path / "alerts.txt"
    rep = Lines()
    counts = manager(ws, rep, out, stall_s=1.5).run()
    assert counts == {"finished": 1, "failed": 1, "cancelled": 0}
    job = quiet[0].job_id
    stalls = [ln for ln in rep.lines if ln.startswith(f"stalled {job}")]
    assert stalls and "no heartbeat for" in stalls[0] and "is alive" in stalls[0]
    with read_connection(ws.db_path) as con:
        got = {j.job_id: j for j in load_jobs(con)}
    assert got[job].state == "finished" and got[job].attempts == 1  # marked, never stopped
    alerts = out.read_text().splitlines()
    assert any(a.startswith("divrob: run stalled in s: noop 0") for a in alerts), alerts
    assert any(a.startswith("divrob: run failed in s: noop 5") and "failing at epoch 1" in a for a in alerts)
    assert alerts[-1] == "divrob: study s finished: 1 finished, 1 failed"
    assert sum("study s finished" in a for a in alerts) == 1


@pytest.mark.slow
def test_a_stalled_job_is_requeued_then_failed_at_the_limit(tmp_path):
    ws = init_workspace(tmp_path / "ws")
    jobs = make_noop_jobs(ws, 1, "s", epochs=1, sleep=30.0)  # never reports within the limit
    with write_connection(ws.db_path) as con:
        upsert_jobs(con, jobs)
    out = tmp_path / "alerts.txt"
    rep = Lines()
    counts = manager(ws, rep, out, stall_s=1.0, on_stall="requeue", max_requeues=1).run()
    assert counts["failed"] == 1
    with read_connection(ws.db_path) as con:
        (job,) = load_jobs(con)
    assert job.attempts == 2 and "stalled" in job.reason and "requeue limit reached" in job.reason
    assert any(ln.startswith(f"requeued {job.job_id}") for ln in rep.lines)
    alerts = out.read_text().splitlines()
    assert sum(a.startswith("divrob: run stalled") and "requeued" in a for a in alerts) == 2
    assert alerts[-1] == "divrob: study s finished: 1 failed"


def test_webhook_gets_json_and_failures_are_logged_not_raised(tmp_path):
    got: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            got.append({"type": self.headers["Content-Type"],
                        "body": json.loads(self.rfile.read(int(self.headers["Content-Length"])))})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        logged: list[str] = []
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        Notifier(NotifyConfig(webhook=url), logged.append).send("finished", "s", "divrob: study s finished: 2 finished")
        assert got == [{"type": "application/json", "body": {**got[0]["body"], "text": "divrob: study s finished: 2 finished",
                                                              "event": "finished", "study": "s"}}]
        assert not logged
    finally:
        server.shutdown()
        server.server_close()
    logged = []
    # nobody listens there now; and a command that does not exist
    Notifier(NotifyConfig(webhook=url, timeout_s=2, command=["/nonexistent/notify"]), logged.append).send(
        "failed", "s", "x")
    assert len(logged) == 2 and "cannot run /nonexistent/notify" in logged[0] and "webhook failed" in logged[1]


def test_notify_config_is_validated(tmp_path):
    from divrob.errors import WorkspaceError
    from divrob.workspace import open_workspace

    ws = init_workspace(tmp_path / "ws")
    cfg = ws.config_path
    cfg.write_text(cfg.read_text().replace("[notify]\n", '[notify]\ncommand = "notify-send divrob"\n'))
    with pytest.raises(WorkspaceError, match="notify.command"):
        open_workspace(ws.root)
    cfg.write_text(cfg.read_text().replace('command = "notify-send divrob"', 'webhook = "ftp://x"'))
    with pytest.raises(WorkspaceError, match="not an http"):
        open_workspace(ws.root)


def test_a_long_first_decode_is_the_run_s_heartbeat(tmp_path):
    # Before training reports progress, a run decoding a large manifest for the first time says
    # nothing for many minutes; its decode progress goes to the run's log, whose time the manager
    # reads as a heartbeat, so the job is not marked stalled meanwhile.
    import numpy as np
    from conftest import jpeg_bytes

    from divrob.progress import SILENT
    from divrob.runs.execute import HeartbeatReporter
    from divrob.runs.rundir import RunDir
    from divrob.train.data import decode_images

    paths = []
    for i in range(600):
        p = tmp_path / "img" / f"{i}.jpg"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(jpeg_bytes(i % 4))
        paths.append(p)
    rd = RunDir(tmp_path / "run")
    rd.path.mkdir()
    decode_images(paths, np.zeros(600, np.int64), 8, tmp_path / "cache", HeartbeatReporter(SILENT, rd, every_s=0.0),
                  description="decoding manifest 3f2a1b9c")
    lines = rd.log_path.read_text().splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        "decoding manifest 3f2a1b9c: 256 of 600", "decoding manifest 3f2a1b9c: 512 of 600",
        "decoding manifest 3f2a1b9c: 600 of 600"]
    quiet = RunDir(tmp_path / "quiet")  # a beat at most once a minute: a short decode writes nothing
    quiet.path.mkdir()
    decode_images(paths[:300], np.zeros(300, np.int64), 8, tmp_path / "cache2", HeartbeatReporter(SILENT, quiet))
    assert not quiet.log_path.exists()


def test_a_cancelled_job_s_run_directory_says_cancelled_whatever_its_process_left(tmp_path):
    # On SLURM, scancel may kill the process before it writes "cancelled", or a stop request (the
    # time-limit warning, which 22.05 may send at once) may have left the run "queued" first; the
    # job is cancelled, and the run directory (which the store reads) must say so too.
    from divrob.runs.rundir import RunDir

    ws = init_workspace(tmp_path / "ws")
    (job,) = make_noop_jobs(ws, 1, "s", epochs=1)
    rd = RunDir(ws.runs / job.job_id)
    rd.path.mkdir(parents=True, exist_ok=True)
    rd.set_status("queued", reason="stop requested (SIGUSR2): checkpointed at epoch 1 step 3")
    m = manager(ws, Lines(), tmp_path / "alerts.txt")
    m.jobs[job.job_id] = job
    m.cancelling.add(job.job_id)
    m._ended(job, {"ok": False, "error": "killed"})
    assert job.state == "cancelled" and rd.status().state == "cancelled"
    assert "cancelled" in rd.log_path.read_text()
    finished = RunDir(ws.runs / "other")  # a run that ended on its own keeps its state
    finished.path.mkdir()
    finished.set_status("failed", reason="boom")
    other = replace(job, job_id="other")
    m.jobs["other"] = other
    m.cancelling.add("other")
    m._ended(other, {"ok": False})
    assert finished.status().state == "failed"
