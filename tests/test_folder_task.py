"""A shift of the user's own: `train/`, `id_test/` and `ood_*/` ImageFolders named in divrob.toml,
scored by the chosen metric (sklearn's accuracy or macro-F1 over the classes present), through a
study run that lands every OOD split in the store."""

from __future__ import annotations

import io
import json

import duckdb
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import accuracy_score, f1_score
from typer.testing import CliRunner

from divrob.cli import app
from divrob.downstream import get_task, parse_task
from divrob.errors import SourceError
from divrob.workspace import init_workspace, open_workspace

CLASSES = ["cat", "deer", "fox"]
SPLITS = {"train": 5, "id_test": 2, "ood_night": 2, "ood_snow": 2}


def write_shift(root, splits=SPLITS, classes=CLASSES):
    for s, (split, n) in enumerate(splits.items()):
        for k, cls in enumerate(classes):
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                colour = (60 + 80 * k, 180 - 50 * k, 40 + 30 * s + 5 * i)
                buf = io.BytesIO()
                Image.new("RGB", (18, 14), colour).save(buf, format="PNG")
                (folder / f"{cls}_{i}.png").write_bytes(buf.getvalue())
    return root


def shift_workspace(tmp_path, root, name="traps"):
    ws = init_workspace(tmp_path / "ws")
    text = ws.config_path.read_text().replace("# mydata = ", f'{name} = "{root}"\n# mydata = ', 1)
    ws.config_path.write_text(text)
    return open_workspace(ws.root)


def test_splits_classes_and_metric(tmp_path):
    ws = shift_workspace(tmp_path, write_shift(tmp_path / "shift"))
    task = get_task(ws, parse_task({"task": "folder", "name": "traps", "metric": "f1_macro"}))
    assert (task.name, task.num_classes, task.id_split, task.ood_splits, task.metric) == (
        "folder:traps", 3, "id_test", ("ood_night", "ood_snow"), "f1_macro")
    for split, n in SPLITS.items():
        s = task.split(split)
        assert sorted(np.bincount(s.labels).tolist()) == [n] * 3
        assert all(p.parent.name == CLASSES[y] and p.parent.parent.name == split for p, y in zip(s.paths, s.labels))
    assert parse_task("folder:traps").metric == ("acc", "accuracy")  # accuracy unless asked


@pytest.mark.parametrize("metric", ["acc", "f1_macro"])
def test_score_is_sklearns_on_the_same_predictions(tmp_path, metric):
    ws = shift_workspace(tmp_path, write_shift(tmp_path / "shift"))
    task = get_task(ws, "folder:traps" if metric == "acc" else {"task": "folder", "name": "traps", "metric": metric})
    rng = np.random.default_rng(3)
    for split in task.eval_splits:
        labels = task.split(split).labels
        rows = rng.permutation(len(labels))[:-1]
        y = labels[rows]
        preds = np.where(rng.uniform(size=len(rows)) < 0.5, y, rng.integers(0, 3, len(rows)))
        expected = (accuracy_score(y, preds) if metric == "acc"
                    else f1_score(y, preds, average="macro", labels=np.unique(y)))
        assert task.score(split, preds, y, rows)["score"] == pytest.approx(expected)


def test_layout_errors_say_what_to_do(tmp_path):
    ws = shift_workspace(tmp_path, write_shift(tmp_path / "shift", {"train": 2, "id_test": 1}))
    with pytest.raises(SourceError, match=r"lacks ood_<name>; expected train/, id_test/ and one or more ood_<name>/"):
        get_task(ws, "folder:traps")
    write_shift(tmp_path / "shift", {"ood_dusk": 1}, classes=["cat", "wolf"])
    with pytest.raises(SourceError, match="ood_dusk has classes train/ lacks: wolf"):
        get_task(ws, "folder:traps")
    with pytest.raises(SourceError, match=r"no folder named 'elsewhere'.*under \[datasets.folders\]"):
        get_task(ws, "folder:elsewhere")
    with pytest.raises(ValueError, match=r"metric: Input should be 'acc' or 'f1_macro'"):
        parse_task({"task": "folder", "name": "traps", "metric": "auc"})


RECIPE = """
[study]
name = "my-shift"
downstream = { task = "folder", name = "traps", metric = "f1_macro" }
archs = ["resnet18"]
seeds = [0, 1]
finetune = { epochs = 2, batch_size = 8, lr = 1e-3, image_size = 16 }

[[distribution]]
name = "scratch"
"""


@pytest.mark.slow
def test_study_run_lands_every_ood_split(tmp_path):
    ws = shift_workspace(tmp_path, write_shift(tmp_path / "shift"))
    recipe = tmp_path / "shift.toml"
    recipe.write_text(RECIPE)
    runner = CliRunner()
    res = runner.invoke(app, ["study", "run", str(recipe), "-w", str(ws.root)])
    assert res.exit_code == 0, res.output
    con = duckdb.connect(str(ws.db_path), read_only=True)
    try:
        rows = con.execute("SELECT run_id, epoch, split, score, f1_macro FROM epochs WHERE phase = 'finetune' "
                           "AND split != 'train'").df()
        specs = [json.loads(s) for (s,) in con.execute("SELECT spec FROM runs").fetchall()]
    finally:
        con.close()
    assert rows.groupby("split").size().to_dict() == {"id_test": 4, "ood_night": 4, "ood_snow": 4}  # 2 runs x 2 epochs
    # macro-F1 over the classes present: the task's score and WILDS's generic macro-F1 agree
    assert np.allclose(rows["score"], rows["f1_macro"])
    assert {(s["downstream"], json.dumps(s["downstream_options"])) for s in specs} == {
        ("folder:traps", '{"metric": "f1_macro"}')}
    out = runner.invoke(app, ["results", "--study", "my-shift", "--ood", "ood_snow", "--format", "csv",
                              "-w", str(ws.root)])
    assert out.exit_code == 0, out.output
    df = pd.read_csv(io.StringIO(out.output))
    assert set(df["ood"]) == {"ood_snow"} and set(df["metric"]) == {"macro-F1"} and len(df) == 4
    snow = rows[rows.split == "ood_snow"].set_index(["run_id", "epoch"])["score"]
    assert np.allclose(df.set_index(["run_id", "epoch"])["ood_score"].sort_index(), snow.sort_index())
