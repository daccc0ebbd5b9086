"""Re-key a workspace whose manifest ids came from pandas.util.hash_pandas_object (before
content ids: see divrob.recipes.manifest) so that its finished runs are found, not redone.

A run id is a hash of the run's spec, which names its manifest, so a new manifest id means a
new run id. For every manifest whose id is not its content id this:

1. records old -> new in `manifests/rekeyed.json` (first, so an interrupted pass can finish),
2. renames the manifest's Parquet and JSON files to the new id,
3. rewrites the spec.json of each run that names the old id (atomically; the run keeps its own
   spec version: a run made under an older SPEC_VERSION stays one) and renames its directory
   to the new run id, recording `rekeyed_from`,
4. (`rekey_store`, inside the store's write transaction) moves the store rows: runs, epochs,
   study_runs, manifests and jobs.

Every step is idempotent and a pass that finds nothing to do reads only the manifests' small
JSON files, so `plan_study` runs it on every plan. A run whose status is `running` is left for
a later pass (renaming a directory under a live job would lose its writes), and so is a run
whose spec does not hash to its directory name (a spec divrob cannot recompute).
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from divrob.fileio import short_hash, write_json_atomic
from divrob.progress import SILENT, Reporter
from divrob.recipes.manifest import ID_SCHEME, REKEYED_FILE, manifest_id, read_rekeyed
from divrob.workspace import Workspace

LOCK_FILE = ".rekey.lock"


@dataclass
class Rekeyed:
    """What one pass changed (old id -> new id) and what it had to leave alone (id -> reason)."""

    manifests: dict[str, str] = field(default_factory=dict)
    runs: dict[str, str] = field(default_factory=dict)
    left: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.manifests or self.runs or self.left)


def migrate_legacy_ids(ws: Workspace, reporter: Reporter = SILENT) -> Rekeyed:
    """Re-key the workspace's legacy manifest ids and the runs that name them (see the module
    docstring). Cheap when there is nothing to do; logs one line when it changed something."""
    out = Rekeyed()
    if not ws.manifests.is_dir() or not (_legacy_manifests(ws) or read_rekeyed(ws)["manifests"]):
        return out
    with _locked(ws):
        journal = read_rekeyed(ws)
        _rekey_manifests(ws, journal, out)
        if journal["manifests"]:
            _rekey_runs(ws, journal, out)
    if out.manifests or out.runs:
        reporter.log(f"re-keyed {len(out.manifests)} manifest(s) and {len(out.runs)} run(s) from legacy "
                     f"manifest ids to content ids (old -> new in {ws.manifests / REKEYED_FILE})")
    for what, why in out.left.items():
        reporter.log(f"not re-keyed: {what}: {why}")
    return out


def _legacy_manifests(ws: Workspace) -> list[Path]:
    """Parquet files whose JSON does not say they carry a content id."""
    out = []
    for pq in sorted(ws.manifests.glob("*.parquet")):
        if pq.name.startswith("."):
            continue
        meta = _read_json(pq.with_suffix(".json"))
        if meta is None or meta.get("id_scheme") != ID_SCHEME or meta.get("manifest_id") != pq.stem:
            out.append(pq)
    return out


def _rekey_manifests(ws: Workspace, journal: dict, out: Rekeyed) -> None:
    new_of_old = journal["manifests"]
    old_of_new = {new: old for old, new in new_of_old.items()}
    for pq in _legacy_manifests(ws):
        import pandas as pd

        mid = pq.stem
        new = manifest_id(pd.read_parquet(pq))
        if new == mid:
            # a current id: stamp its JSON, or adopt the JSON an interrupted pass left under the old id
            meta = _read_json(pq.with_suffix(".json"))
            old = old_of_new.get(mid)
            if meta is None and old is not None:
                meta = _read_json(ws.manifests / f"{old}.json")
            if meta is not None:
                write_json_atomic(pq.with_suffix(".json"), meta | {"manifest_id": mid, "id_scheme": ID_SCHEME})
                if old is not None:
                    (ws.manifests / f"{old}.json").unlink(missing_ok=True)
            continue  # no JSON and no journal entry: one being written right now by build_manifest
        new_of_old[mid] = new
        _write_journal(ws, journal)
        target = ws.manifests / f"{new}.parquet"
        if target.exists():  # already rebuilt under its content id: the rows are the same
            pq.unlink()
        else:
            os.replace(pq, target)
        meta = _read_json(ws.manifests / f"{mid}.json") or {}
        if not (ws.manifests / f"{new}.json").exists():
            write_json_atomic(ws.manifests / f"{new}.json",
                              meta | {"manifest_id": new, "id_scheme": ID_SCHEME, "legacy_id": mid})
        (ws.manifests / f"{mid}.json").unlink(missing_ok=True)
        out.manifests[mid] = new


def _rekey_runs(ws: Workspace, journal: dict, out: Rekeyed) -> None:
    if not ws.runs.is_dir():
        return
    new_mids = journal["manifests"]
    for rd in sorted(p for p in ws.runs.iterdir() if p.is_dir() and not p.name.startswith(".")):
        spec = _read_json(rd / "spec.json")
        if spec is None:
            continue
        if spec.get("rekeyed_from") and spec.get("run_id") != rd.name:  # interrupted between the two steps
            _move_run(ws, rd, spec, journal, out)
            continue
        if spec.get("rekeyed_from") and journal["runs"].get(spec["rekeyed_from"]) != rd.name:
            journal["runs"][spec["rekeyed_from"]] = rd.name  # renamed, journal not yet written
            _write_journal(ws, journal)
        old_mid = spec.get("manifest_id")
        if old_mid not in new_mids:
            continue
        status = _read_json(rd / "status.json") or {}
        if status.get("state") == "running":
            out.left[f"run {rd.name}"] = "it is running; it is re-keyed by the first plan after it stops"
            continue
        identity = _stored_identity(spec, rd.name)
        if identity is None:
            out.left[f"run {rd.name}"] = "its spec.json does not hash to its directory name"
            continue
        new_run = short_hash(identity | {"manifest_id": new_mids[old_mid]})
        new_spec = spec | {"manifest_id": new_mids[old_mid], "run_id": new_run, "rekeyed_from": rd.name}
        write_json_atomic(rd / "spec.json", new_spec)
        _move_run(ws, rd, new_spec, journal, out)


def _move_run(ws: Workspace, rd: Path, spec: dict, journal: dict, out: Rekeyed) -> None:
    target = ws.runs / spec["run_id"]
    if target.exists():
        out.left[f"run {rd.name}"] = f"{target} exists too (a run redone under the new id); both are kept"
        return
    journal["runs"][spec["rekeyed_from"]] = spec["run_id"]
    _write_journal(ws, journal)
    os.rename(rd, target)
    out.runs[spec["rekeyed_from"]] = spec["run_id"]


def _stored_identity(spec: dict[str, Any], run_id: str) -> dict[str, Any] | None:
    """The identity the run's id was hashed from, rebuilt from its spec.json with its own spec
    version; None if no rebuild reproduces `run_id`.

    Two rebuilds, because either may drift from what an older divrob hashed: the current
    RunSpec's identity (which fills defaults of fields added since), and the same keys taken
    from the stored phase settings only."""
    from divrob.errors import RunError
    from divrob.runs.spec import RunSpec

    try:
        current = RunSpec.from_dict(spec, any_version=True).identity() | {"version": spec.get("version", 1)}
    except (KeyError, TypeError, ValueError, RunError):
        return None
    stored = dict(current)
    for phase in ("pretrain", "finetune"):
        if current.get(phase) is not None and isinstance(spec.get(phase), dict):
            stored[phase] = {k: v for k, v in spec[phase].items() if k in current[phase]}
    for identity in (current, stored):
        if short_hash(identity) == run_id:
            return identity
    return None


def rekey_store(con, ws: Workspace) -> None:
    """Move the store's rows from re-keyed ids to their new ids (idempotent; call inside a write
    transaction, e.g. while recording a plan). Rows already there under the new id win."""
    journal = read_rekeyed(ws)
    if not journal["manifests"] and not journal["runs"]:
        return
    done = con.execute("SELECT value FROM meta WHERE key = 'rekeyed'").fetchall()
    stamp = short_hash(journal)
    if done and done[0][0] == stamp:
        return
    for old, new in journal["manifests"].items():
        path = str(ws.manifests / f"{new}.parquet")
        _move_rows(con, "manifests", "manifest_id", old, new, extra={"path": path})
        con.execute("UPDATE study_runs SET manifest_id = ? WHERE manifest_id = ?", [new, old])
        _move_rows(con, "jobs", "job_id", f"manifest-{old}", f"manifest-{new}")
    for old, new in journal["runs"].items():
        spec = _read_json(ws.runs / new / "spec.json")
        _move_rows(con, "runs", "run_id", old, new,
                   extra={"spec": json.dumps(spec, sort_keys=True)} if spec else None)
        if spec:
            con.execute("UPDATE runs SET manifest_id = ? WHERE run_id = ?", [spec.get("manifest_id"), new])
        if con.execute("SELECT count(*) FROM epochs WHERE run_id = ?", [new]).fetchall()[0][0]:
            con.execute("DELETE FROM epochs WHERE run_id = ?", [old])
        else:
            con.execute("UPDATE epochs SET run_id = ? WHERE run_id = ?", [new, old])
        con.execute("DELETE FROM study_runs WHERE run_id = ? AND (study, distribution) IN "
                    "(SELECT study, distribution FROM study_runs WHERE run_id = ?)", [old, new])
        con.execute("UPDATE study_runs SET run_id = ? WHERE run_id = ?", [new, old])
        _move_rows(con, "jobs", "job_id", old, new)
    renames = {**{f"manifest-{o}": f"manifest-{n}" for o, n in journal["manifests"].items()}, **journal["runs"]}
    for job_id, deps in con.execute("SELECT job_id, deps FROM jobs WHERE deps IS NOT NULL").fetchall():
        old_deps = json.loads(deps or "[]")
        new_deps = [renames.get(d, d) for d in old_deps]
        if new_deps != old_deps:
            con.execute("UPDATE jobs SET deps = ? WHERE job_id = ?", [json.dumps(new_deps, sort_keys=True), job_id])
    con.execute("INSERT OR REPLACE INTO meta VALUES ('rekeyed', ?)", [stamp])


def _move_rows(con, table: str, key: str, old: str, new: str, extra: dict[str, str] | None = None) -> None:
    # table and column names come from this module, never from data
    if con.execute(f"SELECT count(*) FROM {table} WHERE {key} = ?", [new]).fetchall()[0][0]:
        con.execute(f"DELETE FROM {table} WHERE {key} = ?", [old])
        return
    sets = ", ".join([f"{key} = ?", *[f"{c} = ?" for c in (extra or {})]])
    con.execute(f"UPDATE {table} SET {sets} WHERE {key} = ?", [new, *(extra or {}).values(), old])


def _write_journal(ws: Workspace, journal: dict) -> None:
    write_json_atomic(ws.manifests / REKEYED_FILE, journal)


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


@contextmanager
def _locked(ws: Workspace) -> Iterator[None]:
    """One re-keying pass at a time per workspace (a CLI and the TUI may plan at once)."""
    import fcntl

    with open(ws.manifests / LOCK_FILE, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
