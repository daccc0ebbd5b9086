"""DomainNet on a tiny tree in its standard layout (`<domain>/<class>/<file>.jpg` plus the split
lists `<domain>_train.txt` / `<domain>_test.txt`): the downstream task (ID = the ID domain's test
list, one OOD split per other domain, accuracy), DomainNet as a pre-training source, and a study
run through the CLI that lands every OOD split in the store and reads them with --ood and
--facet ood."""

from __future__ import annotations

import io
import json
import re

import duckdb
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import accuracy_score
from typer.testing import CliRunner

from divrob.cli import app
from divrob.downstream import get_task, parse_task
from divrob.errors import SourceError
from divrob.sources import source_index
from divrob.sources.domainnet import DOMAINS
from divrob.workspace import init_workspace, open_workspace

ANSI = re.compile(r"\x1b\[[0-9;]*m")
CLASSES = ["aircraft_carrier", "bat", "zebra"]  # labels 0, 1, 2: DomainNet's labels follow sorted names
PER_CLASS = {"train": 4, "test": 2}


def _jpeg(k: int, domain: int, i: int) -> bytes:
    buf = io.BytesIO()
    colour = [40 + 70 * k, 200 - 60 * k, 90 + 25 * domain]
    Image.new("RGB", (20 + 4 * (i % 3), 18), tuple(min(255, c + 3 * i) for c in colour)).save(buf, format="JPEG")
    return buf.getvalue()


def write_domainnet(root, domains=DOMAINS, classes=CLASSES):
    """Every domain: class folders of JPEGs and the two split lists naming them with labels."""
    for d, domain in enumerate(domains):
        for part, n in PER_CLASS.items():
            lines = []
            for k, cls in enumerate(classes):
                folder = root / domain / cls
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(n):
                    name = f"{domain}_{k:03d}_{part}{i:03d}.jpg"
                    (folder / name).write_bytes(_jpeg(k, d, i))
                    lines.append(f"{domain}/{cls}/{name} {k}")
            (root / f"{domain}_{part}.txt").write_text("\n".join(lines) + "\n")
    return root


def domainnet_workspace(tmp_path, root):
    ws = init_workspace(tmp_path / "ws")
    text = ws.config_path.read_text().replace('domainnet = ""', f'domainnet = "{root}"', 1)
    ws.config_path.write_text(text)
    return open_workspace(ws.root)


@pytest.fixture
def dn(tmp_path):
    root = write_domainnet(tmp_path / "domainnet")
    return domainnet_workspace(tmp_path, root), root


def test_task_splits_are_the_lists(dn):
    ws, root = dn
    task = get_task(ws, parse_task({"task": "domainnet", "id_domain": "infograph", "ood_domains": ["sketch", "clipart"]}))
    assert task.name == "domainnet:infograph" and task.num_classes == 3
    assert list(task.splits) == ["train", "id_test", "clipart", "sketch"]  # OOD splits in DomainNet's domain order
    assert (task.id_split, task.ood_splits, task.metric) == ("id_test", ("clipart", "sketch"), "acc")
    for split, (domain, part) in {"train": ("infograph", "train"), "id_test": ("infograph", "test"),
                                  "sketch": ("sketch", "test"), "clipart": ("clipart", "test")}.items():
        lines = [line.split() for line in (root / f"{domain}_{part}.txt").read_text().splitlines()]
        s = task.split(split)
        assert [str(p.relative_to(root)) for p in s.paths] == [p for p, _ in lines]
        assert s.labels.tolist() == [int(y) for _, y in lines]
        assert all(p.is_file() for p in s.paths)
    # the default OOD splits: every other domain
    assert get_task(ws, "domainnet:sketch").ood_splits == tuple(d for d in DOMAINS if d != "sketch")


def test_accuracy_is_sklearns_on_the_same_predictions(dn):
    ws, _ = dn
    task = get_task(ws, "domainnet:real")
    rng = np.random.default_rng(0)
    for split in task.eval_splits:
        labels = task.split(split).labels
        rows = rng.permutation(len(labels))[: len(labels) - 1]  # some images skipped, in any order
        preds = np.where(rng.uniform(size=len(rows)) < 0.6, labels[rows], rng.integers(0, 3, len(rows)))
        assert task.score(split, preds, labels[rows], rows)["score"] == pytest.approx(accuracy_score(labels[rows], preds))


def test_list_errors_name_the_file_and_line(dn):
    ws, root = dn
    lines = (root / "sketch_test.txt").read_text().splitlines()
    (root / "sketch_test.txt").write_text("\n".join([*lines[:2], "sketch/zebra/x.jpg", *lines[2:]]) + "\n")
    with pytest.raises(SourceError, match=r"sketch_test.txt, line 3: 'sketch/zebra/x.jpg' is not"):
        get_task(ws, "domainnet:real")
    (root / "sketch_test.txt").write_text("\n".join([lines[0], lines[1].replace(" 0", " 2")]) + "\n")
    with pytest.raises(SourceError, match="class_name 'aircraft_carrier' comes with several labels"):
        get_task(ws, "domainnet:real")
    (root / "sketch_test.txt").unlink()
    with pytest.raises(SourceError, match="sketch_test.txt not found"):
        get_task(ws, "domainnet:real")
    bare = init_workspace(ws.root.parent / "bare")
    with pytest.raises(SourceError, match=r"set `domainnet = .*` under \[datasets\]"):
        get_task(bare, "domainnet:real")


