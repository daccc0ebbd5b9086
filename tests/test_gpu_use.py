"""Jobs sample their own GPUs through NVML into their status, and `jobs ls` shows it. NVML cannot
run here (no GPU, no driver), so these tests put a fake `pynvml` module in sys.modules: it
answers like NVML for four GPUs; everything around it (status files, the store, the CLI) is real."""

from __future__ import annotations

import sys
import types

import pytest
from typer.testing import CliRunner

import divrob.devices as devices
from divrob.cli import app
from divrob.runs.rundir import RunDir
from divrob.workspace import init_workspace

MIB = 1024 * 1024


def fake_nvml(fail: bool = False) -> types.ModuleType:
    m = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    def init():
        if fail:
            raise NVMLError("NVML Shared Library Not Found")

    gpus = {i: (10.0 * (i + 1), (i + 1) * 1000 * MIB) for i in range(4)}  # index → (util %, bytes used)
    m.NVMLError = NVMLError
    m.nvmlInit = init
    m.nvmlDeviceGetCount = lambda: len(gpus)
    m.nvmlDeviceGetHandleByIndex = lambda i: gpus[i]
    m.nvmlDeviceGetHandleByUUID = lambda u: gpus[int(u.rsplit("-", 1)[1])]
    m.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=h[0], memory=0)
    m.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=h[1], total=80000 * MIB, free=0)
    return m


@pytest.fixture
def nvml(monkeypatch):
    monkeypatch.setattr(devices, "_nvml_ready", None)
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml())


def test_samples_only_the_gpus_the_job_was_given(nvml, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,2")
    assert devices.gpu_use() == (25.0, 5000)  # mean of 20% and 30%; 2000 + 3000 MiB
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-fake-3")
    assert devices.gpu_use() == (40.0, 4000)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert devices.gpu_use() == (25.0, 10000)  # all four


def test_no_nvml_or_a_broken_one_is_no_sample_and_no_error(monkeypatch):
    monkeypatch.setattr(devices, "_nvml_ready", None)
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not installed: import fails
    assert devices.gpu_use() == (None, None)
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(fail=True))
    assert devices.gpu_use() == (None, None)


def test_a_cuda_runs_progress_carries_its_gpu_use_into_jobs_ls(nvml, monkeypatch, tmp_path):
    from divrob.dispatch.jobs import upsert_jobs
    from divrob.dispatch.kinds import make_noop_jobs
    from divrob.runs.status import read_status
    from divrob.store.db import write_connection

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    ws = init_workspace(tmp_path / "ws")
    (job,) = make_noop_jobs(ws, 1, "s")
    cpu = RunDir(ws.runs / job.job_id)  # a CPU run: nothing sampled
    cpu.set_progress(phase="finetune", epoch=1, epochs=2)
    assert read_status(cpu.status_path).progress.gpu_util is None
    rd = RunDir(ws.runs / job.job_id, sample_gpus=True)
    rd.set_progress(phase="finetune", epoch=1, epochs=2, step=3, steps_per_epoch=10)
    p = read_status(rd.status_path).progress
    assert (p.gpu_util, p.gpu_mem) == (10.0, 1000)
    job.state, job.progress = "running", p
    with write_connection(ws.db_path) as con:  # the manager copies a running job's progress into its row
        upsert_jobs(con, [job])
    # wide enough for every column whole (COLUMNS, not console.width: setting the width pins it for
    # every later test, since monkeypatch restores it by setting it again)
    res = CliRunner().invoke(app, ["jobs", "ls", "-w", str(ws.root)], env={"COLUMNS": "240"})
    assert res.exit_code == 0, res.output
    assert "10% 1.0G" in res.output  # the gpu column: utilisation, memory in GiB (1000 MiB)


def test_schema_4_store_gains_the_gpu_columns_and_the_provenance_table(tmp_path):
    import duckdb

    from divrob.dispatch.jobs import Job, load_jobs, upsert_jobs
    from divrob.runs.status import Progress
    from divrob.store.db import SCHEMA_VERSION, write_connection

    db = tmp_path / "v4.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute("INSERT INTO meta VALUES ('schema_version', '4')")
    con.execute("""CREATE TABLE jobs (
        job_id VARCHAR PRIMARY KEY, kind VARCHAR, study VARCHAR, label VARCHAR, deps VARCHAR,
        params VARCHAR, executor VARCHAR, state VARCHAR, attempts INTEGER, slot VARCHAR, pid INTEGER,
        external_id VARCHAR, folder VARCHAR, reason VARCHAR, log_tail VARCHAR, phase VARCHAR,
        epoch INTEGER, step BIGINT, images_per_s DOUBLE, queued DOUBLE, started DOUBLE, ended DOUBLE,
        updated DOUBLE, epochs INTEGER, steps_per_epoch BIGINT, progress_updated DOUBLE)""")
    con.execute("INSERT INTO jobs (job_id, kind, state) VALUES ('old', 'run', 'finished')")
    con.close()
    with write_connection(db) as con:
        assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
        (old,) = load_jobs(con)
        assert old.job_id == "old" and old.progress.gpu_util is None
        upsert_jobs(con, [Job("new", "run", state="running", progress=Progress(gpu_util=55.5, gpu_mem=2048))])
        assert con.execute("SELECT count(*) FROM provenance").fetchone()[0] == 0
    with write_connection(db) as con:
        new = {j.job_id: j for j in load_jobs(con)}["new"]
    assert (new.progress.gpu_util, new.progress.gpu_mem) == (55.5, 2048)
