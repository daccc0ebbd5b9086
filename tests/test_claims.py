"""Runs are claimed: one process trains a run at a time (divrob.runs.claim), a dead owner's
claim is taken over, and two concurrent `divrob study run` of one study train every run once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from divrob.runs.claim import CLAIM_NAME, RunClaimed, claim_run, read_claim

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def _env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "250", "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _write_claim(run: Path, host: str, pid: int, age_s: float = 0.0) -> None:
    run.mkdir(parents=True, exist_ok=True)
    path = run / CLAIM_NAME
    path.write_text(json.dumps({"host": host, "pid": pid, "token": "theirs", "since": time.time() - age_s}))
    os.utime(path, (time.time() - age_s, time.time() - age_s))


def test_a_live_claim_is_refused_and_released_claims_can_be_taken(tmp_path):
    run = tmp_path / "r1"
    run.mkdir()
    with claim_run(run) as mine:
        held = read_claim(run)
        assert (held.host, held.pid, held.token) == (socket.gethostname(), os.getpid(), mine.mine.token)
        with pytest.raises(RunClaimed) as e:
            claim_run(run)
        assert f"pid {os.getpid()}" in str(e.value) and "left to it" in str(e.value)
        assert mine.touch() and not mine.lost
    assert read_claim(run) is None  # released
    assert not list(run.glob("*.tmp")) and not list(run.glob(".*"))  # no temporary files left
    with claim_run(run):
        pass


def test_a_dead_pid_on_this_host_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = tmp_path / "r"
    _write_claim(run, socket.gethostname(), dead.pid)
    assert "gone" in read_claim(run).stale_reason()
    with claim_run(run) as mine:
        assert read_claim(run).token == mine.mine.token


def test_another_hosts_claim_holds_until_its_heartbeat_expires(tmp_path):
    run = tmp_path / "r"
    _write_claim(run, "some-other-node", 4242, age_s=5)  # a live heartbeat on a host we cannot see
    with pytest.raises(RunClaimed) as e:
        claim_run(run, expiry_s=60)
    assert "some-other-node" in str(e.value)
    os.utime(run / CLAIM_NAME, (time.time() - 61, time.time() - 61))  # heartbeat lapsed
    assert "heartbeat" in read_claim(run).stale_reason(expiry_s=60)
    with claim_run(run, expiry_s=60) as mine:
        assert read_claim(run).token == mine.mine.token


@pytest.mark.slow
def test_a_waiting_claimer_gets_the_run_when_the_owner_releases(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys,time; from divrob.runs.claim import claim_run\n"
         f"c = claim_run({str(run)!r}); print('held', flush=True); time.sleep(1.5); c.release()"],
        stdout=subprocess.PIPE, text=True, env=_env())
    assert holder.stdout.readline().strip() == "held"
    t0 = time.monotonic()
    with claim_run(run, wait_s=20):
        assert time.monotonic() - t0 < 15
    holder.wait(timeout=20)


def test_the_heartbeat_renews_and_a_lost_claim_is_noticed(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    with claim_run(run, heartbeat_s=0.1) as mine:
        path = run / CLAIM_NAME
        os.utime(path, (0, 0))
        deadline = time.monotonic() + 5
        while path.stat().st_mtime < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.stat().st_mtime > time.time() - 10  # the heartbeat thread touched it
        path.unlink()  # someone judged us dead and took it over
        _write_claim(run, "elsewhere", 1)
        deadline = time.monotonic() + 5
        while not mine.lost and time.monotonic() < deadline:
            time.sleep(0.05)
        assert mine.lost
    assert read_claim(run).host == "elsewhere"  # releasing never removes someone else's claim


RACE = """
import sys, time
from divrob.runs.claim import RunClaimed, claim_run
start = float(sys.argv[2])
while time.time() < start:
    pass
try:
    c = claim_run(sys.argv[1])
except RunClaimed:
    print("refused")
else:
    print("won")
    time.sleep(1.0)
"""


@pytest.mark.slow
def test_eight_processes_racing_for_a_stale_claim_give_one_winner(tmp_path):
    run = tmp_path / "r"
    _write_claim(run, "dead-node", 1, age_s=3600)  # stale: every racer tries to take it over
    start = time.time() + 3.0
    procs = [subprocess.Popen([sys.executable, "-c", RACE, str(run), str(start)], stdout=subprocess.PIPE,
                              text=True, env=_env()) for _ in range(8)]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(outs) == ["refused"] * 7 + ["won"], outs


RECIPE = """
[study]
name = "race"
downstream = "camtrap-sim"
archs = ["resnet18"]
seeds = [0, 1, 2]
finetune = { epochs = 2, batch_size = 64, lr = 1e-3, image_size = 16, workers = 0 }

[[distribution]]
name = "scratch"
"""

DEMO = """
[demo]
shapes_classes = 6
shapes_per_class = 24
shapes_size = 16
camtrap_images = 100
camtrap_species = 4
camtrap_size = 16
"""


def _divrob(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "divrob", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=_env(), **kw)


@pytest.mark.slow
def test_two_concurrent_study_runs_train_every_run_exactly_once(tmp_path):
    ws = tmp_path / "ws"
    subprocess.run([sys.executable, "-m", "divrob", "init", str(ws)], check=True, env=_env(), capture_output=True)
    cfg = ws / "divrob.toml"
    text = cfg.read_text()
    cfg.write_text(text[: text.index("[demo]")].replace("threads = 0", "threads = 1").replace("num_workers = 2", "num_workers = 0") + DEMO)
    recipe = tmp_path / "race.toml"
    recipe.write_text(RECIPE)
    # the data exists before the race (generation is not what this test is about)
    first = subprocess.run([sys.executable, "-m", "divrob", "study", "plan", str(recipe), "-w", str(ws)],
                           env=_env(), capture_output=True, text=True)
    assert first.returncode == 0, first.stdout + first.stderr

    a = _divrob("study", "run", str(recipe), "-w", str(ws))
    deadline = time.monotonic() + 120
    while not list((ws / "runs").glob(f"*/{CLAIM_NAME}")) and a.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # A is training its first run
    b = _divrob("study", "run", str(recipe), "-w", str(ws))
    out_a, _ = a.communicate(timeout=1500)
    out_b, _ = b.communicate(timeout=1500)
    assert a.returncode == 0 and b.returncode == 0, out_a + out_b
    assert "Traceback" not in out_a + out_b

    runs = sorted(p for p in (ws / "runs").iterdir() if (p / "spec.json").exists())
    assert len(runs) == 3
    for run in runs:
        log = (run / "log.txt").read_text()
        assert log.count("finetune: resnet18 on") == 1, log  # trained by one process, once
        events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
        assert sorted(e["epoch"] for e in events) == [1, 2]
        assert json.loads((run / "status.json").read_text())["state"] == "finished"
        assert not (run / CLAIM_NAME).exists()

    def trained(out: str) -> int:
        line = next(x for x in out.splitlines() if x.startswith("3 runs: "))
        return int(line.split("3 runs: ")[1].split(" trained")[0])

    assert trained(out_a) + trained(out_b) == 3, out_a + out_b
    assert "left to another process" in out_b and "which is training it" in out_b, out_b  # B found A training
    left = [x.split()[1] for x in out_b.splitlines() if x.startswith("left ")]
    assert left and all(any(r.name == x for r in runs) for x in left)
