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
    assert code == 2 and "--output" in out
    code, out = run(ws, "results")
    assert code == 0 and "q-2000" in out and "last fine-tuning epoch" in out


# ---- plot trends -------------------------------------------------------------------------------

@pytest.mark.slow
def test_plot_trends_shows_plot_tables_and_exports_one_panel_per_axis(ws, tmp_path):
    fig = tmp_path / "axes.svg"
    code, out = run(ws, "plot", "trends", "axes", "--export", str(fig))
    assert code == 0, out
    titles = [line.strip().split(" · ")[0] for line in out.splitlines()]
    assert "total" in titles and "classes.random" in titles  # automatic facets, one titled panel each
    assert "linear trends" in out and "effective robustness vs scratch" in out
    ranking = [line.split("│")[2].strip() for line in out.splitlines()
               if re.match(r"│ [1-4] ", line)]
    # q-500 and same-as-500 share one true line, so their order is up to the noise.
    assert ranking[0] == "q-2000" and ranking[-1] == "scratch" and len(ranking) == 4
    svg = fig.read_text()
    assert svg.count('id="axes_') == 2  # one panel per swept axis
    code, out = run(ws, "plot", "trends", "axes", "--facet", "none")
    assert code == 0 and "total" not in [line.strip().split(" · ")[0] for line in out.splitlines()]


def test_plot_trends_json_is_stable_and_has_the_golden_structure(ws):
    args = ("plot", "trends", "axes", "--json", "--n-boot", "1000")
    code, first = run(ws, *args)
    assert code == 0, first
    _, second = run(ws, *args)
    assert first == second  # same input, same bytes
    doc = json.loads(first)
    assert list(doc) == sorted(doc)
    assert set(doc) == {"baseline", "baseline_kind", "baseline_range", "bootstrap", "group_by", "groups",
                        "level", "metric", "n_boot", "notes", "ood", "references", "seed", "study", "transform",
                        "where"}
    assert (doc["metric"], doc["ood"]) == ("macro-F1", "test")  # the fixture's task is camtrap-sim
    assert doc["baseline"] == "scratch" and doc["n_boot"] == 1000 and doc["level"] == 0.95
    assert doc["bootstrap"] == {"unit": "runs", "n_boot": 1000, "seed": 0, "level": 0.95, "min_runs_for_a_verdict": 3}
    assert doc["baseline_kind"] == "group" and doc["references"] == {}
    assert list(doc["groups"]) == ["q-2000", "q-500", "same-as-500", "scratch"]
    g = doc["groups"]["q-2000"]
    assert set(g) == {"clipped", "effective_robustness", "external", "id_range", "intercept", "is_baseline",
                      "n", "outside_baseline_range", "r2", "runs", "slope"}
    assert set(g["effective_robustness"]) == {"excludes_zero", "high", "low", "mean", "verdict"}
    assert g["effective_robustness"]["verdict"] == "above" and g["clipped"] == 0
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
    (("--baseline", "imagenet"), "no group, distribution or reference named 'imagenet'"),
    (("--bootstrap", "epochs"), "runs, points"),
    (("--bands", "dots"), "none, lines, shade"),
    (("--reference", "miller"), "NAME=SLOPE,INTERCEPT"),
    (("--reference", "miller=0.9,x"), "NAME=SLOPE,INTERCEPT"),
    (("--reference", "m=0.9,-0.7,cubic"), "probit, logit, linear"),
    (("--reference-points", "nope.csv"), "no such file"),
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
    assert code == 2 and "no group 'nope'" in out


def test_point_bootstrap_is_an_explicit_choice_with_narrower_intervals_and_a_note(ws):
    _, runs = run(ws, "plot", "trends", "axes", "--json")
    _, points = run(ws, "plot", "trends", "axes", "--json", "--bootstrap", "points")
    runs, points = json.loads(runs), json.loads(points)
    assert runs["bootstrap"]["unit"] == "runs" and points["bootstrap"]["unit"] == "points"
    assert runs["groups"]["q-500"]["effective_robustness"] != points["groups"]["q-500"]["effective_robustness"]
    assert any("too narrow" in n for n in points["notes"]) and not any("too narrow" in n for n in runs["notes"])


@pytest.fixture(scope="module")
def few_ws(tmp_path_factory):
    """Two runs per group (one seed, two archs): too few for any verdict."""
    return make_results_workspace(tmp_path_factory.mktemp("few") / "ws", study="few", groups=GROUPS[:3],
                                  archs=("resnet18", "resnet34"), seeds=(0,), epochs=5, noise=0.03, seed=2)


