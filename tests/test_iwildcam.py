"""iWildCam-WILDS through the `wilds` package itself, on a tiny `iwildcam_v2.0/` in the real
layout; and a fine-tune on it through `execute_run`.

`write_iwildcam` and `iwildcam_workspace` are imported by the test_train_* modules too.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from divrob.downstream import get_task
from divrob.errors import RunError, SourceError
from divrob.runs.execute import execute_run
from divrob.runs.spec import RunSpec
from divrob.train.config import finetune_config
from divrob.workspace import init_workspace

# images per (split, class); 3 classes as WILDS labels y = 0, 1, 2
SPLIT_COUNTS = {"train": 8, "id_val": 2, "id_test": 2, "val": 2, "test": 2}
CLASSES = [(0, 0, "empty"), (1, 372, "tayassu pecari"), (2, 101, "dasyprocta punctata")]  # y, category_id, name
# WILDS's split is by camera: train and the ID splits share locations, val and test have their own
LOCATIONS = {"train": [0, 1], "id_val": [0, 1], "id_test": [0, 1], "val": [2], "test": [3]}
COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]


def _jpeg(colour, size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def write_iwildcam(root: Path, truncated: int = 0, counts: dict[str, int] | None = None) -> Path:
    """`<root>/iwildcam_v2.0/` as WILDS ships it: RELEASE_v2.0.txt, metadata.csv with the real
    columns (an unnamed index first, as pandas wrote it), categories.csv and train/<uuid>.jpg.
    The first `truncated` training images are cut in half (unreadable JPEGs)."""
    counts = counts or SPLIT_COUNTS
    data = root / "iwildcam_v2.0"
    (data / "train").mkdir(parents=True, exist_ok=True)
    (data / "RELEASE_v2.0.txt").write_text("v2.0 tiny fixture\n")
    rows = []
    for split, per_class in counts.items():
        for y, category_id, _ in CLASSES:
            for i in range(per_class):
                n = len(rows)
                loc = LOCATIONS[split][i % len(LOCATIONS[split])]
                filename = f"{n:08x}-21bc-11ea-a13a-137349068a90.jpg"
                body = _jpeg(COLOURS[y])
                if split == "train" and y == 0 and i < truncated:
                    body = body[: len(body) // 2]
                (data / "train" / filename).write_bytes(body)
                rows.append({
                    "split": split, "location_remapped": loc, "location": 100 + loc * 7,
                    "sequence_remapped": n, "sequence": f"seq{n:05d}", "y": y, "category_id": category_id,
                    "datetime": f"2013-06-{1 + n % 28:02d} {n % 24:02d}:01:38.000", "filename": filename,
                    "image_id": filename[:-4],
                })
    pd.DataFrame(rows).to_csv(data / "metadata.csv")
    pd.DataFrame([{"y": y, "category_id": c, "name": name} for y, c, name in CLASSES]).to_csv(
        data / "categories.csv", index=False)
    return root


def iwildcam_workspace(tmp: Path, wilds_root: Path, max_unreadable: float | None = None):
    ws = init_workspace(tmp / "ws")
    text = ws.config_path.read_text().replace('iwildcam = ""', f'iwildcam = "{wilds_root}"', 1)
    if max_unreadable is not None:  # a tiny split: one bad file is more than the default 1 %
        text = text.replace("max_unreadable_fraction = 0.01", f"max_unreadable_fraction = {max_unreadable}", 1)
    ws.config_path.write_text(text)
    from divrob.workspace import open_workspace

    return open_workspace(ws.root)


def tiny_spec(**finetune) -> RunSpec:
    over = {"epochs": 1, "batch_size": 8, "lr": 1e-3, "image_size": 16, **finetune}
    return RunSpec(arch="resnet18", seed=0, downstream="iwildcam", finetune=finetune_config("resnet18", over))


def test_loads_through_wilds(tmp_path):
    ws = iwildcam_workspace(tmp_path, write_iwildcam(tmp_path / "wilds"))
    task = get_task(ws, "iwildcam")
    assert task.num_classes == 3
    for split, per_class in SPLIT_COUNTS.items():
        s = task.split(split)
        assert len(s.paths) == 3 * per_class
        assert sorted(np.bincount(s.labels).tolist()) == [per_class] * 3
        assert all(p.exists() and p.parent.name == "train" for p in s.paths)


def test_layout_errors_say_what_to_do(tmp_path):
    root = write_iwildcam(tmp_path / "wilds")
    ws = iwildcam_workspace(tmp_path, root)
    (root / "iwildcam_v2.0" / "RELEASE_v2.0.txt").unlink()
    with pytest.raises(SourceError, match="RELEASE_v2.0.txt"):
        get_task(ws, "iwildcam")
    (root / "iwildcam_v2.0" / "RELEASE_v2.0.txt").write_text("v2.0\n")
    meta = pd.read_csv(root / "iwildcam_v2.0" / "metadata.csv", index_col=0)
    meta.drop(columns=["sequence_remapped"]).to_csv(root / "iwildcam_v2.0" / "metadata.csv")
    with pytest.raises(SourceError, match="not in the WILDS format"):
        get_task(ws, "iwildcam")


@pytest.mark.slow
def test_finetune_records_wilds_splits_and_skips_a_truncated_jpeg(tmp_path):
    ws = iwildcam_workspace(tmp_path, write_iwildcam(tmp_path / "wilds", truncated=1), max_unreadable=0.1)
    rd = execute_run(ws, tiny_spec(epochs=2))
    events = rd.events()
    assert [(e["phase"], e["epoch"]) for e in events] == [("finetune", 1), ("finetune", 2)]
    for e in events:
        assert set(e["metrics"]) == {"train", "id_val", "id_test", "val", "test"}
        assert e["metrics"]["train"]["n"] == 3 * SPLIT_COUNTS["train"] - 1  # the truncated one skipped
        assert e["metrics"]["test"]["n"] == 3 * SPLIT_COUNTS["test"]
        assert 0.0 <= e["metrics"]["test"]["f1_macro"] <= 1.0
        assert e["skipped_images"] == 1
    status = json.loads(rd.status_path.read_text())
    assert status["state"] == "finished"
    assert status["unreadable"] == 1 and "1 of 24 images are unreadable" in rd.log_path.read_text()
    # the progress fields the job scheduler shows, left at their last values
    assert (status["phase"], status["epoch"], status["step"], status["steps_per_epoch"]) == ("finetune", 2, 3, 3)
    assert status["images_per_s"] > 0


def test_nan_loss_fails_the_run_with_the_reason(tmp_path):
    ws = iwildcam_workspace(tmp_path, write_iwildcam(tmp_path / "wilds"))
    spec = tiny_spec(lr=1e30, optimizer="sgd")
    with pytest.raises(RunError, match="loss became"):
        execute_run(ws, spec)
    status = json.loads((ws.runs / spec.run_id / "status.json").read_text())
    assert status["state"] == "failed" and "lower the learning rate" in status["reason"]
    assert not (ws.runs / spec.run_id / "events.jsonl").exists()
