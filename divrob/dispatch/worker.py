"""A local slot worker: `python -m divrob.dispatch.worker WORKSPACE SLOT`.

It reads one job per line (JSON) on stdin, runs it, and answers JSON lines on its original
stdout; everything the job prints goes to stderr, which the scheduler points at the slot's log.
One worker serves many jobs, so the per-job cost is a pipe round trip, not a Python start-up.
SIGTERM cancels the job in hand (KeyboardInterrupt: the run dir records `cancelled`).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"cancelled (signal {signal.Signals(signum).name})")


def main(argv: list[str]) -> int:
    ws_root, slot = argv[0], argv[1]
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # job output (including C-level writes) goes to the slot log, not the protocol
    sys.stdout = sys.stderr
    signal.signal(signal.SIGTERM, _interrupt)

    from divrob.dispatch.kinds import run_job
    from divrob.progress import LogReporter, log_to
    from divrob.workspace import open_workspace

    log_to(sys.stderr)
    ws = open_workspace(ws_root)

    def send(**msg) -> None:
        proto.write(json.dumps(msg) + "\n")

    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            msg = json.loads(line)
            job_id = msg["job_id"]
            send(event="started", job_id=job_id, pid=os.getpid())
            ok, error = True, None
            try:
                run_job(ws, job_id, msg["kind"], msg.get("params") or {}, LogReporter(f"{slot} {job_id}: "))
            except KeyboardInterrupt as e:  # cancelled: report it and serve the next job
                ok, error = False, f"cancelled: {e}"
            except BaseException as e:  # one failing job never stops the worker
                ok, error = False, f"{type(e).__name__}: {e}"
                traceback.print_exc()
            send(event="ended", job_id=job_id, ok=ok, error=error)
    except KeyboardInterrupt:  # cancelled while idle
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
