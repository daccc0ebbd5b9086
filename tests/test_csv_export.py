"""CSV exports are written by DuckDB (divrob.fileio.write_csv): ten times faster than pandas and
never the whole text in memory. The text must be pandas' own `to_csv(index=False)`, byte for
byte, so nothing a user's script reads changes; the one exception, an empty string (`""`, where
pandas writes nothing, as for a missing value), reads back as pandas reads its own."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from results_fixture import make_results_workspace
from typer.testing import CliRunner

from divrob.analysis.report import study_points
from divrob.cli import app
from divrob.fileio import write_csv


def _same_text(frame: pd.DataFrame, tmp_path) -> str:
    ours = tmp_path / "ours.csv"
    write_csv(frame, ours)
    text = ours.read_text()
    assert text == frame.to_csv(index=False)
    return text


def test_awkward_values_are_written_as_pandas_writes_them(tmp_path):
    frame = pd.DataFrame({
        "mixed": pd.Series(["a", 5, None, 2.5, True, "x"], dtype=object),
        "floats": [1.0, np.nan, 3e-7, 1e20, -0.0, 0.1 + 0.2],
        "ints": [1, 2, 3, 4, 5, -6],
        "flags": [True, False, True, True, False, True],
        "groups": pd.Categorical(["x", None, "y", "x", "y", "x"]),
        "empty": pd.Series([None] * 6, dtype=object),
        "text": ["plain", 'a,b "c"', "two\nlines", "ünïcode → ✓", "-", " padded "],
        "classes.random": [4.0, 8.0, np.nan, 4.0, 8.0, 16.0],
    })
    _same_text(frame, tmp_path)


def test_an_empty_string_is_quoted_and_reads_back_as_pandas_reads_its_own(tmp_path):
    import io

    frame = pd.DataFrame({"text": ["a", "", None], "x": [1, 2, 3]})
    write_csv(frame, tmp_path / "e.csv")
    text = (tmp_path / "e.csv").read_text()
    assert text == 'text,x\na,1\n"",2\n,3\n'
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(text)), pd.read_csv(io.StringIO(frame.to_csv(index=False))))


def test_a_study_s_results_are_written_as_pandas_writes_them(tmp_path):
    ws = make_results_workspace(tmp_path / "ws", study="s", seeds=(0, 1), epochs=3)
    points = study_points(ws, "s")
    assert len(points) == 3 * 2 * 2 * 3
    _same_text(points, tmp_path)


@pytest.mark.parametrize("to_file", [False, True])
def test_results_csv_on_stdout_and_to_a_file(tmp_path, to_file):
    ws = make_results_workspace(tmp_path / "ws", study="s", epochs=2)
    expected = study_points(ws, "s").to_csv(index=False)
    out = tmp_path / "out" / "r.csv"
    out.parent.mkdir()
    args = ["results", "--study", "s", "--format", "csv", "-w", str(ws.root)] + (["--output", str(out)] if to_file else [])
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    if to_file:
        assert out.read_text() == expected and "12 rows written" in res.output
        assert [p.name for p in out.parent.iterdir()] == ["r.csv"]  # no temporary file left
    else:
        assert res.stdout == expected
