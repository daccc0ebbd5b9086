"""Diffusion source: a tiny randomly initialised Stable Diffusion pipeline, built from config
classes and saved locally (no downloads), run through the real diffusers pipeline."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from PIL import Image

from divrob.errors import SourceError
from divrob.sources.diffusion import (
    INDEX_FILE, clip_templates, diffusion_params, diffusion_status, generate_diffusion, load_pipeline,
    resolve_classes,
)

SIZE = 32


def _tiny_tokenizer(path: Path):
    """A CLIP BPE tokenizer over single byte-level characters, no merges: vocab written here,
    nothing fetched. (transformers 5 builds CLIPTokenizer from a vocab dict and merges list.)"""
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    chars = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = ["<|startoftext|>", "<|endoftext|>"] + chars + [c + "</w>" for c in chars]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    (path / "vocab.json").write_text(json.dumps(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=32), len(vocab)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    work = tmp_path_factory.mktemp("tok")
    tokenizer, vocab_size = _tiny_tokenizer(work)
    unet = UNet2DConditionModel(
        sample_size=SIZE // 2, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=4,
    )
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=32, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    ))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    out = tmp_path_factory.mktemp("model") / "tiny-sd"
    pipe.save_pretrained(out)
    return out


@pytest.fixture()
def class_file(tmp_path) -> Path:
    p = tmp_path / "classes.txt"
    p.write_text("red fox\n# a comment\n\ngolden retriever\n")
    return p


def _params(class_file, model, **kw):
    return diffusion_params(resolve_classes(str(class_file)), per_class=2, model=str(model), steps=2,
                            guidance=kw.pop("guidance", 7.5), size=SIZE, seed=kw.pop("seed", 0))


def tree_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.png"))}


def test_generates_images_index_and_is_deterministic(tiny_model, class_file, tmp_path):
    params = _params(class_file, tiny_model)
    root = generate_diffusion(tmp_path / "a", params, device="cpu", batch=3)
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png")) == [
        "golden retriever/00000.png", "golden retriever/00001.png", "red fox/00000.png", "red fox/00001.png"]
    with Image.open(root / "red fox" / "00000.png") as im:
        assert im.size == (SIZE, SIZE) and im.mode == "RGB"
    import pandas as pd

    idx = pd.read_parquet(root / INDEX_FILE)
    templates = clip_templates()
    assert len(templates) == 80
    assert idx["prompt"].tolist() == [templates[0].format("red fox"), templates[1].format("red fox"),
                                      templates[0].format("golden retriever"), templates[1].format("golden retriever")]
    assert idx["seed"].nunique() == 4
    assert diffusion_status(root)[0] is True

    # Same seed, other batch size: identical images (a generator per image).
    again = generate_diffusion(tmp_path / "b", params, device="cpu", batch=1)
    assert tree_hashes(again) == tree_hashes(root)
    other = generate_diffusion(tmp_path / "c", _params(class_file, tiny_model, seed=1), device="cpu", batch=4)
    assert tree_hashes(other) != tree_hashes(root)

    # Resume: a missing image is made again, identical; the others are kept untouched.
    (again / "red fox" / "00001.png").unlink()
    kept = (again / "golden retriever" / "00000.png").stat().st_mtime_ns
    generate_diffusion(again, params, device="cpu")
    assert tree_hashes(again) == tree_hashes(root)
    assert (again / "golden retriever" / "00000.png").stat().st_mtime_ns == kept


def test_workspace_source_has_prompt_and_seed_columns(tiny_model, class_file, tmp_path):
    from divrob.sources import source_index
    from divrob.workspace import init_workspace

    ws = init_workspace(tmp_path / "ws")
    generate_diffusion(ws.data / "diffusion", _params(class_file, tiny_model), device="cpu", batch=4)
    df = source_index(ws, "diffusion")
    assert len(df) == 4 and {"prompt", "seed", "template"} <= set(df.columns)
    assert df["class_name"].tolist() == ["golden retriever"] * 2 + ["red fox"] * 2
    assert all(name in prompt for name, prompt in zip(df["class_name"], df["prompt"]))


def test_missing_model_is_a_clear_error(tmp_path, class_file):
    params = _params(class_file, "no-such-org/no-such-model")
    with pytest.raises(SourceError, match="not available locally.*never downloads"):
        generate_diffusion(tmp_path / "x", params, device="cpu")
    assert not (tmp_path / "x").exists()  # nothing written, so a rerun with the right model starts clean
    with pytest.raises(SourceError, match="not available locally"):
        load_pipeline(str(tmp_path / "empty-dir"), "cpu", None)


def test_classes_and_parameters_are_checked(tmp_path, class_file, tiny_model):
    names = resolve_classes("imagenet")
    assert len(names) == 1000 and names[0] == ("n01440764", "tench")
    with pytest.raises(SourceError, match="no such file"):
        resolve_classes(str(tmp_path / "nope.txt"))
    dup = tmp_path / "dup.txt"
    dup.write_text("cat\ncat\n")
    with pytest.raises(SourceError, match="listed twice"):
        resolve_classes(str(dup))
    with pytest.raises(SourceError, match="multiple of 8"):
        diffusion_params(resolve_classes(str(class_file)), per_class=1, model="m", size=30)
    root = tmp_path / "r"
    generate_diffusion(root, _params(class_file, tiny_model), device="cpu")
    with pytest.raises(SourceError, match="other parameters.*guidance"):
        generate_diffusion(root, _params(class_file, tiny_model, guidance=3.0), device="cpu")


def test_a_study_generates_its_diffusion_source_first_then_trains(tiny_model, class_file, tmp_path):
    from typer.testing import CliRunner

    from divrob.cli import app
    from divrob.workspace import init_workspace

    ws = init_workspace(tmp_path / "ws")
    cfg = ws.config_path.read_text()
    ws.config_path.write_text(cfg[: cfg.index("[demo]")] + "[demo]\ncamtrap_images = 200\ncamtrap_size = 16\n")
    recipe = tmp_path / "fig11-tiny.toml"
    recipe.write_text(f"""
[study]
name = "diffusion-tiny"
downstream = "camtrap-sim"
archs = ["resnet18"]
pretrain = {{ epochs = 1, batch_size = 4, image_size = 16 }}
finetune = {{ epochs = 1, batch_size = 32, image_size = 16 }}

[generate.diffusion]
model = "{tiny_model}"
classes = "{class_file}"
per_class = 2
steps = 2
size = {SIZE}

[[distribution]]
name = "diffusion-4"
source = "diffusion"
total = 4
""")
    res = CliRunner().invoke(app, ["study", "run", str(recipe), "-w", str(ws.root)])
    assert res.exit_code == 0, res.output
    assert "1 runs: 1 trained" in res.output
    from divrob.sources import source_index

    index = source_index(ws, "diffusion")
    assert len(index) == 4 and index["prompt"].str.contains("red fox|golden retriever").all()
