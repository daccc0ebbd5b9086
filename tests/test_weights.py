"""External initial weights (`pretrain = { weights = "..." }`) and fine-tuning modes: a state dict,
a safetensors file, torchvision's weights in a temporary torch cache and an open_clip checkpoint,
each through `study run` on a tiny folder shift, landing ID/OOD metrics in the store; the run id
follows the file's bytes; the default fine-tuning mode keeps every existing run id."""

from __future__ import annotations

import io
import json

import duckdb
import pandas as pd
import pytest
import torch
from test_folder_task import shift_workspace, write_shift
from typer.testing import CliRunner

from divrob.archs import parse_weights
from divrob.cli import app
from divrob.errors import RecipeError, RunError, WeightsError
from divrob.recipes.load import load_recipe
from divrob.runs.spec import RunSpec
from divrob.train.config import finetune_config, pretrain_config
from divrob.train.weights import (
    load_backbone,
    read_state_file,
    resolve_weights,
    torchvision_weights,
)
from divrob.workspace import open_workspace

ARCH = "mobilenet_v3_small"  # the smallest catalogued torchvision model (2.5M parameters)
TV_FILE = "mobilenet_v3_small-047dcff4.pth"  # the file name in torchvision's URL for IMAGENET1K_V1


def _model(num_classes=1000, seed=0):
    import torchvision

    torch.manual_seed(seed)
    return torchvision.models.mobilenet_v3_small(num_classes=num_classes)


def _workspace(tmp_path, weights: dict[str, str] | None = None):
    ws = shift_workspace(tmp_path, write_shift(tmp_path / "shift"))
    if weights:
        lines = "".join(f'{k} = "{v}"\n' for k, v in weights.items())
        text = ws.config_path.read_text().replace("[datasets.weights]\n", "[datasets.weights]\n" + lines, 1)
        ws.config_path.write_text(text)
    return open_workspace(ws.root)


def _recipe(tmp_path, distributions: str, finetune: str = "", archs=f'["{ARCH}"]', name="w"):
    path = tmp_path / f"{name}.toml"
    path.write_text(f"""
[study]
name = "{name}"
downstream = "folder:traps"
archs = {archs}
seeds = [0]
finetune = {{ epochs = 2, batch_size = 8, lr = 1e-3, image_size = 32{finetune} }}
{distributions}
""")
    return path


def _study_run(ws, recipe):
    res = CliRunner().invoke(app, ["study", "run", str(recipe), "-w", str(ws.root)])
    assert res.exit_code == 0, res.output
    con = duckdb.connect(str(ws.db_path), read_only=True)
    try:
        scores = con.execute("SELECT s.distribution, e.split, count(*) AS n FROM epochs e JOIN study_runs s "
                             "USING (run_id) WHERE e.phase = 'finetune' AND e.split != 'train' "
                             "GROUP BY ALL ORDER BY ALL").fetchall()
        runs = {d: (rid, json.loads(spec)) for d, rid, spec in con.execute(
            "SELECT s.distribution, run_id, r.spec FROM study_runs s JOIN runs r USING (run_id)").fetchall()}
        phases = {p for (p,) in con.execute("SELECT DISTINCT phase FROM epochs").fetchall()}
    finally:
        con.close()
    return scores, runs, phases


# -- the run spec ---------------------------------------------------------------------------------

def test_default_specs_keep_their_run_ids():
    """Ids computed before weights and modes existed: a spec that uses neither keeps its id."""
    scratch = RunSpec(arch="resnet18", seed=0, downstream="camtrap-sim", finetune=finetune_config("resnet18"))
    pre = RunSpec(arch="resnet50", seed=1, downstream="iwildcam",
                  finetune=finetune_config("resnet50", {"epochs": 3, "optimizer": "adamw"}),
                  manifest_id="abc", pretrain_classes=10, pretrain=pretrain_config("resnet50"))
    assert (scratch.run_id, pre.run_id) == ("9df18b16a8a6f115", "51d29a195a4a12fd")
    assert RunSpec(arch="resnet18", seed=0, downstream="camtrap-sim",
                   finetune=finetune_config("resnet18", {"mode": "full"})).run_id == scratch.run_id


