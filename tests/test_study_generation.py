"""A study whose source must be generated: generation runs first, once, as a job of the study's
executor; then its manifests and runs can be planned. Nothing trains here."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from divrob.cli import app
from divrob.dispatch.jobs import load_jobs
from divrob.errors import SourceError
from divrob.recipes.load import load_recipe
from divrob.sources.generators import pending_generations
from divrob.store.db import read_connection
from divrob.workspace import init_workspace

GEN = """
[generate.fractaldb]
categories = 2
instances = 4
size = 32
points = 1000
"""

RECIPE = """
[study]
name = "frac"
downstream = "camtrap-sim"
archs = ["resnet18"]
pretrain = {{ epochs = 1, batch_size = 8, image_size = 16 }}
finetune = {{ epochs = 1, batch_size = 32, image_size = 16 }}
{gen}
[[distribution]]
name = "fractaldb-{{total}}"
source = "fractaldb"
total = [4]
"""


def recipe(tmp_path, gen=GEN):
    p = tmp_path / "frac.toml"
    p.write_text(RECIPE.format(gen=gen))
    return p


@pytest.fixture()
def ws(tmp_path):
    return init_workspace(tmp_path / "ws")


def test_missing_source_without_generate_table_is_a_clear_error(ws, tmp_path):
    with pytest.raises(SourceError, match=r"add a \[generate.fractaldb\] table"):
        pending_generations(ws, load_recipe(recipe(tmp_path, gen="")))


def test_plan_lists_generation_first(ws, tmp_path):
    res = CliRunner().invoke(app, ["study", "plan", str(recipe(tmp_path)), "-w", str(ws.root)])
    assert res.exit_code == 0, res.output
    assert "generation comes first" in res.output and "generate fractaldb" in res.output


@pytest.mark.slow
def test_local_executor_generates_once_then_plans(ws, tmp_path):
    p = recipe(tmp_path)
    runner = CliRunner()
    # plan after a generation done through the local executor's worker process
    from divrob.dispatch.generation import run_generations

    gens = pending_generations(ws, load_recipe(p))
    run_generations(ws, "frac", gens, "local", {"cpu_slots": 1})
    with read_connection(ws.db_path) as con:
        jobs = [j for j in load_jobs(con) if j.kind == "generate"]
    assert [j.state for j in jobs] == ["finished"]
    assert json.loads((ws.data / "fractaldb" / "fractaldb.json").read_text())["complete"] is True
    assert len(list((ws.data / "fractaldb").glob("*/*.png"))) == 8
    assert pending_generations(ws, load_recipe(p)) == []  # once: nothing left to generate
    res = runner.invoke(app, ["study", "plan", str(p), "-w", str(ws.root)])
    assert res.exit_code == 0 and "fractaldb-4" in res.output and "to run" in res.output


def test_recipe_that_disagrees_with_the_generated_source(ws, tmp_path):
    p = recipe(tmp_path)
    from divrob.sources.generators import generate

    for job in pending_generations(ws, load_recipe(p)):
        generate(ws, job)
    other = recipe(tmp_path, gen=GEN.replace("instances = 4", "instances = 6"))
    with pytest.raises(SourceError, match="differs from the fractaldb"):
        pending_generations(ws, load_recipe(other))


@pytest.mark.slow
def test_inline_study_generates_then_trains_and_reruns_nothing(ws, tmp_path):
    cfg = ws.config_path.read_text()
    ws.config_path.write_text(cfg[: cfg.index("[demo]")] + "[demo]\ncamtrap_images = 200\ncamtrap_size = 16\n")
    p = recipe(tmp_path)
    runner = CliRunner()
    first = runner.invoke(app, ["study", "run", str(p), "-w", str(ws.root)])
    assert first.exit_code == 0, first.output
    assert "1 runs: 1 trained" in first.output
    assert len(list((ws.data / "fractaldb").glob("*/*.png"))) == 8
    stamp = (ws.data / "fractaldb" / "fractaldb.json").stat().st_mtime_ns
    again = runner.invoke(app, ["study", "run", str(p), "-w", str(ws.root)])
    assert again.exit_code == 0 and "0 trained, 1 already finished" in again.output
    assert (ws.data / "fractaldb" / "fractaldb.json").stat().st_mtime_ns == stamp  # generated once
