"""`divrob results`, `plot trends`, `plot residuals` and `compare` on a workspace of results
built without training (tests/results_fixture.py), and the --where language."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from divrob.analysis.where import WhereError, apply_where, parse_where
from divrob.cli import app
from results_fixture import GroupSpec, make_results_workspace

ANSI = re.compile(r"\x1b\[[0-9;]*m")

# Two axes (quantity and class count) plus the scratch reference; "same-as-500" lies on the
# very line of "q-500", so comparing them must find no difference.
GROUPS = [
    GroupSpec("scratch", 0.9, -0.7),
    GroupSpec("q-500", 0.9, -0.5, "demo-shapes", {"total": 500}),
    GroupSpec("q-2000", 0.9, -0.3, "demo-shapes", {"total": 2000}),
    GroupSpec("same-as-500", 0.9, -0.5, "demo-shapes", {"classes.random": 10}),
]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("results") / "ws"
    return make_results_workspace(root, study="axes", groups=GROUPS, archs=("resnet18", "resnet34"),
                                  seeds=(0, 1), epochs=5, noise=0.03, seed=1)


def run(ws, *args):
    res = CliRunner().invoke(app, [*args, "-w", str(ws.root)], env={"COLUMNS": "100", "LINES": "30"})
    return res.exit_code, ANSI.sub("", res.output)


# ---- the fixture itself ---------------------------------------------------------------------

def test_fixture_store_holds_every_run_and_epoch(ws):
    code, out = run(ws, "results", "--format", "csv")
    assert code == 0, out
    df = pd.read_csv(pd.io.common.StringIO(out))
    assert len(df) == 4 * 2 * 2 * 5
    assert set(df.state) == {"finished"}
    assert {"total", "classes.random", "axis"} <= set(df.columns)
    assert set(df[df.distribution == "q-2000"].total) == {2000}
    assert set(df.axis) == {"-", "total", "classes.random"}


# ---- results ---------------------------------------------------------------------------------

def test_results_where_filters_and_formats(ws, tmp_path):
    code, out = run(ws, "results", "--where", "arch=resnet18, total>=1000", "--format", "json")
    assert code == 0, out
    rows = json.loads(out)
    assert len(rows) == 2 * 5 and {r["distribution"] for r in rows} == {"q-2000"}
    pq = tmp_path / "r.parquet"
    code, out = run(ws, "results", "--format", "parquet", "--output", str(pq), "--where", "distribution!=scratch")
    assert code == 0, out
    assert len(pd.read_parquet(pq)) == 3 * 2 * 2 * 5
    code, out = run(ws, "results", "--format", "parquet")
    assert code == 1 and "--output" in out
    code, out = run(ws, "results")
    assert code == 0 and "q-2000" in out and "last fine-tuning epoch" in out


# ---- plot trends -------------------------------------------------------------------------------

def test_plot_trends_shows_plot_tables_and_exports_one_panel_per_axis(ws, tmp_path):
    fig = tmp_path / "axes.svg"
    code, out = run(ws, "plot", "trends", "axes", "--export", str(fig))
    assert code == 0, out
    assert "— total" in out and "— classes.random" in out  # automatic facets
    assert "linear trends" in out and "effective robustness vs scratch" in out
    ranking = [line.split("│")[2].strip() for line in out.splitlines()
               if re.match(r"│ [1-4] ", line)]
    # q-500 and same-as-500 share one true line, so their order is up to the noise.
    assert ranking[0] == "q-2000" and ranking[-1] == "scratch" and len(ranking) == 4
    svg = fig.read_text()
    assert svg.count('id="axes_') == 2  # one panel per swept axis
    code, out = run(ws, "plot", "trends", "axes", "--facet", "none")
    assert code == 0 and "— total" not in out


def test_plot_trends_json_is_stable_and_has_the_golden_structure(ws):
    args = ("plot", "trends", "axes", "--json", "--n-boot", "1000")
    code, first = run(ws, *args)
    assert code == 0, first
    _, second = run(ws, *args)
    assert first == second  # same input, same bytes
    doc = json.loads(first)
    assert list(doc) == sorted(doc)
    assert set(doc) == {"baseline", "group_by", "groups", "level", "n_boot", "notes", "seed",
                        "study", "transform", "where"}
    assert doc["baseline"] == "scratch" and doc["n_boot"] == 1000 and doc["level"] == 0.95
    assert list(doc["groups"]) == ["q-2000", "q-500", "same-as-500", "scratch"]
    g = doc["groups"]["q-2000"]
    assert set(g) == {"effective_robustness", "intercept", "is_baseline", "n", "r2", "runs", "slope"}
    assert set(g["effective_robustness"]) == {"excludes_zero", "high", "low", "mean"}
    assert (g["n"], g["runs"]) == (20, 4)
    assert g["slope"] == pytest.approx(0.9, abs=0.15) and g["r2"] > 0.9
    er = g["effective_robustness"]
    assert er["low"] < er["mean"] < er["high"] and er["excludes_zero"] is True
    assert doc["groups"]["scratch"]["is_baseline"] and doc["groups"]["scratch"]["effective_robustness"]["excludes_zero"] is None
    # six digits at most, so float noise cannot change the bytes
    assert all(len(m.group(1)) <= 6 for m in re.finditer(r"\d\.(\d+)", first))


def test_plot_trends_group_by_sweep_key_uses_scratch_distribution_as_baseline(ws):
    code, out = run(ws, "plot", "trends", "axes", "--json", "--group-by", "total", "--transform", "logit")
    assert code == 0, out
    doc = json.loads(out)
    assert list(doc["groups"]) == ["2000", "500"] and doc["transform"] == "logit"
    assert doc["groups"]["2000"]["effective_robustness"]["mean"] > doc["groups"]["500"]["effective_robustness"]["mean"] > 0


@pytest.mark.parametrize("args, message", [
    (("--where", "arch ~ x"), "cannot read"),
    (("--where", "nope=1"), "unknown field 'nope'"),
    (("--group-by", "colour"), "cannot group by 'colour'"),
    (("--baseline", "imagenet"), "no group or distribution named 'imagenet'"),
    (("--transform", "sqrt"), "probit, logit, linear"),
    (("--export", "fig.jpg"), ".png, .svg, .pdf"),
    (("--where", "arch=alexnet"), "matched none"),
])
def test_plot_trends_user_mistakes_are_one_line_errors(ws, args, message):
    code, out = run(ws, "plot", "trends", "axes", *args)
    assert code in (1, 2) and message in out and "Traceback" not in out


# ---- compare and residuals -----------------------------------------------------------------

def test_compare_excludes_zero_for_a_real_difference(ws):
    code, out = run(ws, "compare", "q-2000", "q-500", "--study", "axes", "--json")
    assert code == 0, out
    doc = json.loads(out)
    # True difference at these ID values: about 0.04-0.05 F1 (probit intercepts -0.3 vs -0.5).
    assert 0.02 < doc["low"] < doc["difference"] < doc["high"] and doc["excludes_zero"] is True
    code, out = run(ws, "compare", "q-2000", "q-500")  # the only study is found by itself
    assert code == 0 and "excludes zero: q-2000 is more effectively robust than q-500" in " ".join(out.split())


def test_compare_includes_zero_for_groups_on_one_line(ws):
    code, out = run(ws, "compare", "same-as-500", "q-500")
    assert code == 0, out
    assert "includes zero" in out and "no difference" in " ".join(out.split())
    code, out = run(ws, "compare", "q-500", "nope")
    assert code == 1 and "no group 'nope'" in out


def test_plot_residuals_terminal_and_export(ws, tmp_path):
    fig = tmp_path / "res.pdf"
    code, out = run(ws, "plot", "residuals", "axes", "--baseline", "q-2000", "--export", str(fig))
    assert code == 0, out
    assert "fine-tuning epoch" in out and "resnet34" in out and "residual per architecture" in out
    assert fig.read_bytes()[:5] == b"%PDF-"
    code, out = run(ws, "plot", "residuals", "axes", "--of", "q-500", "--baseline", "scratch")
    assert code == 0, out
    means = [float(line.split("│")[3]) for line in out.splitlines() if line.startswith("│ resnet")]
    assert all(m > 0.02 for m in means)  # q-500 lies above the scratch trend at every epoch


def test_results_commands_do_not_import_torch(ws):
    code = ("import sys; from typer.testing import CliRunner; from divrob.cli import app; "
            f"r = CliRunner().invoke(app, ['plot', 'trends', 'axes', '--json', '-w', {str(ws.root)!r}]); "
            "assert r.exit_code == 0, r.output; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- the --where language ------------------------------------------------------------------

ROWS = pd.DataFrame({
    "arch": ["resnet18", "resnet50", "alexnet", "resnet18"],
    "total": [5000.0, 25000.0, np.nan, 100000.0],
    "name": ["a,b", "c", "d e", "c"],
})


@pytest.mark.parametrize("expr, expected", [
    ("arch=resnet18", [0, 3]),
    ("arch == resnet18", [0, 3]),
    ("arch!=resnet18", [1, 2]),
    ("arch in resnet50|alexnet", [1, 2]),
    ("arch not in resnet50|alexnet", [0, 3]),
    ("total>=25000", [1, 3]),
    ("total<25000", [0]),
    ("total=5e3", [0]),
    ("total=''", [2]),
    ("name='a,b'", [0]),
    ("name=\"d e\", arch=alexnet", [2]),
    ("arch=resnet18, total>10000", [3]),
    ("", [0, 1, 2, 3]),
])
def test_where_selects_rows(expr, expected):
    assert apply_where(ROWS, expr).index.tolist() == list(range(len(expected)))
    assert apply_where(ROWS, expr)["name"].tolist() == ROWS.loc[expected, "name"].tolist()


@pytest.mark.parametrize("expr, message", [
    ("arch", "cannot read 'arch'"),
    ("total>=many", ">= needs a number"),
    ("arch=", "missing a value"),
    ("arch=resnet18,", "ends with a comma"),
    ("__import__('os').system('true')", "cannot read"),
    ("arch=x; DROP TABLE runs", None),  # not an error: just a value that matches nothing
    ("colour=red", "unknown field 'colour'"),
    ("arch>3", "holds no numbers"),
])
def test_where_rejects_bad_input_naming_the_problem(expr, message):
    if message is None:
        assert apply_where(ROWS, expr).empty
        return
    with pytest.raises(WhereError, match=re.escape(message)):
        apply_where(ROWS, expr)


def test_where_parses_to_clauses():
    assert [str(c) for c in parse_where("arch in a|b, total>=5")] == ["arch in a|b", "total>=5"]