def test_mode_and_weights_are_part_of_the_run_id():
    def spec(weights=None, **ft):
        return RunSpec(arch="resnet18", seed=0, downstream="camtrap-sim", weights=weights,
                       finetune=finetune_config("resnet18", {"epochs": 4, **ft}))

    ids = {m: spec(mode=m).run_id for m in ("full", "linear", "lp-ft")}
    assert len(set(ids.values())) == 3
    assert spec(mode="lp-ft").finetune.lp_epochs == 2  # the documented default: half the epochs
    assert spec(mode="lp-ft", lp_epochs=1).run_id != ids["lp-ft"]
    assert spec(mode="lp-ft", lp_epochs=2).run_id == ids["lp-ft"]
    with pytest.raises(RunError, match=r"lp_epochs \(4\) below epochs \(4\)"):
        spec(mode="lp-ft", lp_epochs=4)
    a = {"source": "a.pt", "kind": "file", "name": "a.pt", "path": "/x/a.pt", "sha256": "1" * 64}
    moved = a | {"path": "/elsewhere/b.pt", "source": "@b", "name": "b.pt"}
    other = a | {"sha256": "2" * 64}
    assert spec(a).run_id == spec(moved).run_id != spec(other).run_id
    assert spec(a).run_id not in ids.values() and not spec(a).is_scratch
    assert RunSpec.from_dict(json.loads(json.dumps(spec(a, mode="linear").to_dict()))).run_id == spec(a, mode="linear").run_id


# -- recipes --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dist, message", [
    ('name = "x"\npretrain = { weights = "open_clip:RN50" }', r"expected open_clip:<arch>:<checkpoint path>"),
    ('name = "x"\npretrain = { weights = "torchvision:a.b.c" }', r"torchvision:<Enum>.<NAME>"),
    ('name = "x"\nsource = "imagenet"\npretrain = { weights = "a.pt" }', r"samples no images: remove source"),
    ('name = "scratch"\npretrain = { weights = "a.pt" }', r'"scratch" means no pre-training'),
    ('name = "x"\npretrain = "yes"', r'expected true, false or \{ weights = "..." \}'),
])
def test_recipe_errors_name_the_field(tmp_path, dist, message):
    path = _recipe(tmp_path, f"[[distribution]]\n{dist}\n")
    with pytest.raises(RecipeError, match=r"distribution\[0\].*" + message):
        load_recipe(path)


def test_finetune_mode_keys_are_checked(tmp_path):
    with pytest.raises(RecipeError, match=r"finetune.*lp_epochs only applies to mode = \"lp-ft\""):
        load_recipe(_recipe(tmp_path, '[[distribution]]\nname = "scratch"\n', ", lp_epochs = 1"))
    with pytest.raises(RecipeError, match=r"finetune.mode"):
        load_recipe(_recipe(tmp_path, '[[distribution]]\nname = "scratch"\n', ', mode = "probe"'))


# -- resolving and loading ------------------------------------------------------------------------

def test_torchvision_weights_missing_from_the_cache_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    ws = _workspace(tmp_path)
    expected = tmp_path / "th" / "hub" / "checkpoints" / "resnet50-0676ba61.pth"
    with pytest.raises(WeightsError) as e:
        resolve_weights(ws, "torchvision:IMAGENET1K_V1", "resnet50")
    assert f"at {expected}" in str(e.value)
    assert "https://download.pytorch.org/models/resnet50-0676ba61.pth" in str(e.value)
    assert not expected.exists()  # nothing was downloaded
    with pytest.raises(WeightsError, match=r"another architecture than resnet18.*torchvision:IMAGENET1K_V1"):
        torchvision_weights("ResNet50_Weights.IMAGENET1K_V1", "resnet18")
    with pytest.raises(WeightsError, match=r"no IMAGENET9K weights for resnet18; it has IMAGENET1K_V1"):
        torchvision_weights("IMAGENET9K", "resnet18")
    assert torchvision_weights("DEFAULT", "resnet50").name == "IMAGENET1K_V2"


