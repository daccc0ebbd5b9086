"""Provenance written by real jobs, `divrob show`, and `divrob diff` on two runs of a tiny demo
study that differ only in pre-training quantity (real training on CPU, real manifests, real store)."""

from __future__ import annotations

import json
import subprocess
import sys

import duckdb
import pytest
from test_e2e_cli import DEMO_SIZES  # the e2e study's tiny [demo] sizes
from typer.testing import CliRunner

from divrob.cli import app

RECIPE = """
[study]
name = "tinyq"
downstream = "camtrap-sim"
archs = ["resnet18"]
seeds = [0]
pretrain = { epochs = 1, batch_size = 32, lr = 0.05, image_size = 16 }
finetune = { epochs = 1, batch_size = 32, lr = 1e-3, image_size = 16 }

[[distribution]]
name = "shapes-{total}"
source = "demo-shapes"
total = [60, 120]
"""



@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prov")
    ws = tmp / "ws"
    runner = CliRunner()
    assert runner.invoke(app, ["init", str(ws)]).exit_code == 0
    cfg = ws / "divrob.toml"
    text = cfg.read_text()
    alerts = tmp / "alerts.txt"  # the inline executor sends the study's end too
    notify = json.dumps([sys.executable, "-c", "import sys; open(sys.argv[1], 'a').write(sys.argv[2])", str(alerts)])
    text = text.replace("[notify]\n", f"[notify]\ncommand = {notify}\n")
    cfg.write_text(text[: text.index("[demo]")] + DEMO_SIZES)
    repo = tmp / "recipes"  # the recipe lives in a git repository with an uncommitted change
    repo.mkdir()
    recipe = repo / "tinyq.toml"
    recipe.write_text(RECIPE)
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "tinyq.toml"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "recipe"], check=True)
    recipe.write_text(RECIPE + "\n# edited\n")
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    res = runner.invoke(app, ["study", "run", str(recipe), "-w", str(ws)])
    assert res.exit_code == 0, res.output
    con = duckdb.connect(str(ws / "divrob.duckdb"), read_only=True)
    try:
        ids = dict(con.execute("SELECT distribution, run_id FROM study_runs WHERE study = 'tinyq'").fetchall())
    finally:
        con.close()
    assert alerts.read_text() == "divrob: study tinyq finished: 2 finished"
    return runner, ws, ids, head


@pytest.mark.slow
def test_jobs_write_provenance_and_the_store_holds_it(study):
    runner, ws, ids, head = study
    run = ids["shapes-60"]
    prov = json.loads((ws / "runs" / run / "provenance.json").read_text())
    assert prov["git_commit"] == head and prov["git_dirty"] is True and len(prov["git_diff_hash"]) == 16
    assert prov["recipe_hash"] and prov["recipe_path"].endswith("tinyq.toml")
    assert prov["manifest_rows"] == 60 and prov["unreadable"] == 0
    assert prov["torch"] and prov["python"] and prov["host"] and prov["divrob_version"]
    assert prov["gpu_count"] == 0 and prov["gpu_model"] is None  # trained on the CPU
    assert set(prov["phases"]) == {"pretrain", "finetune"}
    assert all(p["seconds"] > 0 and p["gpu_seconds"] == 0 for p in prov["phases"].values())
    assert prov["ended"] >= prov["started"]
    con = duckdb.connect(str(ws / "divrob.duckdb"), read_only=True)
    try:
        row = con.execute("SELECT git_commit, git_dirty, manifest_rows, data FROM provenance WHERE run_id = ?",
                          [run]).fetchone()
    finally:
        con.close()
    assert row[:3] == (head, True, 60) and json.loads(row[3])["run_id"] == run

    res = runner.invoke(app, ["show", run[:10], "-w", str(ws), "--json"])
    assert res.exit_code == 0, res.output
    shown = json.loads(res.output)
    assert shown["run_id"] == run and shown["state"] == "finished"
    assert shown["provenance"]["git_commit"] == head and shown["spec"]["manifest_id"]
    res = runner.invoke(app, ["show", run[:10], "-w", str(ws)])
    assert res.exit_code == 0 and head in res.output and "pretrain" in res.output


def test_show_errors_name_what_to_fix(tmp_path):
    runner = CliRunner()
    runner.invoke(app, ["init", str(tmp_path / "ws")])
    for name in ("ab12cd", "ab99ef"):
        (tmp_path / "ws" / "runs" / name).mkdir(parents=True)
        (tmp_path / "ws" / "runs" / name / "spec.json").write_text("{}")
    res = runner.invoke(app, ["show", "ab", "-w", str(tmp_path / "ws")])
    assert res.exit_code == 2 and "matches 2 runs" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["show", "zz", "-w", str(tmp_path / "ws")])
    assert res.exit_code == 2 and "no run 'zz'" in res.output
    res = runner.invoke(app, ["diff", "ab12", "nostudy:g", "-w", str(tmp_path / "ws")])
    assert res.exit_code == 2 and "no runs in group" in res.output


@pytest.mark.slow
def test_diff_of_two_quantities_reports_exactly_that(study):
    runner, ws, ids, _ = study
    a, b = ids["shapes-60"], ids["shapes-120"]
    res = runner.invoke(app, ["diff", a[:10], b[:10], "-w", str(ws), "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert [r["field"] for r in d["spec"]] == ["manifest_id"]  # the quantity changes the data, nothing else
    m = d["manifest"]
    assert (m["a"]["images"], m["b"]["images"]) == (60, 120)
    assert m["a"]["classes"] == m["b"]["classes"] == 6 and m["a"]["labels"] == m["b"]["labels"] == 6
    o = m["overlap"]
    assert o["both"] + o["only_a"] == 60 and o["both"] + o["only_b"] == 120
    assert m["classes_differing"] == 6 and all((r["a"], r["b"]) == (10, 20) for r in m["classes"])
    assert m["labels_differing"] == 6
    assert {r["phase"] for r in d["metrics"]} == {"pretrain", "finetune"} or {r["phase"] for r in d["metrics"]} == {"finetune"}
    ft = [r for r in d["metrics"] if r["phase"] == "finetune" and r["split"] == "test"]
    assert len(ft) == 1 and ft[0]["delta"] == pytest.approx(ft[0]["b"] - ft[0]["a"])
    assert not any(r["field"].startswith(("git", "recipe", "torch", "host")) for r in d["provenance"])

    # the same through groups, and the rich table
    res = runner.invoke(app, ["diff", "tinyq:shapes-60", "tinyq:shapes-120", "-w", str(ws)])
    assert res.exit_code == 0, res.output
    assert "spec: 1 field(s) differ" in res.output and "manifest_id" in res.output
    assert "only in B: 60" in res.output or "only in B" in res.output
