"""`divrob data`, `divrob taxonomy depths` and `divrob recipes build` on tiny real-layout data."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from divrob.cli import app
from divrob.taxonomy.imagenet import depth_counts
from divrob.workspace import init_workspace


@pytest.fixture()
def ws(tiny_imagenet, tiny_inat2017, tmp_path):
    w = init_workspace(tmp_path / "ws")
    cfg = w.config_path.read_text()
    cfg = cfg.replace('imagenet = ""', f'imagenet = "{tiny_imagenet}"').replace('inat2017 = ""', f'inat2017 = "{tiny_inat2017}"')
    w.config_path.write_text(cfg)
    return w.root


def test_data_index_and_show(ws, tiny_imagenet_counts):
    runner = CliRunner()
    res = runner.invoke(app, ["data", "index", "imagenet", "-w", str(ws)])
    assert res.exit_code == 0, res.output
    assert f"{sum(tiny_imagenet_counts.values())} images in {len(tiny_imagenet_counts)} classes" in res.output
    res = runner.invoke(app, ["data", "show", "inat2017", "-w", str(ws)])
    assert res.exit_code == 0, res.output
    assert "supercategories" in res.output and "Aves" in res.output


def test_unset_and_unknown_sources_are_clear_errors(tmp_path):
    w = init_workspace(tmp_path / "ws").root
    runner = CliRunner()
    res = runner.invoke(app, ["data", "index", "imagenet", "-w", str(w)])
    assert res.exit_code == 2 and "root is not set" in res.output and "divrob.toml" in res.output
    res = runner.invoke(app, ["data", "index", "imagenett", "-w", str(w)])
    assert res.exit_code == 2 and "unknown source 'imagenett'" in res.output


def test_taxonomy_depths_json():
    res = CliRunner().invoke(app, ["taxonomy", "depths", "--json"])
    assert res.exit_code == 0
    got = json.loads(res.output)
    assert got == {str(k): v for k, v in depth_counts().items()}
    assert got["2"] == 5 and got[str(max(map(int, got)))] == 1000


def test_recipes_build_reports_each_distribution(ws, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        '[study]\nname = "b"\narchs = ["resnet18"]\n'
        '[[distribution]]\nname = "scratch"\n'
        '[[distribution]]\nname = "in-{total}"\nsource = "imagenet"\ntotal = [4, 8]\nreplace = true\n'
        '[[distribution]]\nname = "too-many"\nsource = "imagenet"\nper_class = 2\nreplace = true\n'
    )
    res = CliRunner().invoke(app, ["recipes", "build", str(recipe), "-w", str(ws)])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.output.splitlines() if "in-8" in line and "│" in line]
    cells = [c.strip() for c in lines[0].split("│")]
    assert cells[3:7] == ["4", "8", "2", "2"]  # classes, images, min, max
    assert "images per class" in res.output