@pytest.mark.slow
def test_local_files_resolve_from_the_workspace_or_by_name(tmp_path):
    import hashlib

    f = tmp_path / "w.pt"
    torch.save(_model(7).state_dict(), f)  # another head: it is replaced anyway
    torch.save({"a": torch.zeros(2)}, tmp_path / "misfit.pt")
    ws = _workspace(tmp_path, {"mine": str(f), "misfit": str(tmp_path / "misfit.pt")})
    named = resolve_weights(ws, "@mine", ARCH)
    assert named["path"] == str(f) and named["kind"] == "file"
    assert named["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    with pytest.raises(WeightsError, match=r"misfit.pt do not fit MobileNetV3 .*1 unexpected: a\b"):
        resolve_weights(ws, "@misfit", ARCH)  # checked when planning, before any run starts
    with pytest.raises(WeightsError, match=r"no entry 'theirs' under \[datasets.weights\]"):
        resolve_weights(ws, "@theirs", ARCH)
    with pytest.raises(WeightsError, match=r"no file at .*nothere.pt \(relative paths are read from the workspace"):
        resolve_weights(ws, "nothere.pt", ARCH)
    (tmp_path / "w.npz").write_bytes(b"x")
    with pytest.raises(WeightsError, match=r"expected a PyTorch state dict"):
        resolve_weights(ws, str(tmp_path / "w.npz"), ARCH)


def test_key_mismatch_lists_the_keys(tmp_path):
    src = _model().state_dict()
    renamed = {k.replace("features.0.", "stem."): v for k, v in src.items()}
    del renamed["features.1.block.0.0.weight"]
    renamed["classifier.3.weight"] = torch.zeros(7, 1024)  # another head: expected, not an error
    torch.save({"state_dict": {f"module.{k}": v for k, v in renamed.items()}}, tmp_path / "bad.pt")
    state = read_state_file(tmp_path / "bad.pt")  # the wrapper and DDP's prefix are taken off
    with pytest.raises(WeightsError) as e:
        load_backbone(_model(10), state, "bad.pt")
    msg = str(e.value)
    # the first five of each kind, sorted, and how many more
    assert "6 missing: features.0.0.weight, features.0.1.bias, features.0.1.running_mean, " in msg
    assert "6 unexpected: stem.0.weight, stem.1.bias" in msg and msg.count("and 1 more") == 2
    assert "classifier.3" not in msg.split("(the head classifier.3 aside)")[1]  # the head is expected to differ
    good = {k: v for k, v in src.items() if not k.startswith("classifier.3.")}
    model = _model(10, seed=1)
    load_backbone(model, good, "good")
    assert torch.equal(model.state_dict()["features.0.0.weight"], src["features.0.0.weight"])
    torch.save({"x": torch.nn.Linear(2, 2)}, tmp_path / "pickled.pt")
    with pytest.raises(WeightsError, match=r"weights_only=True"):
        read_state_file(tmp_path / "pickled.pt")


# -- through `study run` --------------------------------------------------------------------------

@pytest.mark.slow
def test_state_dict_and_safetensors_files_through_study_run(tmp_path):
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in _model().state_dict().items()}
    torch.save(state, tmp_path / "init.pth")
    save_file(state, str(tmp_path / "init.safetensors"))
    ws = _workspace(tmp_path, {"init-st": str(tmp_path / "init.safetensors")})
    recipe = _recipe(tmp_path, f"""
[[distribution]]
name = "pt"
pretrain = {{ weights = "{tmp_path / 'init.pth'}" }}

[[distribution]]
name = "st"
pretrain = {{ weights = "@init-st" }}
""")
    scores, runs, phases = _study_run(ws, recipe)
    assert phases == {"finetune"}  # no pre-training phase
    assert scores == [(d, s, 2) for d in ("pt", "st") for s in ("id_test", "ood_night", "ood_snow")]
    ids = {d: rid for d, (rid, _) in runs.items()}
    assert ids["pt"] != ids["st"]  # same spec, the same tensors in another file: another run id
    assert runs["st"][1]["weights"]["kind"] == "file" and runs["st"][1]["weights"]["path"] == str(tmp_path / "init.safetensors")
    # the store's source column names the weights, like a pre-training source
    con = duckdb.connect(str(ws.db_path), read_only=True)
    try:
        sources = dict(con.execute("SELECT distribution, source FROM study_runs").fetchall())
    finally:
        con.close()
    assert sources["st"] == "@init-st"
    _resumable(ws, *runs["pt"])


