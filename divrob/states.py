"""The vocabulary of run and job states and job kinds: one home, imported by every layer."""

from __future__ import annotations

# A run's state in its run directory (status.json) and a job's state in the store.
STATES = ("queued", "running", "finished", "failed", "cancelled")
ACTIVE = ("queued", "running")
DONE = ("finished", "failed", "cancelled")

# Job kinds whose job writes a run directory (runs/<job_id>/): a real run, or the no-op stand-in.
RUNDIR_KINDS = ("run", "noop")
