"""A run is trained by one process at a time: the claim file `claim.json` in its run directory.

The claim names its owner (host, pid, the pid's start time, a random token) and is created
atomically: written under a temporary name and `link()`ed onto `claim.json`, which fails when a
claim exists (O_CREAT|O_EXCL where the filesystem has no hard links). Its modification time is
the owner's heartbeat, touched every `HEARTBEAT_S` by a daemon thread while the owner trains.

A claim is stale, and taken over, when its owner is gone: on the same host its pid no longer
runs (or runs another program), on any host (a shared filesystem) its heartbeat is older than
`EXPIRY_S`. A take-over renames the stale file aside and checks it took the claim it judged
stale, so two processes taking over one stale claim cannot both win.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from divrob.errors import RunError

CLAIM_NAME = "claim.json"
HEARTBEAT_S = 15.0
EXPIRY_S = 120.0  # 8 missed heartbeats: a stopped or cut-off owner; generous for clock skew across hosts


@dataclass(frozen=True)
class Claim:
    host: str
    pid: int
    token: str
    since: float
    proc_start: str | None = None  # the pid's start time on its host (guards against pid reuse)
    heartbeat: float | None = None  # the file's mtime when read

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"

    def stale_reason(self, now: float | None = None, expiry_s: float = EXPIRY_S) -> str | None:
        """Why the owner is gone, or None while it may still be training."""
        now = time.time() if now is None else now
        if self.host == socket.gethostname():
            start = _proc_start(self.pid)
            if not pid_alive(self.pid):
                return f"its owner (pid {self.pid}) is gone"
            if self.proc_start and start and start != self.proc_start:
                return f"its owner (pid {self.pid}) is gone (the pid now runs another process)"
        if self.heartbeat is not None and now - self.heartbeat > expiry_s:
            return f"its owner's last heartbeat is {now - self.heartbeat:.0f} s old (> {expiry_s:.0f} s)"
        return None


class RunClaimed(RunError):
    """The run is being trained by another live process."""

    def __init__(self, run_id: str, owner: Claim):
        self.run_id = run_id
        self.owner = owner
        super().__init__(f"run {run_id} is being trained by {owner.describe()}; left to it")


def claim_path(run_dir: Path) -> Path:
    return Path(run_dir) / CLAIM_NAME


def read_claim(run_dir: Path) -> Claim | None:
    """The claim on a run, or None. An unreadable claim (a creator cut off mid-write on a
    filesystem without links) counts as an unknown owner whose heartbeat is the file's mtime."""
    return _read(claim_path(run_dir))


def _read(path: Path) -> Claim | None:
    try:
        mtime = path.stat().st_mtime
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        d = json.loads(text)
        return Claim(host=str(d["host"]), pid=int(d["pid"]), token=str(d["token"]), since=float(d["since"]),
                     proc_start=d.get("proc_start"), heartbeat=mtime)
    except (ValueError, KeyError, TypeError):
        return Claim(host="?", pid=-1, token=f"unreadable:{mtime}", since=mtime, heartbeat=mtime)


def pid_alive(pid: int | None) -> bool:
    """Whether a process of this host runs under `pid` (a zombie, exited but not reaped, is gone)."""
    if not pid or int(pid) <= 0:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _proc_start(pid: int) -> str | None:
    """The start time of a process (clock ticks since boot, Linux), None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return stat.rsplit(")", 1)[1].split()[19]
    except IndexError:
        return None


class RunClaim:
    """A claim this process holds: a context manager that keeps the heartbeat and releases."""

    def __init__(self, path: Path, mine: Claim, heartbeat_s: float = HEARTBEAT_S):
        self.path = path
        self.mine = mine
        self.lost = False  # someone judged us dead and took the run over
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(heartbeat_s,), daemon=True,
                                        name=f"divrob-claim-{path.parent.name[:8]}")
        self._thread.start()

    def _beat(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            if not self.touch():
                return

    def touch(self) -> bool:
        """Renew the heartbeat; False (and `lost`) when the claim is no longer ours."""
        held = _read(self.path)
        if held is None or held.token != self.mine.token:
            self.lost = True
            return False
        try:
            os.utime(self.path)
        except FileNotFoundError:
            self.lost = True
            return False
        return True

    def release(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        held = _read(self.path)
        if held is not None and held.token == self.mine.token:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "RunClaim":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def claim_run(run_dir: Path, *, wait_s: float = 0.0, expiry_s: float = EXPIRY_S,
              heartbeat_s: float = HEARTBEAT_S) -> RunClaim:
    """Claim a run for this process, taking over a stale claim. While another live process
    holds it, wait up to `wait_s` (for a requeued job whose old owner's heartbeat must lapse),
    then raise RunClaimed."""
    run_dir = Path(run_dir)
    path = claim_path(run_dir)
    mine = Claim(host=socket.gethostname(), pid=os.getpid(), token=secrets.token_hex(8), since=time.time(),
                 proc_start=_proc_start(os.getpid()))
    deadline = time.monotonic() + wait_s
    while True:
        if _create(path, mine):
            return RunClaim(path, mine, heartbeat_s)
        held = _read(path)
        if held is None:
            continue  # released meanwhile: try again
        if held.stale_reason(expiry_s=expiry_s) is not None:
            _take_over(path, held)
            continue
        if time.monotonic() >= deadline:
            raise RunClaimed(run_dir.name, held)
        time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))


def _create(path: Path, mine: Claim) -> bool:
    """Create the claim file atomically; False if one exists."""
    body = json.dumps({k: v for k, v in asdict(mine).items() if k != "heartbeat"}, sort_keys=True) + "\n"
    tmp = path.with_name(f".{path.name}.{mine.token}.tmp")
    try:
        tmp.write_text(body)
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        except OSError:  # no hard links here: exclusive create (a reader may see it empty for a moment)
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w") as f:
                f.write(body)
            return True
    finally:
        tmp.unlink(missing_ok=True)


def _take_over(path: Path, seen: Claim) -> None:
    """Remove the stale claim `seen`; a claim made meanwhile by someone else is put back."""
    aside = path.with_name(f".{path.name}.{secrets.token_hex(8)}.stale")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    try:
        moved = _read(aside)
        if moved is not None and moved.token != seen.token:
            try:  # not the claim we judged stale: give it back
                os.link(aside, path)
            except OSError:
                pass
    finally:
        aside.unlink(missing_ok=True)