@pytest.mark.slow
def test_linear_probe_keeps_the_backbone_and_lp_ft_then_trains_it(tmp_path):
    state = _model().state_dict()
    torch.save(state, tmp_path / "init.pt")
    ws = _workspace(tmp_path)
    dist = f'[[distribution]]\nname = "init"\npretrain = {{ weights = "{tmp_path / "init.pt"}" }}\n'
    last = {}
    for mode in ("linear", "lp-ft"):
        _, runs, _ = _study_run(ws, _recipe(tmp_path, dist, f', mode = "{mode}", optimizer = "adamw"', name=mode))
        rid, spec = runs["init"]
        assert spec["finetune"]["mode"] == mode and spec["finetune"]["optimizer"] == "adamw"
        last[mode] = torch.load(ws.runs / rid / "checkpoints" / "last.pt", weights_only=False)["model"]
        log = (ws.runs / rid / "log.txt").read_text()
        if mode == "lp-ft":
            assert "epoch 1 on: linear probe" in log and "epoch 2 on: every layer trains" in log
    backbone = [k for k in state if not k.startswith("classifier.3.")]
    assert all(torch.equal(last["linear"][k], state[k]) for k in backbone)  # BatchNorm statistics included
    assert not torch.equal(last["linear"]["classifier.3.weight"][:3], torch.zeros(3, 1024))
    assert not all(torch.equal(last["lp-ft"][k], state[k]) for k in backbone)


@pytest.mark.slow
def test_torchvision_weights_from_a_temporary_torch_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    cache = tmp_path / "th" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    assert torchvision_weights("IMAGENET1K_V1", ARCH).url.endswith(TV_FILE)
    state = _model(seed=3).state_dict()  # torchvision's format: the full 1000-class model
    torch.save(state, cache / TV_FILE)
    ws = _workspace(tmp_path)
    recipe = _recipe(tmp_path, '[[distribution]]\nname = "imagenet-full"\npretrain = { weights = "torchvision:IMAGENET1K_V1" }\n')
    scores, runs, _ = _study_run(ws, recipe)
    assert [(s, n) for _, s, n in scores] == [("id_test", 2), ("ood_night", 2), ("ood_snow", 2)]
    rid, spec = runs["imagenet-full"]
    assert spec["weights"]["name"] == "MobileNet_V3_Small_Weights.IMAGENET1K_V1"
    assert spec["weights"]["path"] == str(cache / TV_FILE)
    assert "weights: torchvision:IMAGENET1K_V1" in (ws.runs / rid / "log.txt").read_text()
    out = CliRunner().invoke(app, ["results", "--study", "w", "--ood", "ood_snow", "--format", "csv", "-w", str(ws.root)])
    assert out.exit_code == 0, out.output
    df = pd.read_csv(io.StringIO(out.output))  # a run like any other in the results table
    assert set(zip(df["distribution"], df["source"], df["arch"])) == {("imagenet-full", "torchvision:IMAGENET1K_V1", ARCH)}
    assert len(df) == 2 and df["ood_score"].notna().all()  # both epochs, scored
    _resumable(ws, rid, spec)
    from torch import hub

    assert hub.get_dir() == str(tmp_path / "th" / "hub")  # the loader left torch's hub dir alone


def test_open_clip_missing_names_the_extra(tmp_path, monkeypatch):
    import sys

    ckpt = tmp_path / "clip.pt"
    torch.save({"a": torch.zeros(1)}, ckpt)
    monkeypatch.setitem(sys.modules, "open_clip", None)  # as if open-clip-torch were not installed
    ws = _workspace(tmp_path)
    with pytest.raises(WeightsError, match=r"open-clip-torch package: pip install 'divrob\[clip\]'"):
        resolve_weights(ws, f"open_clip:RN50:{ckpt}", "resnet50")
    assert parse_weights(f"open_clip:RN50:{ckpt}").model_arch("resnet50") == "open_clip:RN50"


TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 2, "layers": 1},
}


