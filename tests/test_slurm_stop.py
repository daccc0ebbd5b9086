"""A stop request (SLURM's time-limit warning, SIGTERM) stops a real run at its next step after a
checkpoint, and the resumed run records exactly what an uninterrupted one does.

The signals are real (os.kill to this process); the run trains on CPU in this process, on a tiny
iWildCam tree read by `wilds`.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest
import torch

import divrob.train.archs as archs
from divrob.runs.execute import execute_run
from divrob.runs.rundir import RunDir
from divrob.runs.spec import RunSpec
from divrob.train import interrupt
from divrob.train.checkpoint import load_checkpoint
from divrob.train.config import finetune_config

sys.path.insert(0, str(Path(__file__).parent))
from test_iwildcam import iwildcam_workspace, write_iwildcam  # noqa: E402

pytestmark = pytest.mark.slow

# 24 training images in batches of 8: three steps per epoch
SPEC = RunSpec(arch="mobilenet_v3_small", seed=0, downstream="iwildcam", finetune=finetune_config(
    "mobilenet_v3_small", {"epochs": 3, "batch_size": 8, "image_size": 16, "lr": 1e-2}))


@pytest.fixture
def listening():
    before, threads = signal.getsignal(signal.SIGUSR2), torch.get_num_threads()
    interrupt.listen((signal.SIGUSR2,))
    yield
    interrupt.clear()
    signal.signal(signal.SIGUSR2, before)
    torch.set_num_threads(threads)


def _workspace(root: Path, wilds: Path):
    ws = iwildcam_workspace(root, wilds)
    # one thread: the same arithmetic in every run, and fast on a shared machine
    ws.config_path.write_text(ws.config_path.read_text().replace("threads = 0", "threads = 1"))
    from divrob.workspace import open_workspace

    return open_workspace(ws.root)


def _run(ws, monkeypatch, at: tuple[bool, int] | None = None, then=lambda: None) -> None:
    """Run (or resume) SPEC; with `at` = (training?, n), SIGUSR2 arrives during the model's n-th
    forward pass of that mode (training steps, or evaluation batches), after `then()`."""
    interrupt.clear()  # each call is a new job: it listens afresh
    build = archs.build_model

    def build_with_signal(*args, **kwargs):
        model = build(*args, **kwargs)
        calls = {True: 0, False: 0}

        def hook(module, inputs):
            calls[module.training] += 1
            if (module.training, calls[module.training]) == at:
                then()
                os.kill(os.getpid(), signal.SIGUSR2)

        model.register_forward_pre_hook(hook)
        return model

    monkeypatch.setattr(archs, "build_model", build_with_signal)
    execute_run(ws, SPEC)


def test_stop_at_next_step_then_resume_matches_uninterrupted(tmp_path, monkeypatch, listening):
    wilds = write_iwildcam(tmp_path / "wilds")
    ref, ws = _workspace(tmp_path / "ref", wilds), _workspace(tmp_path / "stopped", wilds)
    _run(ref, monkeypatch)
    rd = RunDir(ws.runs / SPEC.run_id)

    with pytest.raises(interrupt.StopRequested) as stop:
        _run(ws, monkeypatch, at=(True, 5))  # during epoch 2's second step
    assert (stop.value.phase, stop.value.epoch, stop.value.step) == ("finetune", 2, 2)
    assert stop.value.request.signal == "SIGUSR2"
    ckpt = load_checkpoint(rd.checkpoints / "last.pt")
    assert (ckpt["phase"], ckpt["epoch"], ckpt["step"]) == ("finetune", 1, 2)  # epoch 1 done, 2 steps into 2
    status = json.loads(rd.status_path.read_text())
    assert status["state"] == "queued" and "stopped on SIGUSR2 at finetune epoch 2 step 2" in status["reason"]
    assert [e["epoch"] for e in rd.events()] == [1]

    with pytest.raises(interrupt.StopRequested) as stop:
        _run(ws, monkeypatch, at=(False, 1))  # during the evaluation after epoch 2: stops before epoch 3
    assert (stop.value.epoch, stop.value.step) == (3, 0)
    assert load_checkpoint(rd.checkpoints / "last.pt")["epoch"] == 2

    _run(ws, monkeypatch)
    assert rd.is_finished
    assert [e["epoch"] for e in rd.events()] == [1, 2, 3]  # each once
    ref_events = RunDir(ref.runs / SPEC.run_id).events()
    assert [e["metrics"] for e in rd.events()] == [e["metrics"] for e in ref_events]
    log = rd.log_path.read_text()
    assert "resuming at epoch 2 step 2" in log and "resuming at epoch 3 step 0" in log


def test_a_cancel_recorded_before_the_stop_stays(tmp_path, monkeypatch, listening):
    ws = _workspace(tmp_path / "ws", write_iwildcam(tmp_path / "wilds"))
    rd = RunDir(ws.runs / SPEC.run_id)

    def cancelled_meanwhile():  # what `divrob jobs cancel` writes when no manager is alive
        rd.set_status("cancelled", reason="cancelled with `divrob jobs cancel`")

    with pytest.raises(interrupt.StopRequested):
        _run(ws, monkeypatch, at=(True, 2), then=cancelled_meanwhile)
    assert json.loads(rd.status_path.read_text())["state"] == "cancelled"
    ckpt = load_checkpoint(rd.checkpoints / "last.pt")
    assert (ckpt["epoch"], ckpt["step"]) == (0, 2)
