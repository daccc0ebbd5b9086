"""Job bodies by kind. The local worker and the submitit callable both call `run_job`.

Nothing here imports torch at module level: a no-op job never loads it, a run job loads it
inside `execute_run`.
"""

from __future__ import annotations

import os
import time
from typing import Any

from divrob.errors import DivrobError, RunError
from divrob.progress import SILENT, Reporter
from divrob.runs.claim import EXPIRY_S, HEARTBEAT_S, claim_run
from divrob.runs.provenance import ProvenanceWriter
from divrob.runs.rundir import RunDir
from divrob.workspace import Workspace

DISPATCHED_KINDS = ("run", "noop", "generate")
JOB_CLAIM_WAIT_S = EXPIRY_S + 2 * HEARTBEAT_S


def run_job(ws: Workspace, job_id: str, kind: str, params: dict[str, Any], reporter: Reporter = SILENT) -> None:
    if kind == "run":
        from divrob.runs.execute import execute_run

        rd = RunDir(ws.runs / job_id)
        if not rd.spec_path.exists():
            raise RunError(f"run {job_id}: {rd.spec_path} is missing; plan the study again with `divrob study run`")
        # a requeued job may find its previous owner's claim (another host): wait for it to lapse
        execute_run(ws, rd.spec(), reporter, claim_wait_s=JOB_CLAIM_WAIT_S)
    elif kind == "noop":
        noop_run(ws, job_id, params)
    elif kind == "generate":
        generate(ws, params, reporter)
    else:
        raise DivrobError(f"job {job_id}: unknown job kind {kind!r}; expected one of {', '.join(DISPATCHED_KINDS)}")


def generate(ws: Workspace, params: dict[str, Any], reporter: Reporter) -> None:
    from divrob.sources.generators import generate as run_generator

    run_generator(ws, params, reporter)


def noop_run(ws: Workspace, run_id: str, params: dict[str, Any]) -> None:
    """A stand-in for training (tests and benchmarks): the same run-dir protocol as execute_run,
    with fake epochs, optional sleeps and an optional failure, and resume by recorded epochs."""
    rd = RunDir(ws.runs / run_id)
    with claim_run(rd.path, wait_s=float(params.get("claim_wait_s", JOB_CLAIM_WAIT_S))):
        if rd.is_finished:
            return
        rd.prepare_resume()
        _noop_body(rd, run_id, params)


def _noop_body(rd: RunDir, run_id: str, params: dict[str, Any]) -> None:
    epochs = int(params.get("epochs", 1))
    sleep = float(params.get("sleep", 0.0))
    fail_at = params.get("fail_at")
    rd.set_status("running", pid=os.getpid())
    prov = ProvenanceWriter(rd.path)
    prov.start(rd.spec())
    t0 = time.time()
    with rd.recording_failure():
        for epoch in range(1, epochs + 1):
            if epoch in rd.recorded_epochs("finetune"):
                continue
            if sleep:
                time.sleep(sleep)
            fixed = params.get("fail_unless") and os.path.exists(params["fail_unless"])  # a "fix" for retries
            if fail_at is not None and epoch == int(fail_at) and not fixed:
                raise RunError(f"noop run {run_id}: failing at epoch {epoch} as asked")
            score = 0.5 + 0.01 * epoch
            rd.append_epoch("finetune", epoch, {s: {"f1_macro": score, "acc": score, "n": 10} for s in ("id_test", "test")})
            rd.set_progress(phase="finetune", epoch=epoch, epochs=epochs, step=10, steps_per_epoch=10,
                            images_per_s=1000.0)
    prov.phase("finetune", t0, time.time())
    prov.finish()
    rd.set_status("finished")


def make_noop_jobs(ws: Workspace, n: int, study: str, executor: str = "local", first_seed: int = 0, **params: Any):
    """n no-op jobs with real run dirs (spec.json), for tests and the dispatch benchmark."""
    from divrob.dispatch.jobs import Job
    from divrob.runs.spec import RunSpec
    from divrob.train.config import finetune_config

    jobs = []
    for i in range(n):
        spec = RunSpec(arch="noop", seed=first_seed + i, downstream="noop",
                       finetune=finetune_config("resnet18", {"epochs": int(params.get("epochs", 1))}))
        RunDir.for_spec(ws.runs, spec)
        jobs.append(Job(spec.run_id, "noop", study, f"noop {first_seed + i}", params=dict(params), executor=executor))
    return jobs
