"""fMoW-, Camelyon17- and RxRx1-WILDS through the `wilds` package itself, on tiny datasets in their
true layouts (tests/wilds_layouts.py): the splits and files are WILDS's, the score is the
dataset's own eval() on the same predictions, the fine-tuning defaults are WILDS's configs, and a
study over all three lands each task's ID and OOD scores in the store."""

from __future__ import annotations

import importlib
import io
import json

import duckdb
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from divrob.cli import app
from divrob.downstream import get_task, parse_task
from divrob.downstream.wilds import DATASETS, open_wilds
from divrob.errors import SourceError
from divrob.recipes.load import load_recipe
from divrob.runs.grid import plan_study
from divrob.workspace import init_workspace, open_workspace
from wilds_layouts import WRITERS

NAMES = list(WRITERS)


@pytest.fixture(scope="module")
def wilds_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("wilds")
    for write in WRITERS.values():
        write(root)
    return root


def wilds_workspace(tmp, root):
    ws = init_workspace(tmp / "ws")
    ws.config_path.write_text(ws.config_path.read_text().replace('wilds = ""', f'wilds = "{root}"', 1))
    return open_workspace(ws.root)


@pytest.fixture(scope="module")
def ws(tmp_path_factory, wilds_root):
    return wilds_workspace(tmp_path_factory.mktemp("ws"), wilds_root)


def _reference(name, root):
    """The dataset as WILDS's own class builds it (what divrob must agree with)."""
    module, cls = DATASETS[name].dataset_class.split(":")
    from divrob.downstream.wilds import _writable_values

    with _writable_values(DATASETS[name].writes_series_values):
        return getattr(importlib.import_module(f"wilds.datasets.{module}"), cls)(root_dir=str(root), download=False)


@pytest.mark.parametrize("name", NAMES)
def test_splits_and_files_are_wilds(ws, wilds_root, name):
    task = get_task(ws, f"wilds:{name}")
    ref = _reference(name, wilds_root)
    assert task.num_classes == ref.n_classes
    assert set(task.splits) == set(ref.split_dict)
    assert task.id_split == ("id_val" if name == "camelyon17" else "id_test")
    assert task.ood_splits == ("test", "val")
    for split in ref.split_dict:
        subset = ref.get_subset(split)
        s = task.split(split)
        assert len(s.paths) == len(subset) > 0
        assert s.labels.tolist() == subset.y_array.tolist()
        for i in (0, len(subset) - 1):  # the file divrob decodes is the image WILDS's get_input opens
            with Image.open(s.paths[i]) as img:
                assert np.array_equal(np.asarray(img.convert("RGB")), np.asarray(subset[i][0].convert("RGB")))


def test_split_rules_hold_on_the_fakes(ws, wilds_root):
    """The fakes exercise what each class decides: fMoW's years and its sequestered rows,
    Camelyon17's hospitals, RxRx1's ID test (site 2 of the train experiments)."""
    fmow = get_task(ws, "wilds:fmow")
    meta = pd.read_csv(wilds_root / "fmow_v1.1" / "rgb_metadata.csv")
    year = pd.to_datetime(meta["timestamp"]).dt.year
    index = {f"rgb_img_{i}.png": i for i in range(len(meta))}
    for split, years in {"train": (2002, 2012), "id_test": (2002, 2012), "val": (2013, 2015), "test": (2016, 2017)}.items():
        rows = [index[p.name] for p in fmow.split(split).paths]
        assert year[rows].between(*years).all() and "seq" not in set(meta["split"][rows])
    camelyon = get_task(ws, "wilds:camelyon17")
    centers = pd.read_csv(wilds_root / "camelyon17_v1.0" / "metadata.csv", index_col=0)["center"]
    assert len(camelyon.split("test").paths) == (centers == 2).sum()
    assert len(camelyon.split("val").paths) == (centers == 1).sum()
    rxrx1 = get_task(ws, "wilds:rxrx1")
    rx = pd.read_csv(wilds_root / "rxrx1_v1.0" / "metadata.csv")
    assert len(rxrx1.split("id_test").paths) == ((rx.dataset == "train") & (rx.site == 2)).sum()
    assert all(p.name.endswith("_s2.png") for p in rxrx1.split("id_test").paths)
    assert len(rxrx1.split("train").paths) == ((rx.dataset == "train") & (rx.site == 1)).sum()


