"""Entry point for one run across the GPUs of a node:

    torchrun --standalone --nproc_per_node=NGPU -m divrob.runs.ddp_entry WORKSPACE/runs/RUN_ID

The run directory (with its spec.json, as the scheduler creates it) names the run; its
workspace is the directory two levels up. Every rank calls the same `execute_run`; rank 0
writes events, status and checkpoints. Without torchrun it simply runs the run in-process.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from divrob.errors import DivrobError, RunError


def run_dir_main(run_dir: str | Path) -> int:
    from divrob.runs.execute import execute_run
    from divrob.runs.spec import RunSpec
    from divrob.workspace import open_workspace

    run_dir = Path(run_dir).resolve()
    spec_path = run_dir / "spec.json"
    if not spec_path.exists():
        raise RunError(f"{run_dir} is not a run directory (no spec.json)")
    spec = RunSpec.from_dict(json.loads(spec_path.read_text()))
    if spec.run_id != run_dir.name:
        raise RunError(f"{spec_path} describes run {spec.run_id}, not {run_dir.name}; was the directory renamed?")
    ws = open_workspace(run_dir.parent.parent)
    execute_run(ws, spec)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m divrob.runs.ddp_entry RUN_DIR", file=sys.stderr)
        return 2
    try:
        return run_dir_main(argv[0])
    except DivrobError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
