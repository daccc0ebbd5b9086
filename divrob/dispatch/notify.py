"""Alerts: one line when a study finishes, a run fails (not on preemption: that requeues) or
stalls, sent to `[notify] command` (an argv, the message appended; never a shell) and/or POSTed as
JSON to `[notify] webhook`. A failing alert is logged, never raised: the queue goes on."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable

from divrob.workspace import NotifyConfig


class Notifier:
    def __init__(self, cfg: NotifyConfig, log: Callable[[str], None]):
        self.cfg, self.log = cfg, log

    @property
    def enabled(self) -> bool:
        return bool(self.cfg.command or self.cfg.webhook)

    def send(self, event: str, study: str | None, message: str) -> None:
        """`event`: finished | failed | stalled."""
        if not self.enabled:
            return
        if self.cfg.command:
            try:
                out = subprocess.run([*self.cfg.command, message], stdin=subprocess.DEVNULL, capture_output=True,
                                     timeout=self.cfg.timeout_s, check=False)
                if out.returncode != 0:
                    self.log(f"notify: {self.cfg.command[0]} exited {out.returncode}: "
                             f"{out.stderr.decode(errors='replace').strip()[:200]}")
            except (OSError, subprocess.SubprocessError) as e:
                self.log(f"notify: cannot run {self.cfg.command[0]}: {e}")
        if self.cfg.webhook:
            body = json.dumps({"text": message, "event": event, "study": study, "host": socket.gethostname(),
                               "time": time.time()}).encode()
            req = urllib.request.Request(self.cfg.webhook, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=self.cfg.timeout_s) as resp:
                    resp.read()
            except (OSError, ValueError) as e:  # URLError, HTTPError, timeouts are OSErrors
                self.log(f"notify: POST to the webhook failed: {e}")


def failed_message(study: str | None, label: str, job_id: str, reason: str | None) -> str:
    return f"divrob: run failed in {study or 'no study'}: {label or job_id} ({job_id[:12]}): {reason or 'no reason'}"


def stalled_message(study: str | None, label: str, job_id: str, minutes: float, requeued: bool) -> str:
    then = "; stopped and requeued" if requeued else ""
    return (f"divrob: run stalled in {study or 'no study'}: {label or job_id} ({job_id[:12]}): "
            f"no heartbeat for {minutes:.0f} min{then}")


def study_message(study: str, counts: dict[str, int]) -> str:
    parts = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "nothing run"
    return f"divrob: study {study} finished: {parts}"