@pytest.mark.parametrize("name", NAMES)
def test_score_is_the_datasets_own_eval(ws, wilds_root, name):
    """On predictions for a shuffled subset of a split (unreadable images are skipped), the score
    is what WILDS's eval() gives for those examples' labels and metadata."""
    task = get_task(ws, f"wilds:{name}")
    ref = _reference(name, wilds_root)
    rng = np.random.default_rng(1)
    for split in task.eval_splits:
        subset = ref.get_subset(split)
        rows = rng.permutation(len(subset))[: max(2, len(subset) - 2)]
        labels = task.split(split).labels[rows]
        preds = np.where(rng.uniform(size=len(rows)) < 0.5, labels, rng.integers(0, task.num_classes, len(rows)))
        ours = task.score(split, preds, labels, rows)
        theirs, _ = ref.eval(torch.as_tensor(preds), subset.y_array[rows], subset.metadata_array[rows])
        metric = DATASETS[name].metric
        assert ours["score"] == pytest.approx(float(theirs[metric]))
        assert ours["wilds"].keys() == theirs.keys()


def test_finetune_defaults_are_the_wilds_configs(ws, tmp_path):
    recipe = tmp_path / "defaults.toml"
    recipe.write_text("""
[study]
name = "defaults"
downstream = ["wilds:fmow", "wilds:camelyon17", "wilds:rxrx1", "iwildcam"]
archs = ["densenet121"]
finetune = { batch_size = 8 }

[[distribution]]
name = "scratch"
""")
    plan = plan_study(ws, load_recipe(recipe))
    cfg = {pr.spec.downstream: pr.spec.finetune for pr in plan.runs}
    fmow, camelyon, rxrx1, iwildcam = cfg["wilds:fmow"], cfg["wilds:camelyon17"], cfg["wilds:rxrx1"], cfg["iwildcam"]
    assert (fmow.optimizer, fmow.lr, fmow.weight_decay, fmow.epochs, fmow.image_size, fmow.lr_step, fmow.lr_gamma) == (
        "adam", 1e-4, 0.0, 60, 224, 1, 0.96)
    assert (camelyon.optimizer, camelyon.lr, camelyon.momentum, camelyon.weight_decay, camelyon.epochs,
            camelyon.image_size, camelyon.lr_step) == ("sgd", 1e-3, 0.9, 0.01, 10, 96, None)
    assert (rxrx1.optimizer, rxrx1.lr, rxrx1.weight_decay, rxrx1.epochs, rxrx1.image_size) == ("adam", 1e-3, 1e-5, 90, 256)
    assert (iwildcam.optimizer, iwildcam.lr, iwildcam.epochs, iwildcam.image_size) == ("adam", 3e-5, 12, 448)
    assert {c.batch_size for c in cfg.values()} == {8}  # the recipe's own setting wins
    assert all(pr.spec.downstream_options == {} for pr in plan.runs)
    labels = [j.label for j in plan.jobs()]
    assert "wilds:fmow / scratch / densenet121 / seed 0" in labels  # several tasks: the job says which


def test_iwildcam_alias_keeps_run_ids():
    """`iwildcam` and `wilds:iwildcam` are one task, recorded as "iwildcam" with no options, so
    runs planned before the task registry keep their ids."""
    a, b = parse_task("iwildcam"), parse_task({"task": "wilds:iwildcam"})
    assert a.label == b.label == "iwildcam" and a.spec_options == b.spec_options == {}
    from divrob.runs.spec import RunSpec
    from divrob.train.config import finetune_config

    spec = RunSpec(arch="resnet18", seed=0, downstream=a.label, downstream_options=a.spec_options,
                   finetune=finetune_config("resnet18"))
    assert "downstream_options" not in spec.identity()
    assert RunSpec.from_dict(json.loads(json.dumps(spec.to_dict()))).run_id == spec.run_id


