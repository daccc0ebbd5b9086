"""The SLURM executor against submitit's own mocked sbatch/sacct (submitit.slurm.test_slurm),
and the same code path for real through submitit's LocalExecutor."""

from __future__ import annotations

import pytest

import submitit
from submitit.core import submission, utils
from submitit.core.job_environment import SignalHandler
from submitit.slurm import slurm as submitit_slurm
from submitit.slurm.test_slurm import mock_requeue, mocked_slurm

from divrob.dispatch.jobs import load_jobs, upsert_jobs
from divrob.dispatch.kinds import make_noop_jobs
from divrob.dispatch.manager import Manager
from divrob.dispatch.slurm import DivrobJob, SubmititBackend
from divrob.runs.rundir import RunDir
from divrob.store.db import read_connection, write_connection
from divrob.workspace import init_workspace


@pytest.fixture
def ws(tmp_path):
    return init_workspace(tmp_path / "ws")


def queue(ws, jobs):
    with write_connection(ws.db_path) as con:
        upsert_jobs(con, jobs)


def states(ws):
    with read_connection(ws.db_path) as con:
        return {j.job_id: j for j in load_jobs(con)}


def slurm_manager(ws, **cfg):
    base = dict(partition="gpu", account="lab", gpus_per_run=2, mem_gb=64, time_min=120, array_parallelism=3,
                poll_s=0.01, extra={"constraint": "h100"}, setup=["module load cuda"])
    config = ws.config.slurm.model_copy(update={**base, **cfg})
    return Manager(ws, SubmititBackend(ws, "slurm", config), poll_s=0.0, flush_s=0.0)


def run_on_mock_cluster(mock, mgr, job_ids, final="COMPLETED"):
    """What SLURM would do: run each array task's pickled job, then report it ended."""
    for jid in job_ids:
        h = mgr.backend.tracked[jid]
        with mock.job_context(h.job_id):
            try:
                submission.process_job(h.paths.folder)
            except Exception:  # a failing job: submitit has written its error to the result pickle
                pass
    mock.job_sacct.clear()
    for jid in job_ids:
        mock.set_job_state(mgr.backend.tracked[jid].job_id, final)


def tick_until_idle(mgr, n=50):
    for _ in range(n):
        mgr.tick()
        if mgr.idle():
            break
    mgr.flush()


def test_job_array_states_ingest_and_reattach(ws):
    jobs = make_noop_jobs(ws, 3, "s", executor="slurm", epochs=2) + \
        make_noop_jobs(ws, 1, "s", executor="slurm", first_seed=9, epochs=2, fail_at=1)
    queue(ws, jobs)
    ids = [j.job_id for j in jobs]
    with mocked_slurm() as mock:
        mgr = slurm_manager(ws)
        mgr.refresh()
        mgr.tick()  # one sbatch: a job array
        got = states(ws)
        ext = [got[i].external_id for i in ids]
        assert sorted(ext) == [f"12_{k}" for k in range(4)]
        assert all(got[i].state == "running" for i in ids)  # the mocked sbatch starts them at once
        text = "\n".join(p.read_text() for p in (ws.root / "logs" / "submitit").glob("**/*.sh"))
        for line in ("--array=0-3%3", "--partition=gpu", "--account=lab", "--gpus-per-node=2",
                     "--ntasks-per-node=2", "--mem=64GB", "--time=120", "--constraint=h100", "module load cuda",
                     "--signal=USR2@90"):
            assert line in text, line

        # divrob restarts: a new manager re-attaches by the job ids in the store
        submitit_slurm.SlurmJob.watcher.clear()
        mgr2 = slurm_manager(ws)
        mgr2.refresh()
        assert set(mgr2.backend.tracked) == set(ids)
        assert [mgr2.backend.tracked[i].job_id for i in ids] == ext
        run_on_mock_cluster(mock, mgr2, ids)
        tick_until_idle(mgr2)
    got = states(ws)
    assert [got[i].state for i in ids] == ["finished"] * 3 + ["failed"]
    assert "failing at epoch 1" in got[ids[-1]].reason
    with read_connection(ws.db_path) as con:
        assert con.execute("SELECT count(*) FROM epochs").fetchone()[0] == 3 * 2 * 2


def test_lost_and_cancelled_slurm_jobs(ws):
    jobs = make_noop_jobs(ws, 2, "s", executor="slurm")
    queue(ws, jobs)
    with mocked_slurm() as mock:
        mgr = slurm_manager(ws, on_lost="fail")
        mgr.refresh()
        mgr.tick()
        mock.job_sacct.clear()
        mock.set_job_state(mgr.backend.tracked[jobs[0].job_id].job_id, "NODE_FAIL")
        mock.set_job_state(mgr.backend.tracked[jobs[1].job_id].job_id, "CANCELLED")
        mgr.cancelling.add(jobs[1].job_id)
        tick_until_idle(mgr)
    got = states(ws)
    assert got[jobs[0].job_id].state == "failed" and "NODE_FAIL" in got[jobs[0].job_id].reason
    assert got[jobs[1].job_id].state == "cancelled"


def test_checkpointable_job_requeues_itself(ws):
    (job,) = make_noop_jobs(ws, 1, "s", executor="slurm")
    with mocked_slurm():
        ex = submitit.SlurmExecutor(folder=ws.root / "logs" / "submitit" / "%j", max_num_timeout=1)
        ex.update_parameters(time=60)
        sjob = ex.submit(DivrobJob(), str(ws.root), job.job_id, "noop", {})
    delayed = utils.DelayedSubmission.load(sjob.paths.submitted_pickle)
    handler = SignalHandler(submitit_slurm.SlurmJobEnvironment(), sjob.paths, delayed)
    with pytest.raises(SystemExit), mock_requeue(called_with=1):  # preempted: requeued, no time-out used
        handler.checkpoint_and_try_requeue(submitit.JobEnvironment._usr_sig())
    resubmitted = utils.DelayedSubmission.load(sjob.paths.submitted_pickle)
    assert isinstance(resubmitted.function, DivrobJob) and resubmitted.function.requeueing
    assert resubmitted.args == (str(ws.root), job.job_id, "noop", {})
    assert "requeued, will resume" in RunDir(ws.runs / job.job_id).log_path.read_text()


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
