"""`divrob demo` shows the phenomenon it is there to show: scratch models on one linear trend
(probit axes), pre-training on the larger shapes distribution above it with a run-level interval
that excludes zero, the small distribution indistinguishable from scratch. Runs the real demo
(generation, pre-training, fine-tuning, store, analysis) on CPU: minutes, hence slow."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from divrob.cli import app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    ws = tmp_path_factory.mktemp("demo") / "ws"
    runner = CliRunner()
    res = runner.invoke(app, ["demo", "-w", str(ws)])
    assert res.exit_code == 0, res.output
    return runner, ws, res.output


def test_trend_and_effective_robustness(demo):
    runner, ws, _ = demo
    res = runner.invoke(app, ["plot", "trends", "demo-quickstart", "-w", str(ws), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    groups = doc["groups"]
    assert doc["baseline"] == "scratch" and doc["bootstrap"]["unit"] == "runs"
    scratch = groups["scratch"]
    assert scratch["n"] >= 12 and scratch["runs"] >= 3
    assert scratch["r2"] >= 0.8
    large, small = groups["shapes-large"], groups["shapes-small"]
    assert large["runs"] >= 3 and small["runs"] >= 3
    assert large["effective_robustness"]["low"] > 0 and large["effective_robustness"]["verdict"] == "above"
    assert small["effective_robustness"]["verdict"] == "spans 0"


def test_demo_tells_the_story_and_writes_the_figure(demo):
    _, ws, out = demo
    assert "what the demo shows" in out
    assert "lie on one linear trend" in out
    assert "shapes-large" in out and "effective robustness" in out
    assert "indistinguishable from training from scratch" in out
    assert (ws / "figures" / "demo-quickstart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
