"""`divrob bench train` runs the real data path of either phase and prints both rates and their
ratio (the figures themselves belong to benchmarks/, not to a timed test)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from divrob.cli import app


@pytest.mark.slow
def test_bench_prints_both_rates_and_their_ratio():
    res = CliRunner().invoke(app, ["bench", "train", "--arch", "resnet18", "--res", "16", "--batch", "4",
                                   "--steps", "2", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    rates = {line.split()[0]: line.split()[1] for line in res.output.splitlines() if "img/s" in line or "ratio" in line}
    assert float(rates["model-bound"]) > 0 and float(rates["end-to-end"]) > 0 and float(rates["ratio"]) > 0
    fine = CliRunner().invoke(app, ["bench", "train", "--phase", "finetune", "--arch", "resnet18", "--res", "16",
                                    "--batch", "4", "--steps", "2", "--device", "cpu"])
    assert fine.exit_code == 0, fine.output
    assert "finetune input (whole frame, no augmentation, from 16 px cached frames)" in fine.output
    assert "pretrain input (RandomResizedCrop + flip, from 32 px cached frames)" in res.output
    bad = CliRunner().invoke(app, ["bench", "train", "--arch", "alexnet", "--res", "32", "--device", "cpu"])
    assert bad.exit_code == 1 and "AlexNet needs image_size >= 63" in bad.output