def test_layout_errors_say_what_to_do(tmp_path, wilds_root):
    ws = init_workspace(tmp_path / "bare")
    with pytest.raises(SourceError, match=r"set `wilds` = .* under \[datasets\].*fmow_v1.1/"):
        get_task(ws, "wilds:fmow")
    with pytest.raises(SourceError, match="does not hold rxrx1_v1.0/"):
        open_wilds(tmp_path, DATASETS["rxrx1"], "wilds:rxrx1")
    data = tmp_path / "camelyon17_v1.0"
    data.mkdir()
    with pytest.raises(SourceError, match="no RELEASE_v1.0.txt"):
        open_wilds(tmp_path, DATASETS["camelyon17"], "wilds:camelyon17")
    (data / "RELEASE_v1.0.txt").write_text("x")
    (data / "metadata.csv").write_text("patient,node\n1,2\n")
    with pytest.raises(SourceError, match="not in the WILDS format"):
        open_wilds(tmp_path, DATASETS["camelyon17"], "wilds:camelyon17")


RECIPE = """
[study]
name = "wilds-tasks"
downstream = ["wilds:fmow", "wilds:camelyon17", "wilds:rxrx1"]
archs = ["resnet18"]
seeds = [0]
finetune = { epochs = 1, batch_size = 8, lr = 1e-3, image_size = 16 }

[[distribution]]
name = "scratch"
"""


@pytest.mark.slow
def test_study_over_three_wilds_tasks_lands_their_scores(tmp_path, wilds_root):
    ws = wilds_workspace(tmp_path, wilds_root)
    recipe = tmp_path / "wilds.toml"
    recipe.write_text(RECIPE)
    runner = CliRunner()
    res = runner.invoke(app, ["study", "run", str(recipe), "-w", str(ws.root)])
    assert res.exit_code == 0, res.output
    events = {json.loads((d / "spec.json").read_text())["downstream"]: [json.loads(line) for line in
              (d / "events.jsonl").read_text().splitlines()] for d in ws.runs.iterdir() if (d / "events.jsonl").exists()}
    assert set(events) == {"wilds:fmow", "wilds:camelyon17", "wilds:rxrx1"}
    con = duckdb.connect(str(ws.db_path), read_only=True)
    try:
        stored = con.execute("SELECT r.downstream, e.split, e.score FROM epochs e JOIN runs r USING (run_id) "
                             "WHERE e.phase = 'finetune' AND e.split != 'train'").fetchall()
    finally:
        con.close()
    for label, split, score in stored:  # the store holds each split's eval() metric, as the run recorded it
        m = events[label][0]["metrics"][split]
        assert score == pytest.approx(m["wilds"][DATASETS[label.split(":")[1]].metric]) and score == m["score"]
    assert {(label, split) for label, split, _ in stored} == {
        ("wilds:fmow", s) for s in ("id_val", "id_test", "val", "test")} | {
        ("wilds:camelyon17", s) for s in ("id_val", "val", "test")} | {
        ("wilds:rxrx1", s) for s in ("id_test", "val", "test")}
    # the results read each task's own ID split (Camelyon17: id_val) and WILDS's OOD test
    out = runner.invoke(app, ["results", "--study", "wilds-tasks", "--format", "csv", "-w", str(ws.root)])
    assert out.exit_code == 0, out.output
    df = pd.read_csv(io.StringIO(out.output)).set_index("downstream")
    assert df[["id_score", "ood_score"]].notna().all().all() and set(df["ood"]) == {"test"}
    assert df.loc["wilds:fmow", "metric"] == "worst-region accuracy"
    assert df.loc["wilds:camelyon17", "id_score"] == pytest.approx(
        events["wilds:camelyon17"][0]["metrics"]["id_val"]["score"])
    assert df.loc["wilds:rxrx1", "ood_score"] == pytest.approx(events["wilds:rxrx1"][0]["metrics"]["test"]["score"])
