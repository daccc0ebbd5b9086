"""One tiny study end to end through the CLI: data generation, manifests, pre-training,
fine-tuning, the store, the trend plot and the figure; then a re-run that trains nothing."""

from __future__ import annotations

import duckdb
import pytest
from typer.testing import CliRunner

from divrob.cli import app

RECIPE = """
[study]
name = "tiny"
downstream = "camtrap-sim"
archs = ["resnet18"]
seeds = [0]
pretrain = { epochs = 1, batch_size = 32, lr = 0.05, image_size = 16 }
finetune = { epochs = 2, batch_size = 32, lr = 1e-3, image_size = 16 }

[[distribution]]
name = "scratch"

[[distribution]]
name = "shapes-{total}"
source = "demo-shapes"
total = [60, 120]
"""

DEMO_SIZES = """
[demo]
shapes_classes = 6
shapes_per_class = 24
shapes_size = 16
camtrap_images = 300
camtrap_size = 16
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    ws = tmp / "ws"
    runner = CliRunner()
    res = runner.invoke(app, ["init", str(ws)])
    assert res.exit_code == 0, res.output
    cfg = ws / "divrob.toml"
    text = cfg.read_text()
    cfg.write_text(text[: text.index("[demo]")] + DEMO_SIZES)
    recipe = tmp / "tiny.toml"
    recipe.write_text(RECIPE)
    first = runner.invoke(app, ["study", "run", str(recipe), "-w", str(ws)])
    assert first.exit_code == 0, first.output
    return runner, ws, recipe, first


@pytest.mark.slow
def test_store_holds_every_epoch_once(study):
    _, ws, _, first = study
    assert "3 runs: 3 trained" in first.output
    con = duckdb.connect(str(ws / "divrob.duckdb"), read_only=True)
    try:
        runs = con.execute("SELECT count(*) FROM runs WHERE state = 'finished'").fetchone()[0]
        fine = con.execute(
            "SELECT split, count(*) FROM epochs WHERE phase = 'finetune' GROUP BY split ORDER BY split"
        ).fetchall()
        pre = con.execute("SELECT count(*) FROM epochs WHERE phase = 'pretrain'").fetchone()[0]
        dists = con.execute("SELECT DISTINCT distribution FROM study_runs ORDER BY 1").fetchall()
        f1 = con.execute("SELECT min(f1_macro), max(f1_macro) FROM epochs WHERE split = 'test'").fetchone()
    finally:
        con.close()
    assert runs == 3
    # 3 runs x 2 fine-tuning epochs, for train and the four WILDS evaluation splits
    assert fine == [(s, 6) for s in ("id_test", "id_val", "test", "train", "val")]
    assert pre == 2  # two pre-trained runs x 1 epoch
    assert [d[0] for d in dists] == ["scratch", "shapes-120", "shapes-60"]
    assert 0.0 <= f1[0] <= f1[1] <= 1.0


def test_plot_and_figure(study):
    runner, ws, recipe, _ = study
    fig = ws / "figures" / "tiny.png"
    res = runner.invoke(app, ["plot", "trends", str(recipe), "-w", str(ws), "--export", str(fig)])
    assert res.exit_code == 0, res.output
    assert "shapes-120" in res.output and "linear trends" in res.output
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    csv = runner.invoke(app, ["results", "--study", "tiny", "--format", "csv", "-w", str(ws)])
    assert csv.exit_code == 0
    assert csv.output.splitlines()[0].startswith("study,distribution,source,arch,seed,run_id,epoch,id_f1,ood_f1")
    assert len(csv.output.strip().splitlines()) == 1 + 3 * 2


def test_rerun_trains_nothing(study):
    runner, ws, recipe, _ = study
    events = sorted((ws / "runs").glob("*/events.jsonl"))
    before = [p.read_bytes() for p in events]
    again = runner.invoke(app, ["study", "run", str(recipe), "-w", str(ws)])
    assert again.exit_code == 0, again.output
    assert "0 trained, 3 already finished" in again.output
    assert [p.read_bytes() for p in events] == before


def test_unknown_study_and_missing_workspace(study, tmp_path):
    runner, ws, _, _ = study
    res = runner.invoke(app, ["plot", "trends", "nope", "-w", str(ws)])
    assert res.exit_code == 2 and "no study named 'nope'" in res.output and "tiny" in res.output
    res = runner.invoke(app, ["study", "run", "x.toml", "-w", str(tmp_path / "none")])
    assert res.exit_code == 1 and "divrob init" in res.output
