"""Precision is a per-phase recipe setting: part of the run id, shown by `study plan`, resolved
where the phase runs (`auto`: bf16 on CUDA, fp32 on CPU) and logged; fp16 trains with a loss
scaler whose state is checkpointed and restored."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from divrob.cli import app
from divrob.devices import resolve_precision
from divrob.errors import DivrobError, RunError
from divrob.runs.spec import RunSpec
from divrob.train.archs import build_model
from divrob.train.checkpoint import load_checkpoint, save_checkpoint
from divrob.train.config import finetune_config
from divrob.train.data import DecodedImages
from divrob.train.loop import PhaseData, make_optimizer, train_phase
from divrob.train.precision import Precision
from divrob.train.recorder import MemoryRecorder
from divrob.train.state import restore_checkpoint
from divrob.workspace import init_workspace

RECIPE = '''[study]
name = "p"
downstream = "camtrap-sim"
archs = ["resnet18"]
{finetune}
[[distribution]]
name = "scratch"
'''


def _plan(tmp_path, finetune: str):
    ws = tmp_path / "ws"
    if not ws.exists():
        init_workspace(ws)
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE.format(finetune=finetune))
    return CliRunner().invoke(app, ["study", "plan", str(recipe), "-w", str(ws)])


def test_precision_is_a_recipe_setting_shown_by_the_plan(tmp_path):
    res = _plan(tmp_path, 'finetune = { precision = "fp16" }')
    assert res.exit_code == 0, res.output
    assert "precision: finetune fp16" in res.output
    res = _plan(tmp_path, "")
    assert res.exit_code == 0, res.output
    assert "precision: finetune auto (bf16 on CUDA, fp32 on CPU)" in res.output
    res = _plan(tmp_path, 'finetune = { precision = "fp8" }')
    assert res.exit_code == 2 and "precision" in res.output and "fp16" in res.output


def test_precision_is_part_of_the_run_id_and_old_specs_are_refused():
    def spec(precision: str) -> RunSpec:
        return RunSpec(arch="resnet18", seed=0, downstream="camtrap-sim",
                       finetune=finetune_config("resnet18", {"precision": precision}))

    ids = {p: spec(p).run_id for p in ("auto", "bf16", "fp16", "fp32")}
    assert len(set(ids.values())) == 4
    assert RunSpec.from_dict(spec("fp16").to_dict()).run_id == ids["fp16"]
    # a run planned before the data path changed is never resumed with other pixels
    old = {**spec("auto").to_dict(), "version": 1}
    with pytest.raises(RunError, match="spec version 1 .* cannot be resumed"):
        RunSpec.from_dict(old)


def test_auto_is_bf16_on_cuda_and_fp32_on_cpu():
    assert resolve_precision("auto", "cuda") == "bf16" and resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("fp16", "cpu") == "fp16"
    with pytest.raises(DivrobError, match="choose from auto, bf16, fp16, fp32"):
        resolve_precision("fp8", "cpu")


def _tiny(n: int = 12, size: int = 16) -> DecodedImages:
    rng = np.random.default_rng(0)
    return DecodedImages(rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
                         np.arange(n, dtype=np.int64) % 2, np.full((n, 2), size, dtype=np.int32))


@pytest.mark.slow
def test_fp16_checkpoints_its_loss_scaler_and_a_resume_restores_it(tmp_path):
    cfg = finetune_config("resnet18", {"epochs": 1, "batch_size": 4, "image_size": 16, "lr": 1e-3,
                                       "precision": "fp16"})
    rec = MemoryRecorder(tmp_path / "ckpt")
    torch.manual_seed(0)
    train_phase(phase="finetune", model=build_model("resnet18", 2), cfg=cfg, data=PhaseData(_tiny()),
                recorder=rec, seed=0, device=torch.device("cpu"))
    assert any(line.startswith("finetune: precision fp16,") for line in rec.lines), rec.lines
    assert np.isfinite(rec.epochs[0]["metrics"]["train"]["loss"])
    ckpt = load_checkpoint(rec.checkpoints / "last.pt")
    assert ckpt["scaler"]["scale"] > 0 and "_growth_tracker" in ckpt["scaler"]

    # a resumed phase scales its loss as the interrupted one did
    ckpt["scaler"]["scale"] = 1024.0
    save_checkpoint(rec.checkpoints / "last.pt", ckpt)
    model = build_model("resnet18", 2)
    opt, sched = make_optimizer(model, cfg)
    scaler = Precision("fp16").grad_scaler(torch.device("cpu"))
    restore_checkpoint(load_checkpoint(rec.checkpoints / "last.pt"), "finetune", model, opt, sched, scaler)
    assert scaler.get_scale() == 1024.0


@pytest.mark.slow
def test_auto_precision_is_logged_as_resolved(tmp_path):
    cfg = finetune_config("resnet18", {"epochs": 1, "batch_size": 6, "image_size": 16})
    rec = MemoryRecorder(tmp_path / "ckpt")
    train_phase(phase="finetune", model=build_model("resnet18", 2), cfg=cfg, data=PhaseData(_tiny()),
                recorder=rec, seed=0, device=torch.device("cpu"))
    assert any(line.startswith("finetune: precision fp32 (auto),") for line in rec.lines), rec.lines
    assert load_checkpoint(rec.checkpoints / "last.pt")["scaler"] == {}  # fp32 needs no scaler
