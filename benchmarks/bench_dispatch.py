"""Scheduling overhead of the local executor: N no-op jobs (each writes its run dir: status, one
epoch event) through the slot workers, with the manager's batched ingest into DuckDB.

    OMP_NUM_THREADS=1 python benchmarks/bench_dispatch.py [--jobs 200] [--slots 2] [--epochs 1]

The last line is jobs per second (target: >= 20 on 2 cores).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=1)
    args = ap.parse_args()

    from divrob.dispatch.jobs import load_jobs, upsert_jobs
    from divrob.dispatch.kinds import make_noop_jobs
    from divrob.dispatch.scheduler import make_manager
    from divrob.store.db import read_connection, write_connection
    from divrob.workspace import init_workspace

    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp:
        ws = init_workspace(Path(tmp) / "ws")
        t0 = time.perf_counter()
        jobs = make_noop_jobs(ws, args.jobs, "bench", epochs=args.epochs)
        with write_connection(ws.db_path) as con:
            upsert_jobs(con, jobs)
        t1 = time.perf_counter()
        counts = make_manager(ws, "local", {"cpu_slots": args.slots}).run()
        t2 = time.perf_counter()
        with read_connection(ws.db_path) as con:
            done = sum(j.state == "finished" for j in load_jobs(con))
            epochs = con.execute("SELECT count(*) FROM epochs").fetchone()[0]
        assert done == args.jobs and epochs == args.jobs * args.epochs * 2, (counts, done, epochs)
        print(f"queued {args.jobs} no-op jobs in {t1 - t0:.2f}s; ran them on {args.slots} slots in {t2 - t1:.2f}s "
              f"(worker start-up included); {epochs} epoch rows ingested")
        print(f"{args.jobs / (t2 - t1):.1f} jobs/s")


if __name__ == "__main__":
    main()
