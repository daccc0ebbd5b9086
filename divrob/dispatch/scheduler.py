"""The detached scheduler: `python -m divrob.dispatch.scheduler WORKSPACE EXECUTOR OPTIONS_JSON`.

Started in its own session (it survives the terminal that started it), with its output in
`<workspace>/logs/scheduler-<executor>.log`; it serves the executor's queue in the store until it
is empty, then exits. Its pid is in `<workspace>/jobs/manager-<executor>.json`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from divrob.dispatch.jobs import live_manager, logs_dir, wake
from divrob.errors import DivrobError, UsageError
from divrob.progress import SILENT, Reporter
from divrob.workspace import EXECUTORS, Workspace

SLURM_OVERRIDES = ("partition", "account", "qos", "gpus_per_run", "nodes_per_run", "cpus_per_gpu", "mem_gb",
                   "time_min", "array_parallelism")


def make_backend(ws: Workspace, executor: str, opts: dict[str, Any]):
    if executor == "local":
        from divrob.dispatch.local import LocalBackend, local_slots

        return LocalBackend(ws, local_slots(ws.config.executor, opts.get("slots_per_gpu"), opts.get("cpu_slots")))
    if executor in ("slurm", "submitit-local"):
        from divrob.dispatch.slurm import SubmititBackend

        over = {k: opts[k] for k in SLURM_OVERRIDES if opts.get(k) not in (None, "")}
        cfg = ws.config.slurm.model_copy(update=over)
        return SubmititBackend(ws, executor, cfg, parallelism=opts.get("cpu_slots") if executor != "slurm" else None)
    raise UsageError(f"--executor {executor!r}: choose from {', '.join(EXECUTORS)}")


def make_manager(ws: Workspace, executor: str, opts: dict[str, Any], reporter: Reporter = SILENT):
    from divrob.dispatch.manager import Manager

    cfg = ws.config.executor
    return Manager(ws, make_backend(ws, executor, opts), on_lost=opts.get("on_lost") or cfg.on_lost,
                   max_requeues=cfg.max_requeues, reporter=reporter, stall_s=cfg.stall_minutes * 60,
                   on_stall=cfg.on_stall)


def start_detached(ws: Workspace, executor: str, opts: dict[str, Any], wait_s: float = 10.0) -> dict:
    """Start a detached scheduler (or wake the live one); returns its pid-file record."""
    info = live_manager(ws, executor)
    if info is not None:
        wake(ws)
        return info
    log = open(logs_dir(ws) / f"scheduler-{executor}.log", "ab")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "divrob.dispatch.scheduler", str(ws.root), executor, json.dumps(opts)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, cwd=str(ws.root),
        )
    finally:
        log.close()
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        info = live_manager(ws, executor)
        if info is not None:
            return info
        if proc.poll() is not None:
            if proc.returncode == 0:  # it found nothing to do, or another scheduler took the queue
                return live_manager(ws, executor) or {"pid": proc.pid, "exited": 0}
            raise DivrobError(f"the {executor} scheduler exited with status {proc.returncode}; "
                              f"see {logs_dir(ws) / f'scheduler-{executor}.log'}")
        time.sleep(0.05)
    return {"pid": proc.pid}


def main(argv: list[str]) -> int:
    from divrob.progress import LogReporter, log_to
    from divrob.workspace import open_workspace

    log_to(sys.stdout)
    ws_root, executor, opts = argv[0], argv[1], json.loads(argv[2] if len(argv) > 2 else "{}")
    ws = open_workspace(ws_root)
    reporter = LogReporter()
    reporter.log(f"scheduler pid {os.getpid()} serving the {executor} queue of {ws.root}")
    counts = make_manager(ws, executor, opts, reporter).run(detached=True)
    reporter.log(f"queue empty: {counts or 'another scheduler holds the queue'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
