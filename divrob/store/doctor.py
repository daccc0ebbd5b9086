"""`divrob doctor`: check a workspace (the store against its run directories, stale claims,
orphan temporary files, `running` states whose process is gone, damaged runs) and, with
`fix`, repair what is safe:

- a damaged run keeps its intact events and is made resumable (`RunDir.repair_events`);
- a stale claim is removed, an orphan temporary file of a run nobody holds is deleted (elsewhere
  in the workspace only when older than an hour: a live writer may still be writing it);
- a dead `running` state is recorded as failed (`RunDir.observed`), so `study run` resumes it;
- store rows are re-ingested from their run directories (the directories are the truth), and
  rows of runs whose directory is gone are removed.

Every repair of a run happens under its claim, so a run that another process trains is left
alone (reported as in use). A store that cannot be read is reported, not rebuilt.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from divrob.runs.claim import RunClaimed, claim_run, read_claim
from divrob.runs.rundir import RunDir
from divrob.workspace import Workspace

ORPHAN_AGE_S = 3600.0  # a temporary file outside a run this old has no live writer


@dataclass
class Finding:
    kind: str  # damaged | stale claim | orphan temp file | dead running | store | store damaged
    where: str  # a run id or a path
    what: str
    fixed: str | None = None  # what --fix did


def check_workspace(ws: Workspace, fix: bool = False, now: float | None = None) -> list[Finding]:
    now = time.time() if now is None else now
    found: list[Finding] = []
    rundirs = [RunDir(p) for p in sorted(ws.runs.iterdir()) if (p / "spec.json").exists()] if ws.runs.is_dir() else []
    for rd in rundirs:
        found += _check_run(rd, fix)
    found += _orphans_outside_runs(ws, fix, now)
    found += _check_store(ws, rundirs, fix)
    return found


def _check_run(rd: RunDir, fix: bool) -> list[Finding]:
    out: list[Finding] = []
    claim = read_claim(rd.path)
    stale = claim.stale_reason() if claim is not None else None
    if claim is not None and stale is None:
        return out  # a live process trains it: nothing here is ours to judge
    if claim is not None:
        out.append(Finding("stale claim", rd.run_id, f"claimed by {claim.describe()}, but {stale}"))
    temps = [p for d in (rd.path, rd.checkpoints) if d.is_dir() for p in sorted(d.glob(".*.tmp")) if p.is_file()]
    for p in temps:
        out.append(Finding("orphan temp file", str(p), f"{p.stat().st_size:,} bytes left by a killed writer"))
    damage = rd.damage()
    if damage:
        out.append(Finding("damaged", rd.run_id, damage))
    status = rd.status()
    dead = status.state == "running" and status.host is not None and _same_host(status.host) and not _alive(status.pid)
    if dead:
        out.append(Finding("dead running", rd.run_id, f"state running, but its process (pid {status.pid}) is gone"))
    if not fix or not out:
        return out
    try:
        with claim_run(rd.path):  # takes a stale claim over; removes it on release
            for f in out:
                if f.kind == "stale claim":
                    f.fixed = "claim removed"
                elif f.kind == "orphan temp file":
                    Path(f.where).unlink(missing_ok=True)
                    f.fixed = "deleted"
                elif f.kind == "damaged":
                    f.fixed = rd.repair_events() or "nothing to repair"
                elif f.kind == "dead running":
                    reason = f"its process (pid {status.pid}) ended without recording why (killed?)"
                    rd.log(f"failed: {reason} (divrob doctor)")
                    rd.set_status("failed", reason=reason)
                    f.fixed = "marked failed: `divrob study run` resumes it"
    except RunClaimed as e:
        for f in out:
            f.fixed = None
            f.what += f" (left alone: {e.owner.describe()} took it meanwhile)"
    return out


def _same_host(host: str) -> bool:
    import socket

    return host == socket.gethostname()


def _alive(pid: int | None) -> bool:
    from divrob.runs.claim import pid_alive

    return pid_alive(pid)


def _orphans_outside_runs(ws: Workspace, fix: bool, now: float) -> list[Finding]:
    out = []
    for d in (ws.root, ws.manifests, ws.indexes, ws.figures, ws.data, ws.cache):
        if not d.is_dir():
            continue
        pattern = ".*.tmp" if d == ws.root else "**/.*.tmp"
        for p in sorted(d.glob(pattern)):
            try:
                age = now - p.stat().st_mtime
            except OSError:
                continue
            if age < ORPHAN_AGE_S:
                continue
            f = Finding("orphan temp file", str(p), f"{age / 3600:.1f} h old")
            if fix:
                import shutil

                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
                f.fixed = "deleted"
            out.append(f)
    return out


def _check_store(ws: Workspace, rundirs: list[RunDir], fix: bool) -> list[Finding]:
    import duckdb

    from divrob.store.db import StoreError, read_connection, write_connection
    from divrob.store.ingest import ingest_runs

    if not ws.db_path.exists():
        return []
    try:
        with read_connection(ws.db_path) as con:
            stored = {r[0]: (r[1], r[2]) for r in con.execute(
                "SELECT r.run_id, r.state, count(e.run_id) FROM runs r LEFT JOIN epochs e USING (run_id) "
                "GROUP BY r.run_id, r.state").fetchall()}
            orphan_rows = {r[0] for r in con.execute("SELECT DISTINCT run_id FROM epochs").fetchall()} - set(stored)
    except (duckdb.Error, StoreError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return [Finding("store damaged", str(ws.db_path), f"{first}; move it out of the workspace and run "
                        "`divrob study run RECIPE`: it rebuilds the store from the run directories")]
    out: list[Finding] = []
    stale: list[RunDir] = []
    on_disk = set()
    for rd in rundirs:
        on_disk.add(rd.run_id)
        check = rd.check_events()
        rows = sum(len(e.get("metrics", {})) for e in check.events)
        damage = rd.damage(check)
        state = "damaged" if damage else rd.status().state
        have = stored.get(rd.run_id)
        if have is None:
            continue  # a run dir of a study never planned here (or not yet ingested): not the store's
        if have != (state, rows):
            out.append(Finding("store", rd.run_id, f"the store says {have[0]} with {have[1]} epoch rows, "
                               f"the run directory {state} with {rows}"))
            stale.append(rd)
    gone = sorted((set(stored) | orphan_rows) - on_disk)
    for run_id in gone:
        out.append(Finding("store", run_id, "rows of a run whose directory is gone"))
    if fix and (stale or gone):
        with write_connection(ws.db_path) as con:
            ingest_runs(con, stale)
            for run_id in gone:
                con.execute("DELETE FROM epochs WHERE run_id = ?", [run_id])
                con.execute("DELETE FROM runs WHERE run_id = ?", [run_id])
        for f in out:
            f.fixed = "re-ingested from the run directory" if f.where in {rd.run_id for rd in stale} else "rows removed"
    return out