def test_recipe_errors_name_the_field():
    with pytest.raises(ValueError, match=r"id_domain: 'photo' is not a DomainNet domain; choose from clipart"):
        parse_task({"task": "domainnet", "id_domain": "photo"})
    with pytest.raises(ValueError, match=r"ood_domains: 'sketch' is the ID domain"):
        parse_task({"task": "domainnet", "id_domain": "sketch", "ood_domains": ["sketch"]})
    with pytest.raises(ValueError, match=r"ood_domain: not an option of 'domainnet' \(its options: id_domain, ood_domains\)"):
        parse_task({"task": "domainnet", "id_domain": "real", "ood_domain": ["sketch"]})
    with pytest.raises(ValueError, match="id_domain: given twice"):
        parse_task({"task": "domainnet:real", "id_domain": "sketch"})
    # the shorthand and the table are one task, with one label and one set of spec options
    a, b = parse_task("domainnet:infograph"), parse_task({"task": "domainnet", "id_domain": "infograph"})
    assert (a.label, a.spec_options) == (b.label, b.spec_options) == (
        "domainnet:infograph", {"ood_domains": ["clipart", "painting", "quickdraw", "real", "sketch"]})


def test_a_domain_is_a_pretraining_source(dn):
    ws, root = dn
    index = source_index(ws, "domainnet:painting")
    lines = [line.split()[0] for line in (root / "painting_train.txt").read_text().splitlines()]
    assert sorted(index["path"]) == sorted(lines)  # the train list only: test images stay unseen
    assert list(index.drop_duplicates("class_name")["class_name"]) == CLASSES
    assert index.groupby("class_name").size().tolist() == [PER_CLASS["train"]] * 3
    assert (index["class_id"].to_numpy() == index["class_name"].map(CLASSES.index).to_numpy()).all()
    with pytest.raises(SourceError, match="'photo' is not a DomainNet domain"):
        source_index(ws, "domainnet:photo")


RECIPE = """
[study]
name = "pairs"
downstream = {{ task = "domainnet", id_domain = "infograph", ood_domains = ["sketch", "clipart"] }}
archs = ["resnet18"]
seeds = [0]
pretrain = {{ epochs = 1, batch_size = 8, lr = 0.05, image_size = 16 }}
finetune = {{ epochs = 2, batch_size = 8, lr = 1e-3, image_size = 16 }}

[[distribution]]
name = "scratch"

[[distribution]]
name = "real"
source = "domainnet:real"
{extra}
"""


@pytest.mark.slow
def test_study_records_every_ood_split_and_reads_them(dn, tmp_path):
    ws, _ = dn
    recipe = tmp_path / "pairs.toml"
    recipe.write_text(RECIPE.format(extra=""))
    runner = CliRunner()

    def run(*args):
        res = runner.invoke(app, [*args, "-w", str(ws.root)], env={"COLUMNS": "120", "LINES": "30"})
        return res.exit_code, ANSI.sub("", res.output)

    code, out = run("study", "run", str(recipe))
    assert code == 0, out
    con = duckdb.connect(str(ws.db_path), read_only=True)
    try:
        rows = con.execute("SELECT r.downstream, e.split, e.score, e.acc, e.n FROM epochs e JOIN runs r USING (run_id) "
                           "WHERE e.phase = 'finetune' AND e.split != 'train' ORDER BY 1, 2").df()
        spec = json.loads(con.execute("SELECT spec FROM runs LIMIT 1").fetchone()[0])
    finally:
        con.close()
    assert set(rows["downstream"]) == {"domainnet:infograph"}
    assert rows.groupby("split").size().to_dict() == {"clipart": 4, "id_test": 4, "sketch": 4}  # 2 runs x 2 epochs
    assert np.allclose(rows["score"], rows["acc"]) and rows["score"].between(0, 1).all()  # acc: WILDS's float32
    assert set(rows["n"]) == {3 * PER_CLASS["test"]}
    assert spec["downstream_options"] == {"ood_domains": ["clipart", "sketch"]}
    assert spec["finetune"]["image_size"] == 16  # the recipe's, over the task's default of 224

    # several OOD splits: a reader chooses one, or draws each
    code, out = run("results", "--study", "pairs")
    assert code != 0 and "several OOD splits (clipart, sketch)" in out and "--facet ood" in out
    code, out = run("results", "--study", "pairs", "--ood", "sketch")
    assert code == 0 and "accuracy at the last fine-tuning epoch (OOD split: sketch)" in out
    code, out = run("results", "--study", "pairs", "--ood", "painting")
    assert code != 0 and "no such OOD split; choose from clipart, sketch" in out
    code, out = run("results", "--study", "pairs", "--ood", "all", "--format", "csv")
    assert code == 0, out
    df = pd.read_csv(io.StringIO(out))
    assert len(df) == 2 * 2 * 2 and set(df["ood"]) == {"clipart", "sketch"} and set(df["metric"]) == {"accuracy"}
    for ood, sub in df.groupby("ood"):  # each OOD split's rows hold that split's scores
        assert np.allclose(np.sort(sub["ood_score"]), np.sort(rows[rows.split == ood]["score"]))
        assert np.allclose(np.sort(sub["id_score"]), np.sort(rows[rows.split == "id_test"]["score"]))

    fig = tmp_path / "pairs.png"
    code, out = run("plot", "trends", "pairs", "--facet", "ood", "--json", "--export", str(fig))
    assert code == 0, out
    doc = json.loads(out)
    assert set(doc["panels"]) == {"clipart", "sketch"}
    assert all(p["metric"] == "accuracy" and set(p["groups"]) == {"scratch", "real"} for p in doc["panels"].values())
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out = run("plot", "trends", "pairs", "--facet", "ood", "--bands", "none")
    assert code == 0 and "OOD split sketch" in out and "OOD split clipart" in out and "ID accuracy" in out
    code, out = run("plot", "trends", "pairs", "--ood", "sketch", "--facet", "ood")
    assert code != 0 and "drop one of the two" in out
