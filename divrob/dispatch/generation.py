"""The first stage of a study whose sources must be generated: generate jobs through the
study's executor, waited for, before manifests can be built and runs planned."""

from __future__ import annotations

import time
from typing import Any

from divrob.errors import DivrobError
from divrob.progress import SILENT, Reporter
from divrob.store.db import write_connection
from divrob.workspace import Workspace


def run_generations(ws: Workspace, study: str, gens: list[dict[str, Any]], executor: str,
                    opts: dict[str, Any], reporter: Reporter = SILENT) -> None:
    """Queue one generate job per pending generation and serve them; raise if any did not finish."""
    from divrob.dispatch.jobs import ACTIVE, Job, live_manager, load_jobs, upsert_jobs, wake
    from divrob.dispatch.scheduler import make_manager
    from divrob.dispatch.study import follow, job_states
    from divrob.sources.generators import generation_job_id

    ids = [generation_job_id(g) for g in gens]
    now = time.time()
    with write_connection(ws.db_path) as con:
        stored = {j.job_id: j for j in load_jobs(con, ids=ids)}
        rows = [Job(jid, "generate", study, f"generate {g['generator']}", (), g, executor, queued=now)
                for jid, g in zip(ids, gens) if not (jid in stored and stored[jid].state in ACTIVE)]
        upsert_jobs(con, rows)
    wake(ws)
    reporter.log(f"generating {', '.join(g['generator'] for g in gens)} first ({executor} executor)")
    counts = make_manager(ws, executor, opts, reporter).run()
    if not counts and live_manager(ws, executor):  # a detached scheduler serves the queue
        follow(ws, ids, reporter)
    for jid, job in job_states(ws, ids).items():
        if job.state != "finished":
            raise DivrobError(
                f"generation job {jid} is {job.state}: {job.reason or 'no reason recorded'}; "
                f"see `divrob jobs logs {jid}`, then run the study again (generation resumes)"
            )