def test_compare_says_too_few_runs_to_tell_under_three_runs(few_ws):
    code, out = run(few_ws, "compare", "q-2000", "scratch", "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["excludes_zero"] is True  # the interval alone would claim a difference ...
    assert doc["verdict"] == "too few runs" and doc["runs_a"] == 2 and doc["bootstrap"]["unit"] == "runs"
    code, out = run(few_ws, "compare", "q-2000", "scratch")
    flat = " ".join(out.split())
    assert "Too few runs to tell" in flat and "more effectively robust" not in flat  # ... but says nothing
    code, out = run(few_ws, "plot", "trends", "few", "--facet", "none")
    rows = [line for line in out.split("effective robustness vs")[1].splitlines() if re.match(r"│ \d ", line)]
    assert len(rows) == 3 and all("too few runs" in r or "baseline" in r for r in rows)


@pytest.mark.slow
def test_tables_fit_80_columns_without_cutting_words(tmp_path):
    long = [GroupSpec("scratch", 0.9, -0.7),
            GroupSpec("imagenet-150000-wordnet-depth-4-balanced", 0.9, -0.5, "demo-shapes", {"total": 500}),
            GroupSpec("fractaldb-1k-weight-0.4", 0.9, -0.7, "demo-shapes", {"total": 2000})]
    w = make_results_workspace(tmp_path / "ws", study="long", groups=long, archs=("resnet18", "resnet34", "resnet50"),
                               epochs=4, seed=3)
    res = CliRunner().invoke(app, ["plot", "trends", "long", "-w", str(w.root)], env={"COLUMNS": "80", "LINES": "24"})
    out = ANSI.sub("", res.output)
    assert res.exit_code == 0, out
    assert max(len(line) for line in out.splitlines()) <= 80
    table = out.split("effective robustness vs")[1]
    assert "spans 0" in table and "above" in table and "baseline" in table
    assert "…" not in "".join(line for line in table.splitlines() if "spans" in line or "above" in line).replace("…+", "").replace("…-", "")


def test_a_reference_line_is_drawn_and_serves_as_the_baseline(ws):
    # scratch's true line, given as an external reference: q-2000 must read about as it does
    # against the fitted scratch trend, and the reference carries no sampling error of its own.
    code, out = run(ws, "plot", "trends", "axes", "--json", "--reference", "truth=0.9,-0.7,probit",
                    "--baseline", "truth")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["baseline"] == "truth" and doc["baseline_kind"] == "reference line"
    assert doc["references"] == {"truth": {"slope": 0.9, "intercept": -0.7, "transform": "probit"}}
    _, fitted = run(ws, "plot", "trends", "axes", "--json")
    vs_ref = doc["groups"]["q-2000"]["effective_robustness"]
    vs_fit = json.loads(fitted)["groups"]["q-2000"]["effective_robustness"]
    assert vs_ref["mean"] == pytest.approx(vs_fit["mean"], abs=0.015)
    assert vs_ref["high"] - vs_ref["low"] < vs_fit["high"] - vs_fit["low"]
    assert any("reference line" in n for n in doc["notes"])
    code, out = run(ws, "plot", "trends", "axes", "--facet", "none", "--reference", "truth=0.9,-0.7")
    assert code == 0 and "truth (reference)" in out


def test_reference_points_become_groups_of_their_own(ws, tmp_path):
    csv = tmp_path / "published.csv"
    rng = np.random.default_rng(0)
    ids = rng.uniform(0.2, 0.6, 25)
    from scipy.special import ndtr, ndtri

    pd.DataFrame({"group": "miller-models", "id": ids, "ood": ndtr(0.9 * ndtri(ids) - 0.7)}).to_csv(csv, index=False)
    code, out = run(ws, "plot", "trends", "axes", "--json", "--reference-points", str(csv),
                    "--baseline", "miller-models")
    assert code == 0, out
    doc = json.loads(out)
    ext = doc["groups"]["miller-models"]
    assert ext["external"] is True and ext["runs"] == 25 and ext["slope"] == pytest.approx(0.9, abs=1e-6)
    assert doc["baseline_kind"] == "reference points"
    assert doc["groups"]["q-2000"]["effective_robustness"]["verdict"] == "above"
    pct = tmp_path / "pct.csv"
    pd.DataFrame({"group": ["m"], "id": [45.0], "ood": [30.0]}).to_csv(pct, index=False)
    code, out = run(ws, "plot", "trends", "axes", "--reference-points", str(pct))
    assert code == 2 and "divide by 100" in out


def test_clipped_and_extrapolated_values_are_said(tmp_path):
    w = make_results_workspace(tmp_path / "ws", study="edge", groups=[
        GroupSpec("scratch", 0.9, -0.7), GroupSpec("far", 0.9, -1.5, "demo-shapes", {"total": 9})],
        archs=("resnet18", "resnet34", "resnet50"), epochs=6, noise=0.0, seed=4)
    from divrob.store.db import write_connection

    with write_connection(w.db_path) as con:  # a run that scored exactly 0 OOD at one epoch
        con.execute("UPDATE epochs SET f1_macro = 0, score = 0 WHERE split = 'test' AND epoch = 1 AND run_id IN "
                    "(SELECT run_id FROM study_runs WHERE distribution = 'far' LIMIT 1)")
        con.execute("UPDATE epochs SET f1_macro = f1_macro + 0.2, score = score + 0.2 WHERE split = 'id_test' "
                    "AND run_id IN (SELECT run_id FROM study_runs WHERE distribution = 'far')")
    code, out = run(w, "plot", "trends", "edge", "--json")
    doc = json.loads(out)
    far = doc["groups"]["far"]
    assert far["clipped"] == 1 and far["outside_baseline_range"] > 0
    assert any("clipped" in n for n in doc["notes"]) and any("extrapolated" in n for n in doc["notes"])
    code, out = run(w, "plot", "trends", "edge")
    assert "note: clipped, extrapolated" in out and "clipped to [0.0001, 0.9999]" in " ".join(out.split())


@pytest.fixture(scope="module")
def fig3_ws(tmp_path_factory):
    groups = [GroupSpec("scratch", 0.9, -0.7), GroupSpec("imagenet-full", 0.9, -0.3, "imagenet", {})]
    return make_results_workspace(tmp_path_factory.mktemp("fig3") / "ws", study="fig3", groups=groups,
                                  archs=("resnet18", "resnet34"), seeds=(0, 1, 2), epochs=6, seed=5)


def test_residuals_default_to_imagenet_full_against_the_reference_line(fig3_ws):
    code, out = run(fig3_ws, "plot", "residuals", "fig3", "--json", "--reference", "miller=0.9,-0.3")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["of"] == "imagenet-full" and doc["baseline"] == "miller" and doc["circular"] is False
    assert doc["bootstrap"] == {"unit": "runs", "n_boot": 1000}
    for arch in doc["archs"]:  # on the very line the reference gives: residuals near zero, CI around it
        assert arch["runs"] == 3 and arch["low"] <= 0.01 and arch["high"] >= -0.01
    assert {(e["arch"], e["epoch"]) for e in doc["epochs"]} == {(a, e) for a in ("resnet18", "resnet34") for e in range(1, 7)}
    code, out = run(fig3_ws, "plot", "residuals", "fig3")  # no reference: imagenet-full against scratch
    assert code == 0, out
    means = [float(line.split("│")[3]) for line in out.splitlines() if line.startswith("│ resnet")]
    assert len(means) == 2 and all(m > 0.05 for m in means)
    assert "circular" not in out


def test_residuals_of_the_baseline_itself_say_they_are_circular(ws, tmp_path):
    code, out = run(ws, "plot", "residuals", "axes")  # no imagenet-full here: scratch from scratch
    assert code == 0, out
    assert "fitted to these same points" in " ".join(out.split()) and "--reference" in out
    fig = tmp_path / "res.pdf"
    code, out = run(ws, "plot", "residuals", "axes", "--baseline", "q-2000", "--export", str(fig))
    assert code == 0, out
    assert "fine-tuning epoch" in out and "resnet34" in out and "mean residual per architecture" in out
    assert fig.read_bytes()[:5] == b"%PDF-"
    code, out = run(ws, "plot", "residuals", "axes", "--of", "q-500", "--baseline", "scratch")
    assert code == 0, out
    means = [float(line.split("│")[3]) for line in out.splitlines() if line.startswith("│ resnet")]
    assert all(m > 0.02 for m in means)  # q-500 lies above the scratch trend at every epoch


@pytest.mark.slow
def test_results_table_summarises_a_large_study(tmp_path):
    from divrob.cli.analysis_tables import SUMMARY_ROWS

    groups = [GroupSpec(f"g{i}", 0.9, -0.7) for i in range(SUMMARY_ROWS // 4 + 1)]
    w = make_results_workspace(tmp_path / "ws", study="big", groups=groups, archs=("resnet18", "resnet34"),
                               seeds=(0, 1), epochs=2, seed=6)
    code, out = run(w, "results", "--study", "big")
    assert code == 0, out
    assert f"{len(groups) * 4} runs, mean macro-F1" in out and "--format csv" in out
    assert sum(1 for line in out.splitlines() if line.startswith("│ g")) <= SUMMARY_ROWS


def test_the_tui_and_the_cli_compute_the_same_numbers(ws):
    from divrob.analysis import N_BOOT
    from divrob.analysis.report import study_points
    from divrob.tui.adapter import DivrobAdapter

    a = DivrobAdapter.analyse(study_points(ws, "axes"), "distribution", "scratch", "probit")
    assert a.n_boot == N_BOOT and a.unit == "runs"
    _, out = run(ws, "plot", "trends", "axes", "--json")
    doc = json.loads(out)
    assert doc["n_boot"] == N_BOOT
    for g, r in a.groups.items():
        er = doc["groups"][g]["effective_robustness"]
        assert (er["low"], er["high"]) == pytest.approx(r.er[1:], abs=1e-6)


@pytest.mark.slow
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
