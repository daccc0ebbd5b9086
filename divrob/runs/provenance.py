"""A run's provenance: what ran, on what, at what cost. The job writes it into its run directory
(`provenance.json`); the manager ingests it (table `provenance`); `divrob show RUN` prints it.

The recipe a run was planned from is noted beside it at planning time (`recipe.json`: path and
hash), so the job can record the git state of the repository that holds the recipe. Fields that
cannot be known (no git, no GPU, not under SLURM) are None. Time per phase adds up over attempts
(a resumed run): `seconds` of wall time in the phase and `gpu_seconds` = seconds x GPUs used.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from divrob.errors import DivrobError
from divrob.fileio import write_json_atomic

PROVENANCE_NAME = "provenance.json"
RECIPE_NAME = "recipe.json"
SLURM_ENV = {"slurm_job_id": "SLURM_JOB_ID", "slurm_array_job_id": "SLURM_ARRAY_JOB_ID",
             "slurm_array_task_id": "SLURM_ARRAY_TASK_ID"}


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def note_recipe(run_dir: Path, recipe) -> None:
    """At planning time: which recipe file (path, content hash) this run was planned from."""
    note = {"path": str(Path(recipe.path).resolve()), "hash": recipe.hash, "study": recipe.study.name}
    if read_json(Path(run_dir) / RECIPE_NAME) != note:
        write_json_atomic(Path(run_dir) / RECIPE_NAME, note)


def _git(cwd: Path, *args: str) -> bytes | None:
    try:
        out = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):  # no git, not a repository, or too slow
        return None
    return out.stdout


def git_state(path: str | Path | None) -> dict[str, Any]:
    """commit, dirty flag and the sha256 of `git diff HEAD` of the repository holding `path`."""
    out: dict[str, Any] = {"git_repo": None, "git_commit": None, "git_dirty": None, "git_diff_hash": None}
    if not path:
        return out
    where = Path(path).parent if Path(path).suffix else Path(path)
    if not where.is_dir():
        return out
    top = _git(where, "rev-parse", "--show-toplevel")
    commit = _git(where, "rev-parse", "HEAD")
    if top is None or commit is None:
        return out
    diff = _git(where, "diff", "HEAD", "--binary") or b""
    out.update(git_repo=top.decode().strip(), git_commit=commit.decode().strip(), git_dirty=bool(diff),
               git_diff_hash=hashlib.sha256(diff).hexdigest()[:16] if diff else None)
    return out


def environment(device=None, world_size: int = 1) -> dict[str, Any]:
    """Versions, host, GPUs and SLURM ids of the process that runs the job."""
    import divrob

    env: dict[str, Any] = {"divrob_version": divrob.__version__, "python": platform.python_version(),
                           "torch": None, "torchvision": None, "cuda": None, "cudnn": None,
                           "gpu_model": None, "gpu_count": 0, "host": socket.gethostname()}
    for name in ("torch", "torchvision"):
        try:
            env[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    torch = sys.modules.get("torch")  # a job that trains has loaded it; a no-op job never does
    if torch is not None:
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        if device is not None and getattr(device, "type", None) == "cuda":
            env["gpu_model"] = torch.cuda.get_device_name(device)
            env["gpu_count"] = max(1, int(world_size or 1))
    env.update({k: os.environ.get(v) for k, v in SLURM_ENV.items()})
    return env


class ProvenanceWriter:
    """Kept by the job (rank 0 writes): `start` once per attempt, `phase` around each phase,
    `manifest` when the manifest is read, `finish` at the end."""

    def __init__(self, run_dir: Path, writer: bool = True):
        self.path = Path(run_dir) / PROVENANCE_NAME
        self.writer = writer
        self.data = read_json(self.path)

    def _save(self) -> None:
        if self.writer:
            write_json_atomic(self.path, self.data)

    def start(self, spec, device=None, world_size: int = 1) -> None:
        recipe = read_json(self.path.parent / RECIPE_NAME)
        now = time.time()
        self.data.update(environment(device, world_size))
        self.data.update(git_state(recipe.get("path")))
        self.data.update(run_id=self.path.parent.name, recipe_path=recipe.get("path"), recipe_hash=recipe.get("hash"),
                         manifest_id=spec.manifest_id, started=self.data.get("started") or now, ended=None,
                         attempts=int(self.data.get("attempts") or 0) + 1)
        self.data.setdefault("phases", {})
        self._save()

    def manifest(self, rows: int, unreadable: int | None) -> None:
        self.data.update(manifest_rows=int(rows), unreadable=None if unreadable is None else int(unreadable))
        self._save()

    def phase(self, name: str, started: float, ended: float) -> None:
        phases = self.data.setdefault("phases", {})
        p = phases.setdefault(name, {"started": started, "seconds": 0.0, "gpu_seconds": 0.0})
        seconds = max(0.0, ended - started)
        p["ended"] = ended
        p["seconds"] = round(p["seconds"] + seconds, 3)
        p["gpu_seconds"] = round(p["gpu_seconds"] + seconds * int(self.data.get("gpu_count") or 0), 3)
        self.data["gpu_seconds"] = round(sum(q["gpu_seconds"] for q in phases.values()), 3)
        self._save()

    def finish(self) -> None:
        self.data["ended"] = time.time()
        self._save()


def read_provenance(run_dir: Path) -> dict[str, Any]:
    return read_json(Path(run_dir) / PROVENANCE_NAME)


class RunRefError(DivrobError):
    """A run (or group of runs) named on the command line that is not there, or not one."""

    exit_code = 2


def find_run(runs_root: Path, ref: str) -> Path:
    """A run directory by run id or unique prefix; a clear error otherwise."""
    ref = ref.strip()
    if not ref:
        raise RunRefError("give a run id (or a unique prefix of one); list them with `divrob jobs ls`")
    if (Path(runs_root) / ref / "spec.json").exists():
        return Path(runs_root) / ref
    found = sorted(p for p in Path(runs_root).glob(f"{glob_escape(ref)}*") if (p / "spec.json").exists())
    if not found:
        raise RunRefError(f"no run {ref!r} in {runs_root}; list them with `divrob jobs ls` or `divrob results`")
    if len(found) > 1:
        raise RunRefError(f"{ref!r} matches {len(found)} runs ({', '.join(p.name for p in found[:5])}); "
                          "give more characters")
    return found[0]


def glob_escape(text: str) -> str:
    import glob

    return glob.escape(text)


def run_record(run_dir: Path) -> dict[str, Any]:
    """What `divrob show` prints: the run's id, state, spec and provenance (empty when the run
    has not started, or ran before provenance was recorded)."""
    from divrob.runs.status import read_status

    run_dir = Path(run_dir)
    status = read_status(run_dir / "status.json")
    return {"run_id": run_dir.name, "state": status.state, "reason": status.reason,
            "spec": read_json(run_dir / "spec.json"), "recipe": read_json(run_dir / RECIPE_NAME) or None,
            "provenance": read_provenance(run_dir)}


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """{"pretrain": {"epochs": 90}} → {"pretrain.epochs": 90}: nested records as one flat table."""
    if not isinstance(d, dict):
        return {prefix: d} if prefix else {}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out
