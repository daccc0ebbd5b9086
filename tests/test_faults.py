"""The error battery (issue 13): bad inputs and faults a new user or an unlucky operator meets.

Every case runs the real CLI (typer's CliRunner) on a copy of a workspace holding a finished
study (tests/results_fixture.py: real run directories and a real DuckDB store), and asserts
the exit code (2: a mistake the user fixes, 1: a failure), the key words of the message, that
no traceback escaped, and that the workspace is intact afterwards: `divrob results` still
works and no temporary file was left behind.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import shutil
import textwrap
from pathlib import Path

import pytest
from results_fixture import make_results_workspace
from typer.testing import CliRunner

from divrob.cli import app

ANSI = re.compile(r"\x1b\[[0-9;]*m")
STUDY = "f"

BASE = """
[study]
name = "b"
downstream = "camtrap-sim"
archs = ["resnet18"]
seeds = [0]
finetune = { epochs = 1, image_size = 16 }

[[distribution]]
name = "scratch"
"""

SMALL_DEMO = """
[demo]
shapes_classes = 4
shapes_per_class = 6
shapes_size = 16
camtrap_images = 100
camtrap_size = 16
"""


@pytest.fixture(scope="module")
def base_ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults") / "ws"
    make_results_workspace(root, study=STUDY, epochs=3)
    return root


@pytest.fixture
def ws(base_ws, tmp_path):
    """A fresh copy of the workspace; afterwards it must still answer `divrob results`
    (once the test has undone its fault) and hold no temporary files."""
    root = tmp_path / "ws"
    shutil.copytree(base_ws, root)
    yield root
    code, out = run("results", "-w", str(root))
    assert code == 0 and STUDY in out, out
    assert not [p for p in tmp_path.rglob("*.tmp")], "temporary files left behind"


def run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "LINES": "40"})
    out = ANSI.sub("", res.output)
    assert res.exception is None or isinstance(res.exception, SystemExit), (
        f"uncaught {type(res.exception).__name__}: {res.exception}\n{out}")
    assert "Traceback" not in out, out
    return res.exit_code, out


def fails(code: int, words: list[str], *args: str) -> str:
    got, out = run(*args)
    assert got == code, f"exit {got}, expected {code}:\n{out}"
    flat = " ".join(out.split())  # rich may wrap long lines
    for w in words:
        assert w.lower() in flat.lower(), f"{w!r} not in:\n{out}"
    return flat


def recipe(tmp_path: Path, text: str, name: str = "r.toml") -> str:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return str(p)


def with_dist(extra: str) -> str:
    return BASE + "\n[[distribution]]\n" + textwrap.dedent(extra)


# ---- recipes: `recipes validate` names the file, the field and the reason (exit 2) -----------

RECIPE_CASES = {
    "unknown source": (with_dist('name = "x"\nsource = "nosuchsource"\ntotal = 10\n'),
                       ["distribution[1].source", "unknown source 'nosuchsource'", "r.toml"]),
    "unknown source in a mixture": (with_dist('name = "x"\nsource = { "demo-shapes" = 1, "nope" = 1 }\ntotal = 10\n'),
                                    ["distribution[1]", "unknown source 'nope'"]),
    "a string for epochs": (BASE.replace("epochs = 1", 'epochs = "3"'), ["study.finetune.epochs", "integer"]),
    "a string for replace": (with_dist('name = "x"\nsource = "demo-shapes"\ntotal = 10\nreplace = "yes"\n'),
                             ["distribution[1].replace", "boolean"]),
    "a value swept twice": (with_dist('name = "x-{total}"\nsource = "demo-shapes"\ntotal = [480, 480]\n'),
                            ["distribution[1]", "total", "480 twice"]),
    "total zero": (with_dist('name = "x"\nsource = "demo-shapes"\ntotal = 0\n'), ["total", "greater than 0"]),
    "total as a float": (with_dist('name = "x"\nsource = "demo-shapes"\ntotal = 1e12\n'), ["total", "integer"]),
    "a string for lr": (BASE.replace("epochs = 1", 'epochs = 1, lr = "0.1"'), ["finetune.lr", "number"]),
    "a fractional batch size": (BASE.replace("epochs = 1", "epochs = 1, batch_size = 3.5"),
                                ["finetune.batch_size", "integer"]),
    "seeds as a string": (BASE.replace("seeds = [0]", 'seeds = "0"'), ["study.seeds", "list"]),
    "a misspelt key": (BASE.replace("seeds = [0]", "seeds = [0]\nepochz = 3"), ["study.epochz", "unknown key"]),
    "an unknown architecture": (BASE.replace('"resnet18"', '"resnet19"'), ["study.archs", "unknown architecture"]),
    "an unknown task": (BASE.replace('"camtrap-sim"', '"nosuchtask"'), ["study.downstream", "nosuchtask"]),
    "no architectures": (BASE.replace('["resnet18"]', "[]"), ["study.archs"]),
    "total and per_class": (with_dist('name = "x"\nsource = "demo-shapes"\ntotal = 10\nper_class = 2\n'),
                            ["either total or per_class"]),
    "a mixture without total": (with_dist('name = "x"\nsource = { "demo-shapes" = 1 }\n'), ["needs total"]),
    "a sweep its name does not mention": (with_dist('name = "x"\nsource = "demo-shapes"\ntotal = [10, 20]\n'),
                                          ["distribution[1]: name", "must mention"]),
    "not TOML": ("[study\nname = ", ["not valid toml"]),
    "no distribution": (BASE[: BASE.index("[[distribution]]")], ["distribution", "field required"]),
    "a number for a name": (with_dist("name = 3\nsource = \"demo-shapes\"\n"), ["name", "string"]),
    "an empty study name": (BASE.replace('name = "b"', 'name = ""'), ["study.name"]),
    "markup in a value is shown as written": (
        with_dist('name = "x"\nsource = "[red]nope[/red]"\ntotal = 10\n'), ["'[red]nope[/red]'"]),
}


@pytest.mark.parametrize("case", list(RECIPE_CASES))
def test_recipe_mistakes_name_the_file_and_field(ws, tmp_path, case):
    text, words = RECIPE_CASES[case]
    fails(2, words, "recipes", "validate", recipe(tmp_path, text))


def test_a_missing_recipe_file(ws, tmp_path):
    fails(2, ["no such file", "divrob recipes list"], "recipes", "validate", str(tmp_path / "nope.toml"))


def test_a_directory_as_recipe(ws, tmp_path):
    fails(2, ["is a directory"], "recipes", "validate", str(tmp_path))


def test_study_plan_names_an_unknown_source_too(ws, tmp_path):
    fails(2, ["r.toml", "distribution[1].source", "nosuchsource"], "study", "plan",
          recipe(tmp_path, with_dist('name = "x"\nsource = "nosuchsource"\ntotal = 10\n')), "-w", str(ws))


# ---- divrob.toml: strict and exact (exit 2) ----------------------------------------------------

def _edit_config(ws: Path, old: str, new: str) -> str:
    cfg = ws / "divrob.toml"
    text = cfg.read_text()
    assert old in text
    cfg.write_text(text.replace(old, new, 1))
    return text


CONFIG_CASES = {
    "not TOML": ("[compute]", "[compute", ["divrob.toml", "not valid toml"]),
    "a misspelt key": ('device = "auto"', 'devcie = "auto"', ["compute.devcie", "unknown key"]),
    "a string for a number": ("num_workers = 2", 'num_workers = "2"', ["compute.num_workers", "integer"]),
    "a string for a boolean-like choice": ('on_lost = "fail"', 'on_lost = "maybe"', ["executor.on_lost"]),
    "a negative count": ("cpu_slots = 1", "cpu_slots = -1", ["executor.cpu_slots"]),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_config_mistakes_name_the_key(ws, case):
    old, new, words = CONFIG_CASES[case]
    text = _edit_config(ws, old, new)
    fails(2, words, "results", "-w", str(ws))
    (ws / "divrob.toml").write_text(text)


def test_a_missing_dataset_root_names_the_table_in_brackets(ws, tmp_path):
    r = recipe(tmp_path, with_dist('name = "x"\nsource = "imagenet"\ntotal = 10\n'))
    out = fails(2, ["imagenet", "[datasets]", "divrob.toml"], "recipes", "build", r, "-w", str(ws))
    assert "under  in" not in out  # rich markup never eats the bracketed word


def test_no_workspace_says_how_to_make_one(ws, tmp_path):
    fails(1, ["no divrob workspace", "divrob init"], "results", "-w", str(tmp_path / "nothing-here"))


# ---- paths that cannot be written ---------------------------------------------------------------

def test_init_under_a_file(ws, tmp_path):
    (tmp_path / "afile").write_text("x")
    fails(2, ["afile", "is a file"], "init", str(tmp_path / "afile" / "ws"))
    assert (tmp_path / "afile").read_text() == "x"


def test_init_on_a_file(ws, tmp_path):
    (tmp_path / "afile").write_text("x")
    fails(2, ["is a file"], "init", str(tmp_path / "afile"))


def test_results_output_under_a_file(ws, tmp_path):
    (tmp_path / "afile").write_text("x")
    fails(2, ["afile", "is a file"], "results", "--format", "csv", "--output", str(tmp_path / "afile" / "x.csv"),
          "-w", str(ws))


def test_results_output_onto_a_directory(ws, tmp_path):
    fails(2, ["is a directory"], "results", "--format", "csv", "--output", str(tmp_path), "-w", str(ws))


def test_plot_export_under_a_file(ws, tmp_path):
    (tmp_path / "afile").write_text("x")
    fails(2, ["afile", "is a file"], "plot", "trends", STUDY, "--export", str(tmp_path / "afile" / "fig.png"),
          "-w", str(ws))


def test_a_workspace_folder_that_is_a_file(ws):
    shutil.rmtree(ws / "indexes")
    (ws / "indexes").write_text("not a folder")
    fails(1, ["indexes", "writable directory"], "results", "-w", str(ws))
    (ws / "indexes").unlink()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through any permission bits")
def test_an_unwritable_indexes_folder(ws):
    (ws / "indexes").chmod(0o500)
    try:
        fails(1, ["permission denied", "indexes"], "data", "index", "demo-shapes", "-w", str(ws))
    finally:
        (ws / "indexes").chmod(0o755)


def test_a_damaged_store_is_an_error_that_says_how_to_rebuild(ws):
    runs_before = _tree_digest(ws / "runs")
    db = ws / "divrob.duckdb"
    data = bytearray(db.read_bytes())
    for at in range(4096, len(data), 997):  # scribble over every block after the header
        data[at:at + 64] = os.urandom(64)
    saved = db.read_bytes()
    db.write_bytes(bytes(data))
    out = fails(1, ["store", "divrob.duckdb", "study run"], "results", "-w", str(ws))
    assert "rebuilds the store" in out
    assert _tree_digest(ws / "runs") == runs_before  # the run directories, the source of truth, untouched
    db.write_bytes(saved)


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


# ---- options ------------------------------------------------------------------------------------

OPTION_CASES = {
    "an unknown format": (2, ["--format", "choose from"], ["results", "--format", "xml"]),
    "parquet without a file": (2, ["--output"], ["results", "--format", "parquet"]),
    "a table to a file": (2, ["--output needs"], ["results", "--output", "x.csv"]),
    "an unknown study": (2, ["no study named 'nope'"], ["results", "--study", "nope"]),
    "an unknown executor": (2, ["--executor", "choose from"], ["study", "run", "{recipe}", "-e", "nosuch"]),
    "detach with inline": (2, ["--detach needs a queue"], ["study", "run", "{recipe}", "-e", "inline", "--detach"]),
    "a bad on-lost policy": (2, ["--on-lost", "fail or requeue"], ["study", "run", "{recipe}", "-e", "local",
                                                                      "--on-lost", "maybe"]),
    "zero slots": (2, ["--cpu-slots"], ["study", "run", "{recipe}", "--cpu-slots", "0"]),
}


@pytest.mark.parametrize("case", list(OPTION_CASES))
def test_option_mistakes(ws, tmp_path, case):
    code, words, args = OPTION_CASES[case]
    r = recipe(tmp_path, BASE)
    fails(code, words, *[r if a == "{recipe}" else a for a in args], "-w", str(ws))


# ---- sizes: a bound on total with replace -----------------------------------------------------

def test_a_huge_total_with_replace_is_bounded_by_the_source_size(ws, tmp_path):
    text = _edit_config(ws, "[demo]", "[demo-was]")
    (ws / "divrob.toml").write_text(text[: text.index("[demo]")] + SMALL_DEMO)
    r = recipe(tmp_path, with_dist('name = "x"\nsource = "demo-shapes"\ntotal = 1000000000000\nreplace = true\n'))
    fails(2, ["'x'", "total = 1000000000000", "replace = true", "at most 100x"], "recipes", "build", r, "-w", str(ws))
    assert not list((ws / "manifests").glob("*.parquet"))
    (ws / "divrob.toml").write_text(text)


# ---- checkpoints: the file, that it is unreadable, what to do; never weights_only=False ------

def _bad_checkpoint(path: Path, kind: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "cut short":
        import torch

        torch.save({"model": {"w": torch.zeros(100)}}, path)
        path.write_bytes(path.read_bytes()[:200])
    elif kind == "foreign object":
        import collections

        path.write_bytes(pickle.dumps(collections.OrderedDict(a=collections.Counter("x"))))
    else:
        path.write_bytes(b"\x00garbage" * 50)


@pytest.mark.parametrize("kind", ["empty", "cut short", "foreign object", "garbage"])
def test_an_unreadable_checkpoint_names_the_file_and_what_to_do(ws, tmp_path, kind):
    from divrob.errors import RunError
    from divrob.train.checkpoint import load_checkpoint

    path = tmp_path / "run" / "checkpoints" / "last.pt"
    _bad_checkpoint(path, kind)
    with pytest.raises(RunError) as e:
        load_checkpoint(path)
    msg = str(e.value)
    assert str(path) in msg and "unreadable" in msg and "delete the run directory" in msg
    assert "weights_only" not in msg


@pytest.mark.slow
def test_study_run_with_an_empty_checkpoint_fails_that_run_with_a_clear_reason(ws, tmp_path):
    from divrob.recipes.load import load_recipe
    from divrob.runs.grid import plan_study
    from divrob.workspace import open_workspace

    r = recipe(tmp_path, BASE)
    w = open_workspace(ws)
    (pr,) = plan_study(w, load_recipe(r)).runs
    from divrob.runs.rundir import RunDir

    rd = RunDir.for_spec(w.runs, pr.spec)
    _bad_checkpoint(rd.checkpoints / "last.pt", "empty")
    out = fails(1, ["failed", "last.pt", "unreadable", "empty", "delete the run directory"],
                "study", "run", r, "-w", str(ws))
    assert "weights_only" not in out
    assert rd.status().state == "failed" and "unreadable" in rd.status().reason
