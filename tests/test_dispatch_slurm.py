"""The SLURM backend's pieces that need no cluster (the sbatch script, array splitting, reading
sacct/squeue, the back-off, the requeue policy), and the whole job path for real through
submitit's LocalExecutor. tests/test_slurm_cluster.py runs it against a real SLURM cluster."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from submitit.slurm.slurm import _make_sbatch_string

from divrob.dispatch.jobs import Job, load_jobs, upsert_jobs
from divrob.dispatch.kinds import make_noop_jobs
from divrob.dispatch.manager import Manager
from divrob.dispatch.requeue import LOST, NO_WINDOW_S, PREEMPTION, TIME_OUT, Ending, History, Limits, decide
from divrob.dispatch.sacct import CommandFailed, JobInfo, StatePoller, expand_job_id, max_array_size, parse_table
from divrob.dispatch.slurm import SubmititBackend, array_chunks, slurm_parameters
from divrob.errors import DivrobError
from divrob.runs.rundir import RunDir
from divrob.runs.spec import RunSpec
from divrob.store.db import read_connection, write_connection
from divrob.train.config import finetune_config
from divrob.workspace import init_workspace

sys.path.insert(0, str(Path(__file__).parent))
from test_iwildcam import iwildcam_workspace, write_iwildcam  # noqa: E402


@pytest.fixture
def ws(tmp_path):
    return init_workspace(tmp_path / "ws")


def queue(ws, jobs):
    with write_connection(ws.db_path) as con:
        upsert_jobs(con, jobs)


def states(ws):
    with read_connection(ws.db_path) as con:
        return {j.job_id: j for j in load_jobs(con)}


# ---- what divrob asks sbatch for --------------------------------------------------------------

def test_sbatch_script_carries_the_settings(ws):
    cfg = ws.config.slurm.model_copy(update=dict(partition="gpu", account="lab", gpus_per_run=2, mem_gb=64,
                                                 time_min=120, array_parallelism=3, warning_lead_s=300,
                                                 extra={"constraint": "h100"}, setup=["module load cuda"]))
    text = _make_sbatch_string(command="python -m x", folder=ws.root / "%j", map_count=5, **slurm_parameters(cfg))
    for line in ("--array=0-4%3", "--partition=gpu", "--account=lab", "--gpus-per-node=2", "--ntasks-per-node=2",
                 "--mem=64GB", "--time=120", "--constraint=h100", "module load cuda", "--signal=USR2@300"):
        assert line in text, line


def test_arrays_split_at_the_cluster_limit_and_share_the_parallelism():
    assert array_chunks(3, 1001, 64) == [(0, 3, 3)]
    assert array_chunks(10, 4, 6) == [(0, 4, 2), (4, 7, 2), (7, 10, 2)]  # 4+3+3 tasks, %N summing to 6
    chunks = array_chunks(2500, 1000, 64)
    assert [hi - lo for lo, hi, _ in chunks] == [834, 833, 833] and sum(p for *_, p in chunks) == 64
    assert array_chunks(5, 2, 1) == [(0, 2, 1), (2, 4, 1), (4, 5, 1)]  # never %0
    config = "MaxArraySize            = 4\nSchedulerParameters     = sched_interval=5\n"
    assert max_array_size(config) == 4
    assert max_array_size("MaxArraySize = 1001\nSchedulerParameters = bf_continue,max_array_tasks=200\n") == 200
    assert max_array_size("MaxArraySize = 0\n") == 1  # arrays disabled: one job per sbatch


# ---- what SLURM answers -----------------------------------------------------------------------

def test_sacct_and_squeue_tables_by_job_id():
    sacct = "12_0|COMPLETED|61\n12_1|CANCELLED by 0|3\n12_[2-4,7%2]|PENDING|0\n12_0.batch|COMPLETED|61\n13|TIMEOUT|182\n"
    got = parse_table(sacct, with_elapsed=True)
    assert got["12_0"] == JobInfo("COMPLETED", 61) and got["12_1"].state == "CANCELLED"
    assert [k for k in got if got[k].state == "PENDING"] == ["12_2", "12_3", "12_4", "12_7"]
    assert got["13"] == JobInfo("TIMEOUT", 182) and "12_0.batch" not in got
    assert parse_table("14_3|RUNNING\n", with_elapsed=False) == {"14_3": JobInfo("RUNNING", None)}
    assert expand_job_id("15+0") == [] and expand_job_id("16") == ["16"]
    assert JobInfo("REQUEUED").active and not JobInfo("REQUEUED").running and JobInfo("COMPLETING").running


class ScriptedCommands:
    """Stands in for sacct/squeue (no cluster here; test_slurm_cluster.py runs the real ones):
    records each command and answers from the current table."""

    def __init__(self):
        self.calls: list[list[str]] = []
        self.sacct: str | Exception = ""
        self.squeue = ""

    def __call__(self, cmd):
        self.calls.append(cmd)
        answer = self.sacct if cmd[0] == "sacct" else self.squeue
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_one_sacct_per_poll_backs_off_and_falls_back_to_squeue():
    run, now = ScriptedCommands(), [0.0]
    poller = StatePoller(2.0, 30.0, run=run, clock=lambda: now[0])
    ids = ["20_0", "20_1", "20_2", "21"]
    run.sacct = "20_[0-2]|PENDING|0\n21|RUNNING|5\n"
    assert poller.due() and poller.poll(ids)["20_1"] == JobInfo("PENDING", 0)
    assert len(run.calls) == 1 and run.calls[0][-1] == "20,21"  # one call, array ids by their array
    waits = []
    for _ in range(6):  # nothing changes: 2 s, then 4, 8, 16, 30, 30
        waits.append(poller.next_at - now[0])
        now[0] = poller.next_at
        poller.poll(ids)
    assert waits == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    run.sacct = "20_[0-2]|PENDING|0\n21|COMPLETED|50\n"
    now[0] = poller.next_at
    poller.poll(ids)
    assert poller.next_at - now[0] == 2.0  # a change: look again soon
    run.sacct, run.squeue = CommandFailed("`sacct -X` failed: Problem talking to the database"), "20_0|RUNNING\n"
    run.calls.clear()
    got = poller.poll(ids)
    assert [c[0] for c in run.calls] == ["sacct", "squeue"] and got == {"20_0": JobInfo("RUNNING")}
    assert poller.source == "squeue" and "database" in poller.error
    poller.kick()
    assert poller.due()


# ---- what divrob does when a job ends without its result ------------------------------------------

LIMITS = Limits(max_requeues=2, max_timeouts=3, time_min=3, warning_lead_s=150)


def test_preemptions_are_free_time_outs_and_losses_are_limited():
    h = History()
    for _ in range(5):
        assert decide(h, Ending(PREEMPTION, "preempted"), LIMITS).requeue
    for k in range(3):
        d = decide(h, Ending(TIME_OUT, "job 7 stopped on time-limit warning", window_s=100, progressed=True), LIMITS)
        assert d.requeue and f"time-out {k + 1} of at most 3" in d.reason
    d = decide(h, Ending(TIME_OUT, "job 8 stopped", window_s=100), LIMITS)
    assert not d.requeue and "timed out 4 times" in d.reason and "max_num_timeout = 3" in d.reason
    h = History()
    assert decide(h, Ending(LOST, "job 9 ended NODE_FAIL without a result"), LIMITS).requeue
    assert decide(h, Ending(LOST, "job 10 ended NODE_FAIL without a result"), LIMITS).requeue
    d = decide(h, Ending(LOST, "job 11 ended OUT_OF_MEMORY without a result"), LIMITS)
    assert not d.requeue and d.reason.startswith("lost: job 11") and "max_requeues = 2" in d.reason
    assert (h.preemptions, h.timeouts, h.lost) == (0, 0, 3)


def test_no_window_to_work_fails_with_that_reason():
    h = History()
    short = Ending(TIME_OUT, "stopped", window_s=2, progressed=True)
    assert 2 < NO_WINDOW_S < 95
    assert decide(h, short, LIMITS).requeue
    assert decide(h, Ending(TIME_OUT, "stopped", window_s=95, progressed=True), LIMITS).requeue  # a real window
    assert decide(h, short, LIMITS).requeue
    d = decide(h, Ending(TIME_OUT, "TIMEOUT", window_s=190, progressed=False), LIMITS)  # ran, saved nothing
    assert not d.requeue and d.reason.startswith("no window to work")
    assert "stopped 2 s after it started; then ran 190 s without writing a checkpoint" in d.reason
    assert "time limit 3 min, warning 150 s before it" in d.reason and "warning_lead_s" in d.reason


# ---- the whole path, for real, through submitit's LocalExecutor ------------------------------------

@pytest.mark.slow
def test_submitit_local_runs_the_same_path_for_real(ws):
    jobs = make_noop_jobs(ws, 2, "s", executor="submitit-local", epochs=2) + \
        make_noop_jobs(ws, 1, "s", executor="submitit-local", first_seed=5, fail_at=1)
    queue(ws, jobs)
    cfg = ws.config.slurm.model_copy(update={"gpus_per_run": 0})
    counts = Manager(ws, SubmititBackend(ws, "submitit-local", cfg, parallelism=3)).run()
    assert counts == {"finished": 2, "failed": 1, "cancelled": 0}
    got = states(ws)
    assert all(got[j.job_id].external_id for j in jobs)
    assert "failing at epoch 1" in got[jobs[-1].job_id].reason
    with read_connection(ws.db_path) as con:
        assert con.execute("SELECT count(*) FROM epochs").fetchone()[0] == 2 * 2 * 2


@pytest.mark.slow
def test_a_job_warned_as_it_starts_stops_is_resubmitted_then_fails_for_no_window(tmp_path):
    """LocalExecutor sends the warning (USR2) `warning_lead_s` before its time limit: here 10 s
    after each start. The training job stops at its next step, divrob resubmits it once, and the
    second stop without a window fails the run with that reason."""
    ws = iwildcam_workspace(tmp_path, write_iwildcam(tmp_path / "wilds"))
    ws.config_path.write_text(ws.config_path.read_text().replace("threads = 0", "threads = 1"))
    spec = RunSpec(arch="mobilenet_v3_small", seed=0, downstream="iwildcam", finetune=finetune_config(
        "mobilenet_v3_small", {"epochs": 500, "batch_size": 8, "image_size": 16}))
    RunDir.for_spec(ws.runs, spec)
    queue(ws, [Job(spec.run_id, "run", "s", "tiny", executor="submitit-local")])
    cfg = ws.config.slurm.model_copy(update={"gpus_per_run": 0, "time_min": 1, "warning_lead_s": 50})
    counts = Manager(ws, SubmititBackend(ws, "submitit-local", cfg, parallelism=1)).run()
    assert counts == {"finished": 0, "failed": 1, "cancelled": 0}
    job = states(ws)[spec.run_id]
    assert job.attempts == 2 and job.reason.startswith("no window to work: on its last 2 starts the job stopped")
    rd = RunDir(ws.runs / spec.run_id)
    status = json.loads(rd.status_path.read_text())  # status.json, as every reader sees it
    assert status["state"] == "failed" and status["reason"] == job.reason
    log = rd.log_path.read_text()
    assert log.count("stopped on SIGUSR2") == 2 and "resubmitted (time-out 1 of at most 20)" in log
    assert "resuming at epoch" in log  # the second start went on from the first one's checkpoint
    assert not (ws.root / "logs" / "submitit" / "requeues.json").read_text().strip("{} \n")  # forgotten


def test_settings_that_leave_no_window_or_no_slurm_are_clear_errors(ws, monkeypatch, tmp_path):
    cfg = ws.config.slurm.model_copy(update={"time_min": 2, "warning_lead_s": 120})
    with pytest.raises(DivrobError, match=r"warning_lead_s = 120 is not shorter than the time limit"):
        SubmititBackend(ws, "submitit-local", cfg)
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine without SLURM's commands
    with pytest.raises(DivrobError, match=r"sbatch, sacct, squeue, scancel, scontrol, srun not found on PATH"):
        SubmititBackend(ws, "slurm", ws.config.slurm)
