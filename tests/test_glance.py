"""The trends at a glance (analysis.glance): what Trends draws first on a big study, read without
pandas. Its points, groups, order and lines must be those of the full analysis, so nothing moves
when the analysis replaces it; and the Trends screen must draw it before the full load is done."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest
from results_fixture import GroupSpec, make_results_workspace

from divrob.analysis.glance import glance
from divrob.analysis.report import study_points
from divrob.analysis.robustness import analyse
from divrob.store.db import write_connection

GROUPS = [GroupSpec("scratch", 0.9, -0.7),
          GroupSpec("shapes-500", 0.9, -0.5, "demo-shapes", {"total": 500}),
          GroupSpec("shapes-25000", 0.8, -0.2, "demo-shapes", {"total": 25000})]


def _full(ws, study):
    points = study_points(ws, study, ("id_score", "ood_score"))
    return points, analyse(points, "distribution", None, with_bands=False)


def _same_as_the_analysis(g, points, a):
    assert list(g.points) == list(a.groups)  # the same groups, in the order colours are given in
    for name, trend in a.trends.items():
        mine = g.trends[name]
        assert mine.n == trend.n
        assert mine.slope == pytest.approx(trend.slope, rel=1e-12, abs=1e-12)
        assert mine.intercept == pytest.approx(trend.intercept, rel=1e-12, abs=1e-12)
        assert mine.r2 == pytest.approx(trend.r2, rel=1e-12, abs=1e-12)
        rows = a.df[(a.df["group"] == name).to_numpy()]
        for mine_v, theirs in zip(g.points[name], (rows["id_score"], rows["ood_score"])):
            np.testing.assert_array_equal(np.sort(mine_v), np.sort(theirs.to_numpy(float)))
    assert set(g.trends) == set(a.trends)
    assert g.metric == a.metric


def test_the_glance_is_the_full_analysis_without_resampling(tmp_path):
    root = tmp_path / "ws"
    make_results_workspace(root, study="other", groups=GROUPS[:1], seed=3)  # a second study: not read
    ws = make_results_workspace(root, study="s", groups=GROUPS, seeds=(0, 1), epochs=4)
    # a run whose OOD split was never evaluated at its last epoch, and one evaluated nowhere at
    # its first: such epochs are not points, in either reading
    with write_connection(ws.db_path) as con:
        a_run, b_run = [r[0] for r in con.execute(
            "SELECT run_id FROM study_runs WHERE study = 's' ORDER BY run_id LIMIT 2").fetchall()]
        con.execute("DELETE FROM epochs WHERE run_id = ? AND split = 'test' AND epoch = 4", [a_run])
        con.execute("UPDATE epochs SET score = NULL WHERE run_id = ? AND split = 'id_test' AND epoch = 1", [b_run])
    g = glance(ws, "s")
    points, a = _full(ws, "s")
    assert g.n == len(a.df) == len(points) - 2
    assert (g.study, g.ood, g.transform) == ("s", "test", "probit")
    _same_as_the_analysis(g, points, a)


def test_the_glance_reads_a_task_s_own_id_split(tmp_path):
    # Camelyon17's ID split is id_val: the glance must read it, as the full reading does
    ws = make_results_workspace(tmp_path / "ws", study="cam", groups=GROUPS[:2], downstream="wilds:camelyon17")
    g = glance(ws, "cam")
    points, a = _full(ws, "cam")
    _same_as_the_analysis(g, points, a)
    with write_connection(ws.db_path) as con:
        id_val = np.sort([r[0] for r in con.execute(
            "SELECT score FROM epochs WHERE split = 'id_val' AND phase = 'finetune'").fetchall()])
    np.testing.assert_array_equal(np.sort(np.concatenate([x for x, _ in g.points.values()])), id_val)


def test_a_group_with_one_point_has_no_line_in_either_reading(tmp_path):
    ws = make_results_workspace(tmp_path / "ws", study="s", groups=GROUPS[:2], archs=("resnet18",), epochs=1)
    g = glance(ws, "s")
    points, a = _full(ws, "s")
    assert g.trends == {} and a.trends == {}
    assert list(g.points) == list(a.groups) == ["scratch", "shapes-500"]


def test_an_unknown_study_is_named_with_the_ones_there_are(tmp_path):
    from divrob.errors import DivrobError

    ws = make_results_workspace(tmp_path / "ws", study="s", groups=GROUPS[:1])
    with pytest.raises(DivrobError, match="no study named 'nope'.*studies in this workspace: s"):
        glance(ws, "nope")


def test_the_glance_loads_no_pandas(tmp_path):
    ws = make_results_workspace(tmp_path / "ws", study="s", groups=GROUPS[:2])
    code = ("import sys; from divrob.analysis.glance import glance; from divrob.workspace import open_workspace; "
            f"g = glance(open_workspace({str(ws.root)!r}), 's'); assert g.trends; "
            "print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _lines(trends) -> dict:
    return {(g, k): getattr(t, k) for g, t in trends.items() for k in ("slope", "intercept", "n")}


# ---- the Trends screen draws it first -------------------------------------------------------

@pytest.mark.slow
@pytest.mark.anyio
async def test_trends_draws_the_glance_before_the_full_load_is_done(tmp_path):
    from test_tui_helpers import NOW, settle
    from textual.widgets import DataTable

    from divrob.tui.adapter import DivrobAdapter
    from divrob.tui.app import DivrobApp

    ws = make_results_workspace(tmp_path / "ws", study="s", groups=GROUPS, seeds=(0, 1, 2))
    release = threading.Event()

    class SlowPoints(DivrobAdapter):
        """The real adapter, whose full load of the points waits until the test lets it go: it
        stands for a study whose points take seconds to load."""

        def points(self, *args, **kw):
            release.wait(30)
            return super().points(*args, **kw)

    app = DivrobApp(adapter=SlowPoints(ws.root, clock=lambda: NOW), start="trends", refresh_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(200):
            if app.screen.painted_trends is not None:
                break
            await pilot.pause(0.02)
        screen = app.screen
        assert screen.painted_trends is not None and screen.analysis is None  # drawn from the glance
        expected = glance(ws, "s")
        assert list(screen.glance.trends) == ["scratch", "shapes-25000", "shapes-500"]  # the analysis's order
        assert _lines(screen.glance.trends) == pytest.approx(_lines(expected.trends), rel=1e-12)
        er = screen.query_one("#er", DataTable)
        cells = [str(er.get_row_at(i)[0]) for i in range(er.row_count)]
        assert cells[-1] == f"reading {expected.n:,} points…"
        release.set()
        await settle(pilot)
        assert screen.analysis is not None and screen.analysed_key is not None
        assert _lines(screen.analysis.trends) == pytest.approx(_lines(expected.trends), rel=1e-12)
        cells = [str(er.get_row_at(i)[0]) for i in range(er.row_count)]
        assert not any(c.startswith("reading") for c in cells)
