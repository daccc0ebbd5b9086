"""A run SIGKILLed mid-epoch and resumed records exactly the metrics of a run never interrupted
(deterministic mode, CPU, one thread), and no epoch twice.

The run pre-trains (with augmentation: its RNG must resume too) and then fine-tunes; it is
killed inside its second pre-training epoch, right after a mid-epoch checkpoint
(checkpoint_minutes = 0: every step) hit the disk, and the resumed process finishes both phases.
Fine-tuning resumes through the same loop code (one more kill would cost another interpreter).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from test_iwildcam import SPLIT_COUNTS, iwildcam_workspace, write_iwildcam

from divrob.runs.spec import RunSpec
from divrob.train.config import finetune_config, pretrain_config

REPO = Path(__file__).resolve().parents[1]
MANIFEST = "0123456789abcdef"

CHILD = r"""
import json, os, signal, sys
import torch
torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)
from divrob.runs.execute import execute_run
from divrob.runs.spec import RunSpec
from divrob.workspace import open_workspace
import divrob.train.loop as loop

ws_root, spec_json, kill = sys.argv[1], sys.argv[2], sys.argv[3]
if kill != "none":
    phase, epoch, step = kill.split(":")
    save = loop.save_checkpoint

    def save_then_die(path, state):
        save(path, state)
        # the checkpoint of `step` steps into `epoch` is on disk: die like a preempted job
        if state["phase"] == phase and state["epoch"] == int(epoch) - 1 and state["step"] == int(step):
            os.kill(os.getpid(), signal.SIGKILL)

    loop.save_checkpoint = save_then_die
execute_run(open_workspace(ws_root), RunSpec.from_dict(json.loads(spec_json)))
"""


def _workspace(tmp: Path, name: str, wilds_root: Path):
    ws = iwildcam_workspace(tmp / name, wilds_root)
    text = ws.config_path.read_text().replace(
        "[datasets.folders]\n", f'[datasets.folders]\npre = "{wilds_root / "iwildcam_v2.0" / "train"}"\n', 1)
    ws.config_path.write_text(text)
    # a pre-training manifest in the manifest layout: the training images, as a folder source
    meta = pd.read_csv(wilds_root / "iwildcam_v2.0" / "metadata.csv")
    train = meta[meta["split"] == "train"]
    rows = pd.DataFrame({"source": "folder:pre", "path": train["filename"], "label": train["y"].astype("int64")})
    rows.to_parquet(ws.manifests / f"{MANIFEST}.parquet")
    return ws


def _child(ws, spec: RunSpec, kill: str = "none") -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(ws.root), json.dumps(spec.to_dict()), kill],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _metrics(events):
    return [(e["phase"], e["epoch"], e["metrics"]) for e in events]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path):
    wilds_root = write_iwildcam(tmp_path / "wilds")
    common = {"epochs": 2, "batch_size": 8, "image_size": 16, "checkpoint_minutes": 0}
    spec = RunSpec(
        arch="resnet18", seed=3, downstream="iwildcam", manifest_id=MANIFEST, pretrain_classes=3,
        pretrain=pretrain_config("resnet18", {**common, "lr": 0.05}),
        finetune=finetune_config("resnet18", {**common, "lr": 1e-3}),
    )
    assert 3 * SPLIT_COUNTS["train"] // 8 == 3  # three steps per epoch: step 1 is mid-epoch
    ref_ws, ws = _workspace(tmp_path, "ref", wilds_root), _workspace(tmp_path, "killed", wilds_root)

    reference = _child(ref_ws, spec)
    killed = _child(ws, spec, kill="pretrain:2:1")
    out = killed.communicate(timeout=300)[0]
    assert killed.returncode == -signal.SIGKILL, out
    run = ws.runs / spec.run_id
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert (ckpt["phase"], ckpt["epoch"], ckpt["step"]) == ("pretrain", 1, 1)
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "running"  # died without cleanup, its progress as last written
    assert (status["phase"], status["epoch"], status["steps_per_epoch"]) == ("pretrain", 1, 3)

    resumed = _child(ws, spec)
    out = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, out
    out = reference.communicate(timeout=300)[0]
    assert reference.returncode == 0, out

    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    ref_events = [json.loads(line) for line in (ref_ws.runs / spec.run_id / "events.jsonl").read_text().splitlines()]
    keys = [(e["phase"], e["epoch"]) for e in events]
    assert keys == [("pretrain", 1), ("pretrain", 2), ("finetune", 1), ("finetune", 2)]  # each once
    assert _metrics(events) == _metrics(ref_events)
    log = (run / "log.txt").read_text()
    assert "pretrain: resuming at epoch 2 step 1" in log
    assert json.loads((run / "status.json").read_text())["state"] == "finished"
