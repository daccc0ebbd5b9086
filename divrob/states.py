"""The vocabulary of run and job states and job kinds: one home, imported by every layer."""

from __future__ import annotations

# A run's state in its run directory (status.json) and a job's state in the store.
# `stalled`: running, its process alive, but no heartbeat for [executor] stall_minutes (a job state
# the manager sets; a run directory never says it). It still holds its slot, so it is active.
# `damaged`: a run directory whose events.jsonl fails its checks (divrob.runs.rundir.RunDir.damage);
# shown by readers, never written as a run's own state; `study run` repairs and resumes it.
STATES = ("queued", "running", "stalled", "finished", "failed", "cancelled", "damaged")
ACTIVE = ("queued", "running", "stalled")
RUNNING = ("running", "stalled")  # started and not ended
DONE = ("finished", "failed", "cancelled", "damaged")

# Job kinds whose job writes a run directory (runs/<job_id>/): a real run, or the no-op stand-in.
RUNDIR_KINDS = ("run", "noop")

# How front-ends colour a state (rich style names), keyed by the first word of what they show:
# a state, or a plan's "partly done" / "built", or a log line's "requeued".
STATE_STYLE = {"finished": "green", "built": "green", "failed": "red", "cancelled": "yellow", "requeued": "yellow",
               "running": "cyan", "stalled": "magenta", "partly": "cyan", "queued": "blue", "damaged": "bright_red"}
