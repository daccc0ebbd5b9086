"""A stop request (SLURM's time-limit warning, SIGTERM) stops real training at its next step
after a checkpoint, and the resumed run records exactly what an uninterrupted one does.

The signals are real (os.kill to this process); the model trains on CPU in this process.
"""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch

from divrob.runs.rundir import RunDir
from divrob.train import interrupt
from divrob.train.archs import build_model
from divrob.train.checkpoint import load_checkpoint
from divrob.train.config import finetune_config
from divrob.train.data import DecodedImages
from divrob.train.loop import PhaseData, train_phase


def _data(n: int, seed: int) -> DecodedImages:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
    return DecodedImages(images, np.arange(n, dtype=np.int64) % 3, np.ones(n, dtype=bool))


CFG = finetune_config("mobilenet_v3_small", {"epochs": 3, "batch_size": 8, "image_size": 16, "lr": 1e-2})
DATA = PhaseData(_data(24, 0), {"id_test": _data(9, 1)}, augment=False)  # 3 steps per epoch


def _train(rd: RunDir, signal_at: tuple[bool, int] | None = None) -> None:
    """Train (or resume) the run in `rd`; with `signal_at` = (training?, n), SIGUSR2 arrives during
    the n-th forward pass of that mode (training steps, or evaluation batches)."""
    torch.manual_seed(0)
    model = build_model("mobilenet_v3_small", 3)
    if signal_at is not None:
        calls = {True: 0, False: 0}

        def hook(module, inputs):
            calls[module.training] += 1
            if (module.training, calls[module.training]) == signal_at:
                os.kill(os.getpid(), signal.SIGUSR2)

        model.register_forward_pre_hook(hook)
    train_phase(phase="finetune", model=model, cfg=CFG, data=DATA, recorder=rd, seed=0, device=torch.device("cpu"))


def _run_dir(path) -> RunDir:
    rd = RunDir(path)
    rd.checkpoints.mkdir(parents=True)
    rd.set_status("running", pid=os.getpid())
    return rd


@pytest.fixture
def listening():
    before, threads = signal.getsignal(signal.SIGUSR2), torch.get_num_threads()
    torch.set_num_threads(1)  # the same arithmetic in every run, and fast on a shared machine
    interrupt.listen((signal.SIGUSR2,))
    yield
    interrupt.clear()
    signal.signal(signal.SIGUSR2, before)
    torch.set_num_threads(threads)


def test_stop_at_next_step_then_resume_matches_uninterrupted(tmp_path, listening):
    ref = _run_dir(tmp_path / "ref")
    interrupt.clear()
    _train(ref)

    rd = _run_dir(tmp_path / "stopped")
    with pytest.raises(interrupt.StopRequested) as stop, rd.recording_failure():
        _train(rd, signal_at=(True, 5))  # during epoch 2's second step
    assert (stop.value.phase, stop.value.epoch, stop.value.step) == ("finetune", 2, 2)
    assert stop.value.request.signal == "SIGUSR2"
    ckpt = load_checkpoint(rd.checkpoints / "last.pt")
    assert (ckpt["phase"], ckpt["epoch"], ckpt["step"]) == ("finetune", 1, 2)  # epoch 1 done, 2 steps into 2
    status = rd.status()
    assert status["state"] == "queued" and "stopped on SIGUSR2 at finetune epoch 2 step 2" in status["reason"]
    assert [e["epoch"] for e in rd.events()] == [1]

    interrupt.clear()  # a new job: it listens afresh
    with pytest.raises(interrupt.StopRequested) as stop:
        _train(rd, signal_at=(False, 1))  # during the evaluation after epoch 2: stops before epoch 3
    assert (stop.value.epoch, stop.value.step) == (3, 0)
    assert load_checkpoint(rd.checkpoints / "last.pt")["epoch"] == 2

    interrupt.clear()
    _train(rd)
    assert [e["epoch"] for e in rd.events()] == [1, 2, 3]  # each once
    assert [e["metrics"] for e in rd.events()] == [e["metrics"] for e in ref.events()]
    log = rd.log_path.read_text()
    assert "resuming at epoch 2 step 2" in log and "resuming at epoch 3 step 0" in log


def test_a_stop_that_comes_while_a_cancel_was_recorded_keeps_cancelled(tmp_path, listening):
    rd = _run_dir(tmp_path / "run")
    rd.set_status("cancelled", reason="cancelled with `divrob jobs cancel`")
    interrupt.request_stop(signal.SIGTERM)
    with pytest.raises(interrupt.StopRequested), rd.recording_failure():
        _train(rd)
    assert rd.status()["state"] == "cancelled"
    assert (load_checkpoint(rd.checkpoints / "last.pt")["epoch"], load_checkpoint(rd.checkpoints / "last.pt")["step"]) == (0, 1)
