"""divrob against a real single-node SLURM cluster: slurmctld, slurmd, slurmdbd on MariaDB and
munge, as tests/slurm/start_cluster.sh configures them (.ci/run starts it; the `cluster` fixture
starts it too where it may). Only where this machine cannot run a cluster (not root, or SLURM not
installed) are these tests skipped, with the reason in pytest's summary.

The runs are real training runs (a tiny iWildCam-WILDS tree read by `wilds`, MobileNetV3-Small,
one CPU thread each) or no-op jobs where only the protocol matters. The slow cases run at the
same time: the `long_runs` fixture starts them first (a run that needs several 3-minute time
limits, a job killed at its limit without a result, and the uninterrupted reference run), the
quick tests run meanwhile, and the last two tests wait for the long runs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from divrob.dispatch.jobs import Job, load_jobs, upsert_jobs
from divrob.dispatch.kinds import make_noop_jobs
from divrob.dispatch.manager import Manager
from divrob.dispatch.sacct import run_command
from divrob.dispatch.scheduler import start_detached
from divrob.dispatch.slurm import SubmititBackend
from divrob.runs.rundir import RunDir
from divrob.store.db import read_connection, write_connection
from divrob.workspace import open_workspace

sys.path.insert(0, str(Path(__file__).parent))
from test_iwildcam import iwildcam_workspace, write_iwildcam  # noqa: E402

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
START_CLUSTER = REPO / "tests" / "slurm" / "start_cluster.sh"
COUNTS = {"train": 32, "id_val": 2, "id_test": 2, "val": 2, "test": 2}  # 96 training images: 12 steps of 8
LONG_TRAINING_S = 160  # the long run trains this long (calibrated): more than 2 windows of 50-80 s
QUICK_NICE = 10  # the quick tests' runs yield the CPU to the long run, whose speed sets its length
WORKSPACES: list[Path] = []  # every workspace of this module: its SLURM jobs are cancelled at the end


# ---- the cluster ----------------------------------------------------------------------------------

def _cluster_problem() -> str | None:
    for cmd in (["sinfo", "-h", "-o", "%t"], ["sacct", "-X", "-n", "-S", "now-1minutes"]):
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as e:
            return f"`{cmd[0]}`: {e}"
        if done.returncode != 0:
            return f"`{cmd[0]}`: {(done.stderr or done.stdout).strip()[-300:]}"
        if cmd[0] == "sinfo" and not re.search(r"^(idle|mix|alloc)", done.stdout, re.M):
            return f"no usable node (sinfo says {done.stdout.split()})"
    return None


@pytest.fixture(scope="module")
def cluster():
    problem = _cluster_problem()
    if problem is None:
        return
    if os.geteuid() != 0:
        pytest.skip(f"no SLURM cluster answers here ({problem}) and starting one needs root: "
                    f"run `sudo {START_CLUSTER}` first")
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        pytest.skip(f"no SLURM cluster answers here ({problem}) and SLURM is not installed (Debian: slurm-wlm "
                    f"slurmdbd munge mariadb-server)")
    done = subprocess.run(["bash", str(START_CLUSTER)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{START_CLUSTER} failed:\n{done.stdout}\n{done.stderr}"
    assert _cluster_problem() is None


@pytest.fixture(scope="module", autouse=True)
def cancel_leftovers():
    yield
    for root in WORKSPACES:  # a failed test must not leave jobs on the cluster
        try:
            with read_connection(root / "divrob.duckdb") as con:
                ids = [j.external_id for j in load_jobs(con, states=("queued", "running")) if j.external_id]
        except Exception:  # noqa: BLE001 - best effort
            continue
        if ids:
            subprocess.run(["scancel", *ids], capture_output=True)


# ---- helpers ------------------------------------------------------------------------------------

def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", **extra}


def _divrob_cmd(*args: str, nice: int = QUICK_NICE) -> list[str]:
    # the cluster runs a job at the nice value of whoever submitted it (PropagatePrioProcess=1)
    return ["nice", "-n", str(nice), sys.executable, "-m", "divrob", *args]


def divrob(*args: str, timeout: float = 600, nice: int = QUICK_NICE, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(_divrob_cmd(*args, nice=nice), capture_output=True, text=True, timeout=timeout,
                          env=_env(**env), cwd=REPO)


def workspace(root: Path, *, epochs: int, seeds=(0,), image_size: int = 32, time_min: int = 10,
              warning_lead_s: int = 90, name: str = "s"):
    """A workspace with a tiny iWildCam tree, SLURM settings for the test cluster, and a recipe
    (returned) training MobileNetV3-Small from scratch on it."""
    ws = iwildcam_workspace(root, write_iwildcam(root / "wilds", counts=COUNTS))
    text = ws.config_path.read_text()
    for key, value in {"threads": 1, "gpus_per_run": 0, "cpus_per_gpu": 1, "time_min": time_min, "poll_s": 2,
                       "warning_lead_s": warning_lead_s}.items():
        text, n = re.subn(rf"^{key} = \S+", f"{key} = {value}", text, count=1, flags=re.M)
        assert n == 1, key
    ws.config_path.write_text(text)
    recipe = root / f"{name}.toml"
    recipe.write_text(f"""