@pytest.mark.slow
def test_open_clip_tower_from_a_local_checkpoint(tmp_path):
    open_clip = pytest.importorskip("open_clip", reason="open-clip-torch (the clip extra) is not installed")
    cfg = tmp_path / "divrob-tiny-clip.json"
    cfg.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(cfg)  # a real open_clip config, made tiny
    torch.manual_seed(0)
    clip = open_clip.create_model("divrob-tiny-clip", pretrained=None)
    torch.save(clip.state_dict(), tmp_path / "yfcc.pt")
    ws = _workspace(tmp_path, {"clip-yfcc": str(tmp_path / "yfcc.pt")})
    recipe = _recipe(tmp_path, '[[distribution]]\nname = "clip-yfcc"\n'
                     'pretrain = { weights = "open_clip:divrob-tiny-clip:@clip-yfcc" }\n', ', optimizer = "adamw"')
    scores, runs, _ = _study_run(ws, recipe)
    assert [(s, n) for _, s, n in scores] == [("id_test", 2), ("ood_night", 2), ("ood_snow", 2)]
    rid, spec = runs["clip-yfcc"]
    assert spec["arch"] == "open_clip:divrob-tiny-clip"  # the tower's own, not the study's archs
    last = torch.load(ws.runs / rid / "checkpoints" / "last.pt", weights_only=False)["model"]
    assert last["fc.weight"].shape == (3, 16) and "visual.conv1.weight" in last
    _resumable(ws, rid, spec)


def _resumable(ws, rid, spec):
    """A resumed fine-tune builds the model without reading the weights file and loads its own
    checkpoint into it: the two must have the same keys and shapes."""
    from divrob.train.weights import build_initial_model

    last = torch.load(ws.runs / rid / "checkpoints" / "last.pt", weights_only=False)["model"]
    bare = build_initial_model(spec["arch"], spec["weights"], 3, seed=1, image_size=32, load=False)
    assert {k: tuple(v.shape) for k, v in bare.state_dict().items()} == {k: tuple(v.shape) for k, v in last.items()}


@pytest.mark.slow
def test_study_plan_names_the_missing_torchvision_file_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    ws = _workspace(tmp_path)
    recipe = _recipe(tmp_path, '[[distribution]]\nname = "scratch"\n\n'
                     '[[distribution]]\nname = "imagenet-full"\npretrain = { weights = "torchvision:IMAGENET1K_V1" }\n')
    res = CliRunner().invoke(app, ["study", "run", str(recipe), "-w", str(ws.root)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    out = " ".join(res.output.split())  # rich wraps long lines
    assert "distribution 'imagenet-full': torchvision weights MobileNet_V3_Small_Weights.IMAGENET1K_V1" in out
    assert f"at{tmp_path / 'th' / 'hub' / 'checkpoints' / TV_FILE}" in out.replace(" ", "")  # where to put it
    assert not any((ws.runs).iterdir())  # no run directory was made
    models = CliRunner().invoke(app, ["models"])
    assert models.exit_code == 0 and "open_clip:ARCH:PATH" in models.output and "torchvision:WEIGHTS" in models.output
    helped = CliRunner().invoke(app, ["--help"], terminal_width=200)
    assert "Initial weights instead of pre-training: PATH, torchvision:WEIGHTS, open_clip:ARCH:PATH" in " ".join(
        helped.output.split())


@pytest.mark.slow
def test_lp_ft_across_two_ranks_switches_once_and_keeps_ranks_in_step(tmp_path):
    """lp-ft under DistributedDataParallel (two gloo ranks): the probe, then every layer, recorded
    once by rank 0. (DDP hooks only the parameters that train when it wraps the model, so the loop
    wraps again when the backbone thaws; that the ranks' weights stay equal is not read back here.)"""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from test_iwildcam import iwildcam_workspace, tiny_spec, write_iwildcam

    from divrob.runs.rundir import RunDir

    ws = iwildcam_workspace(tmp_path, write_iwildcam(tmp_path / "wilds"))
    spec = tiny_spec(epochs=2, mode="lp-ft", lp_epochs=1)
    rd = RunDir.for_spec(ws.runs, spec)
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{repo}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "divrob.runs.ddp_entry", str(rd.path)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = rd.log_path.read_text()
    assert log.count("epoch 1 on: linear probe") == 1 and log.count("epoch 2 on: every layer trains") == 1
    assert [(e["phase"], e["epoch"]) for e in rd.events()] == [("finetune", 1), ("finetune", 2)]
