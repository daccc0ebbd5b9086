"""`divrob data preview` shows what training feeds the model: on the real wilds loader over a tiny
iwildcam_v2.0, a 16:9 frame is the whole frame squashed to 448 x 448 (torchvision's Resize((448,
448)) of the file); on a folder source of 4:3 images, pre-training crops reach the left and the
right border."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torchvision.transforms as T
from PIL import Image
from typer.testing import CliRunner

from divrob.cli import app
from divrob.downstream import get_task
from divrob.workspace import init_workspace
from test_iwildcam import iwildcam_workspace, write_iwildcam

RED, BLUE, GREY = (220, 30, 30), (30, 30, 220), (128, 128, 128)


def _banded(width: int, height: int, band: int, seed: int = 0) -> Image.Image:
    """Grey noise with a red band on the left and a blue band on the right edge."""
    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal(128, 20, (height, width, 3)), 0, 255).astype(np.uint8)
    img[:, :band] = RED
    img[:, width - band:] = BLUE
    return Image.fromarray(img)


def _preview(args: list[str]) -> list[Path]:
    res = CliRunner().invoke(app, ["data", "preview", *args])
    assert res.exit_code == 0, res.output
    paths = [Path(line) for line in res.output.splitlines() if line.endswith(".png")]
    assert paths and all(p.exists() for p in paths)
    return paths


def _colour_share(column: np.ndarray, colour) -> float:
    return float((np.abs(column.astype(int) - colour).max(-1) < 40).mean())


def test_finetune_preview_of_a_16x9_iwildcam_frame_is_the_whole_frame_at_448(tmp_path):
    ws = iwildcam_workspace(tmp_path, write_iwildcam(tmp_path / "wilds"))
    first = get_task(ws, "iwildcam").split("train").paths[0]
    frame = _banded(320, 180, band=16)
    frame.save(first, quality=95)  # the frame the real wilds loader lists first
    (png,) = _preview(["iwildcam", "--phase", "finetune", "--n", "1", "--out", str(tmp_path / "out"),
                       "-w", str(ws.root)])
    got = np.asarray(Image.open(png))
    assert got.shape == (448, 448, 3)
    want = np.asarray(T.Resize((448, 448))(Image.open(first).convert("RGB")))
    assert np.abs(got.astype(int) - want).mean() <= 1  # WILDS's input, to one grey level
    # the whole frame: both bands, each squashed to 16/320 of 448 = 22 columns
    assert _colour_share(got[:, 0], RED) > 0.95 and _colour_share(got[:, 20], RED) > 0.95
    assert _colour_share(got[:, -1], BLUE) > 0.95 and _colour_share(got[:, -21], BLUE) > 0.95
    assert _colour_share(got[:, 224], RED) == 0 and _colour_share(got[:, 224], BLUE) == 0


def test_pretrain_preview_of_4x3_folder_images_reaches_left_and_right_borders(tmp_path):
    ws = init_workspace(tmp_path / "ws")
    root = tmp_path / "cams"
    for k in range(40):
        d = root / f"class{k % 2}"
        d.mkdir(parents=True, exist_ok=True)
        _banded(160, 120, band=8, seed=k).save(d / f"{k:03d}.jpg", quality=95)
    ws.config_path.write_text(ws.config_path.read_text().replace(
        "[datasets.folders]\n", f'[datasets.folders]\ncams = "{root}"\n', 1))
    out = tmp_path / "out"
    pngs = _preview(["folder:cams", "--phase", "pretrain", "--n", "40", "--image-size", "32",
                     "--out", str(out), "-w", str(ws.root)])
    assert len(pngs) == 40
    images = [np.asarray(Image.open(p)) for p in pngs]
    assert all(im.shape == (32, 32, 3) for im in images)
    # a crop that starts at the left border shows the red band along one edge (the other if
    # flipped); 8 px of 160 is where a crop must start for its first output column to be red
    edges = [(im[:, 0], im[:, -1]) for im in images]
    left = sum(max(_colour_share(a, RED), _colour_share(b, RED)) > 0.9 for a, b in edges)
    right = sum(max(_colour_share(a, BLUE), _colour_share(b, BLUE)) > 0.9 for a, b in edges)
    assert left >= 2 and right >= 2, (left, right)
    assert len({im.tobytes() for im in images}) == 40  # crops differ

    # the same images at evaluation: whole frames, red left and blue right, never flipped
    evals = _preview(["folder:cams", "--phase", "eval", "--n", "3", "--image-size", "32",
                      "--out", str(tmp_path / "eval"), "-w", str(ws.root)])
    for p in evals:
        im = np.asarray(Image.open(p))
        assert _colour_share(im[:, 0], RED) > 0.9 and _colour_share(im[:, -1], BLUE) > 0.9


def test_preview_errors_say_what_to_fix(tmp_path):
    ws = init_workspace(tmp_path / "ws")
    res = CliRunner().invoke(app, ["data", "preview", "demo-shapes", "--phase", "train", "--out",
                                   str(tmp_path / "o"), "-w", str(ws.root)])
    assert res.exit_code == 2 and "'train': choose from pretrain, finetune, eval" in res.output
