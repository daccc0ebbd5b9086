"""One run across two processes with DistributedDataParallel (gloo on CPU), launched the way a
node launches it: torchrun + `python -m divrob.runs.ddp_entry RUN_DIR`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_iwildcam import SPLIT_COUNTS, iwildcam_workspace, tiny_spec, write_iwildcam

from divrob.runs.rundir import RunDir

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_two_rank_run_writes_everything_once(tmp_path):
    ws = iwildcam_workspace(tmp_path, write_iwildcam(tmp_path / "wilds"))
    spec = tiny_spec(epochs=2, checkpoint_minutes=0)  # checkpoint every step: a collective decision
    rd = RunDir.for_spec(ws.runs, spec)  # as the scheduler leaves it: a directory with spec.json
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "divrob.runs.ddp_entry", str(rd.path)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    status = json.loads(rd.status_path.read_text())
    assert status["state"] == "finished" and status["world_size"] == 2
    events = rd.events()
    assert [(e["phase"], e["epoch"]) for e in events] == [("finetune", 1), ("finetune", 2)]
    for e in events:
        # training totals are summed over both ranks; each eval split is scored whole
        assert e["metrics"]["train"]["n"] == 3 * SPLIT_COUNTS["train"]
        assert all(e["metrics"][s]["n"] == 3 * SPLIT_COUNTS[s] for s in ("id_val", "id_test", "val", "test"))
    log = rd.log_path.read_text()
    assert log.count("finetune: epoch 1/2") == 1 and log.count("finetune: epoch 2/2") == 1
    assert (rd.checkpoints / "last.pt").exists()