[study]
name = "{name}"
downstream = "iwildcam"
archs = ["mobilenet_v3_small"]
seeds = {list(seeds)}
finetune = {{ epochs = {epochs}, batch_size = 8, lr = 1e-3, image_size = {image_size} }}

[[distribution]]
name = "scratch"
""")
    WORKSPACES.append(ws.root)
    return open_workspace(ws.root), recipe


def jobs(ws) -> dict[str, Job]:
    with read_connection(ws.db_path) as con:
        return {j.job_id: j for j in load_jobs(con)}


def wait_for(predicate, timeout: float, every: float = 1.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def slurm_state(external_id: str) -> str:
    """What sacct says of a job, or squeue while accounting has not heard of it yet."""
    base = external_id.split("_")[0]
    for cmd in (["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", base],
                ["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T", "-j", base]):
        states = dict(line.split("|", 1) for line in run_command(cmd).splitlines() if "|" in line)
        if external_id in states:
            return states[external_id].split()[0]
    raise AssertionError(f"SLURM does not know job {external_id}")


def events(ws, run_id: str) -> list[dict]:
    return RunDir(ws.runs / run_id).events()


def metrics(evs: list[dict]) -> list[tuple]:
    return [(e["phase"], e["epoch"], e["metrics"]) for e in evs]


def arrays_submitted(ws) -> set[str]:
    return {p.name.split("_")[0] for p in (ws.root / "logs" / "submitit").iterdir() if p.is_dir()}


def queue(ws, new_jobs) -> None:
    with write_connection(ws.db_path) as con:
        upsert_jobs(con, new_jobs)


# ---- the slow cases, started first ---------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def slow_cases_first(request, cluster):
    """Start the slow cases before the first test of this module, when any of them is selected."""
    if any("long_runs" in item.fixturenames for item in request.session.items):
        request.getfixturevalue("long_runs")


@pytest.fixture(scope="module")
def long_runs(cluster, tmp_path_factory):
    t0 = time.monotonic()
    out: dict = {}
    # A job that runs into its limit without stopping (a no-op job sleeps; it cannot stop at a step):
    # SLURM kills it (TIMEOUT, no result) and divrob must resubmit it.
    root = tmp_path_factory.mktemp("timeout-noop")
    ws, _ = workspace(root, epochs=1, time_min=3)
    noop = make_noop_jobs(ws, 1, "noop", executor="slurm", epochs=6, sleep=45)
    queue(ws, noop)
    start_detached(ws, "slurm", {})
    out["noop"] = (ws, noop[0].job_id)

    # The speed of this machine, to size a run that needs several 3-minute limits.
    root = tmp_path_factory.mktemp("calibrate")
    ws, recipe = workspace(root, epochs=4)
    done = divrob("study", "run", str(recipe), "-w", str(ws.root), "-e", "inline", nice=0)
    assert done.returncode == 0, done.stdout + done.stderr
    (run_id,) = [p.name for p in ws.runs.iterdir()]
    times = [e["time"] for e in events(ws, run_id)]
    per_epoch = (times[-1] - times[0]) / (len(times) - 1)
    epochs = max(20, min(1500, math.ceil(LONG_TRAINING_S / per_epoch)))

    # The run under 3-minute limits, warned 100 s before each (so it gets 50-80 s per start), and
    # the same run uninterrupted, inline, at the same time.
    root = tmp_path_factory.mktemp("timeouts")
    ws, recipe = workspace(root, epochs=epochs, time_min=3, warning_lead_s=100, name="long")
    done = divrob("study", "run", str(recipe), "-w", str(ws.root), "-e", "slurm", "--detach", nice=0)
    assert done.returncode == 0, done.stdout + done.stderr
    ref_ws, ref_recipe = workspace(tmp_path_factory.mktemp("reference"), epochs=epochs, name="long")
    reference = subprocess.Popen(_divrob_cmd("study", "run", str(ref_recipe), "-w", str(ref_ws.root), "-e", "inline",
                                             nice=5), env=_env(), cwd=REPO, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
    out.update(long=ws, reference=(ref_ws, reference), epochs=epochs, per_epoch=per_epoch, t0=t0)
    yield out
    if reference.poll() is None:
        reference.kill()
        reference.wait()


# ---- quick cases ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_without_accounting_nothing_is_submitted(tmp_path):
    ws, recipe = workspace(tmp_path, epochs=1)
    conf = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")).read_text()
    no_accounting = tmp_path / "slurm.conf"
    no_accounting.write_text(re.sub(r"^AccountingStorage\w*=.*$", "", conf, flags=re.M)
                             + "\nAccountingStorageType=accounting_storage/none\n")
    done = divrob("study", "run", str(recipe), "-w", str(ws.root), "-e", "slurm", SLURM_CONF=str(no_accounting))
    assert done.returncode == 1, done.stdout + done.stderr
    text = " ".join((done.stdout + done.stderr).split())
    assert "SLURM accounting does not answer" in text and "slurmdbd" in text and "Traceback" not in text
    assert not [p for p in (ws.root / "logs" / "submitit").iterdir() if p.is_dir()]  # no sbatch happened


@pytest.mark.slow
def test_an_array_of_runs_gives_the_metrics_of_inline(tmp_path):
    ws, recipe = workspace(tmp_path / "slurm", epochs=2, seeds=(0, 1, 2), image_size=16)
    inline_ws, inline_recipe = workspace(tmp_path / "inline", epochs=2, seeds=(0, 1, 2), image_size=16)
    inline = subprocess.Popen(_divrob_cmd("study", "run", str(inline_recipe), "-w", str(inline_ws.root), "-e",
                                          "inline"), env=_env(), cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    done = divrob("study", "run", str(recipe), "-w", str(ws.root), "-e", "slurm")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 runs: 3 trained, 0 already finished, 0 failed" in done.stdout
    got = {j.job_id: j for j in jobs(ws).values() if j.kind == "run"}
    assert len({j.external_id.split("_")[0] for j in got.values()}) == 1  # one sbatch: an array
    scripts = list((ws.root / "logs" / "submitit").glob("*/*_submission.sh"))
    assert "#SBATCH --array=0-2%3" in scripts[0].read_text()
    assert all(slurm_state(j.external_id) == "COMPLETED" for j in got.values())

    assert inline.wait(timeout=600) == 0, inline.stdout.read()
    for run_id in got:
        assert [e["epoch"] for e in events(ws, run_id)] == [1, 2]
        assert metrics(events(ws, run_id)) == metrics(events(inline_ws, run_id))
    res = divrob("results", "-w", str(ws.root), "--study", "s", "--format", "csv")
    assert res.returncode == 0 and len(res.stdout.strip().splitlines()) == 1 + 3 * 2


@pytest.mark.slow
def test_big_arrays_are_split_and_polled_with_one_sacct_call(tmp_path):
    ws, _ = workspace(tmp_path, epochs=1)
    noop = make_noop_jobs(ws, 6, "split", executor="slurm", epochs=1, sleep=3)
    queue(ws, noop)
    cfg = ws.config.slurm.model_copy(update={"array_parallelism": 4})
    backend = SubmititBackend(ws, "slurm", cfg)
    assert backend.max_array == 4  # the test cluster's MaxArraySize, read from scontrol
    calls = []

    def recording(cmd):  # the real commands, counted
        calls.append(cmd)
        return run_command(cmd)

    backend.poller.run = recording
    counts = Manager(ws, backend, poll_s=0.2).run()
    assert counts == {"finished": 6, "failed": 0, "cancelled": 0}
    arrays = sorted({j.external_id.split("_")[0] for j in jobs(ws).values()})
    assert len(arrays) == 2
    scripts = sorted(p.read_text() for p in (ws.root / "logs" / "submitit").glob("*/*_submission.sh"))
    assert [re.search(r"--array=(\S+)", s).group(1) for s in scripts] == ["0-2%2", "0-2%2"]
    sacct = [c for c in calls if c[0] == "sacct"]
    assert sacct and all(c[-1] == ",".join(arrays) for c in sacct[:1])  # both arrays in one call
    assert len(sacct) < 15  # backed off: 6 jobs over ~10 s, not one call per job per tick


@pytest.mark.slow
def test_polling_goes_on_through_squeue_when_accounting_is_down(tmp_path, monkeypatch):
    ws, _ = workspace(tmp_path, epochs=1)
    noop = make_noop_jobs(ws, 2, "down", executor="slurm", epochs=2, sleep=2)
    queue(ws, noop)
    backend = SubmititBackend(ws, "slurm", ws.config.slurm)  # accounting answers when divrob submits ...
    conf = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")).read_text()
    broken = tmp_path / "slurm.conf"  # ... then slurmdbd stops answering (a port nothing listens on)
    broken.write_text(re.sub(r"^AccountingStorageHost=.*$", "AccountingStorageHost=localhost\nAccountingStoragePort=1",
                             conf, flags=re.M))
    monkeypatch.setenv("SLURM_CONF", str(broken))
    counts = Manager(ws, backend, poll_s=0.2).run()
    assert counts == {"finished": 2, "failed": 0, "cancelled": 0}
    assert backend.poller.source == "squeue" and "Connection refused" in backend.poller.error
    assert all([e["epoch"] for e in events(ws, j.job_id)] == [1, 2] for j in noop)


@pytest.mark.slow
def test_jobs_cancel_reaches_scancel(tmp_path):
    ws, recipe = workspace(tmp_path, epochs=1000, image_size=16)
    done = divrob("study", "run", str(recipe), "-w", str(ws.root), "-e", "slurm", "--detach")
    assert done.returncode == 0, done.stdout + done.stderr
    job = wait_for(lambda: next((j for j in jobs(ws).values() if j.kind == "run" and j.state == "running"), None),
                   120, what="the run to start")
    wait_for(lambda: RunDir(ws.runs / job.job_id).events(), 120, what="a first epoch")
    done = divrob("jobs", "cancel", job.job_id[:8], "-w", str(ws.root))
    assert done.returncode == 0 and "cancelling 1 job" in done.stdout, done.stdout + done.stderr
    wait_for(lambda: jobs(ws)[job.job_id].state == "cancelled", 60, what="the job to show cancelled")
    assert slurm_state(job.external_id) == "CANCELLED"
    assert json.loads(RunDir(ws.runs / job.job_id).status_path.read_text())["state"] == "cancelled"
    listing = divrob("jobs", "ls", "-w", str(ws.root))
    assert "cancelled" in listing.stdout and "1 cancelled" in listing.stdout


@pytest.mark.slow
def test_a_job_with_no_window_to_work_fails_with_that_reason(tmp_path):
    # warned 140 s before a 3-minute limit: SLURM sends the warning 10-40 s after each start
    ws, recipe = workspace(tmp_path, epochs=1000, image_size=16, time_min=3, warning_lead_s=140)
    done = divrob("study", "run", str(recipe), "-w", str(ws.root), "-e", "slurm")
    assert done.returncode == 1, done.stdout + done.stderr
    (job,) = [j for j in jobs(ws).values() if j.kind == "run"]
    assert job.state == "failed" and job.attempts == 2
    assert job.reason.startswith("no window to work: on its last 2 starts the job stopped")
    assert "no window to work" in " ".join(done.stdout.split())
    log = RunDir(ws.runs / job.job_id).log_path.read_text()
    assert log.count("stopped on SIGUSR2") == 2


@pytest.mark.slow
def test_a_killed_manager_reattaches_without_submitting_again(tmp_path):
    ws, recipe = workspace(tmp_path, epochs=20, seeds=(0, 1), image_size=16)
    manager = subprocess.Popen(_divrob_cmd("study", "run", str(recipe), "-w", str(ws.root), "-e", "slurm"),
                               env=_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        running = wait_for(lambda: (lambda js: js if len(js) == 2 and all(j.state == "running" for j in js) else None)(
            [j for j in jobs(ws).values() if j.kind == "run"]), 180, what="both runs to start")
    finally:
        manager.send_signal(signal.SIGKILL)
        manager.wait()
    before = {j.job_id: j.external_id for j in running}
    assert all(slurm_state(ext) in ("RUNNING", "COMPLETED") for ext in before.values())
    done = divrob("study", "run", str(recipe), "-w", str(ws.root), "-e", "slurm")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 runs: 2 trained" in done.stdout
    after = {j.job_id: j for j in jobs(ws).values() if j.kind == "run"}
    assert {k: j.external_id for k, j in after.items()} == before and all(j.attempts == 1 for j in after.values())
    assert arrays_submitted(ws) == {next(iter(before.values())).split("_")[0]}  # one sbatch in all
    for run_id in before:
        assert [e["epoch"] for e in events(ws, run_id)] == list(range(1, 21))


@pytest.mark.slow
def test_a_submission_the_store_never_heard_of_is_followed_not_repeated(tmp_path):
    ws, _ = workspace(tmp_path, epochs=1)
    noop = make_noop_jobs(ws, 2, "once", executor="slurm", epochs=1, sleep=4)
    for job in noop:
        job.queued = time.time()
    queue(ws, noop)
    # a manager submits them, then dies before it writes their job ids to the store
    submitted = [dataclasses.replace(j) for j in noop]
    SubmititBackend(ws, "slurm", ws.config.slurm).start(submitted)
    assert all(j.external_id is None for j in jobs(ws).values())
    counts = Manager(ws, SubmititBackend(ws, "slurm", ws.config.slurm), poll_s=0.2).run()  # the next manager
    assert counts == {"finished": 2, "failed": 0, "cancelled": 0}
    assert {j.job_id: j.external_id for j in jobs(ws).values()} == {j.job_id: j.external_id for j in submitted}
    assert arrays_submitted(ws) == {submitted[0].external_id.split("_")[0]}


# ---- the slow cases, waited for ---------------------------------------------------------------------

@pytest.mark.slow
def test_a_job_killed_at_its_time_limit_is_resubmitted_and_resumes(long_runs):
    ws, job_id = long_runs["noop"]
    job = wait_for(lambda: (lambda j: j if j.state in ("finished", "failed", "cancelled") else None)(jobs(ws)[job_id]),
                   600, every=5, what="the no-op job killed at its limit to finish")
    assert job.state == "finished" and job.attempts == 2, job.reason
    log = RunDir(ws.runs / job_id).log_path.read_text()
    assert "reached its time limit (3 min) without stopping in time; resubmitted (time-out 1 of at most 20)" in log
    assert [e["epoch"] for e in events(ws, job_id)] == [1, 2, 3, 4, 5, 6]


@pytest.mark.slow
def test_a_run_needing_several_time_limits_resumes_exactly(long_runs):
    ws, epochs = long_runs["long"], long_runs["epochs"]
    (job_id,) = [p.name for p in ws.runs.iterdir()]
    job = wait_for(lambda: (lambda j: j if j.state in ("finished", "failed", "cancelled") else None)(
        jobs(ws).get(job_id)), 900, every=5, what="the long run to finish")
    wall = time.monotonic() - long_runs["t0"]
    log = RunDir(ws.runs / job_id).log_path.read_text()
    assert job.state == "finished", f"{job.reason}\n{log[-3000:]}"
    requeues = re.findall(r"requeued: SLURM job \S+ stopped on time-limit warning (\d+) s after it started", log)
    assert len(requeues) >= 2 and job.attempts == len(requeues) + 1, log[-3000:]
    assert all(int(w) >= 45 for w in requeues)  # each start had its window
    assert [e["epoch"] for e in events(ws, job_id)] == list(range(1, epochs + 1))  # one row per epoch
    ref_ws, reference = long_runs["reference"]
    assert reference.wait(timeout=900) == 0, reference.stdout.read()
    assert metrics(events(ws, job_id)) == metrics(events(ref_ws, job_id))
    res = divrob("results", "-w", str(ws.root), "--study", "long", "--format", "csv")
    assert len(res.stdout.strip().splitlines()) == 1 + epochs
    print(f"\nlong run: {epochs} epochs at {long_runs['per_epoch']:.2f} s each, {len(requeues)} time-outs, "
          f"{wall:.0f} s since the slow cases started")
