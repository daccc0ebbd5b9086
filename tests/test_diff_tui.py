"""The TUI opens `divrob diff` from two marked rows on Results (a real app driven by Pilot, real store)."""

from __future__ import annotations

import json

import pytest
from test_tui_helpers import make_app, make_tui_workspace, settle

SIZE = (120, 40)
pytestmark = pytest.mark.anyio



@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return make_tui_workspace(tmp_path_factory.mktemp("tui-diff") / "ws")


@pytest.mark.slow
async def test_mark_two_rows_and_open_their_diff(ws):
    from divrob.tui.components.diff import DiffScreen

    app = make_app(ws, start="results")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        results = app.screen
        await pilot.press("d")  # nothing marked: a hint, no screen
        await settle(pilot)
        assert app.screen is results
        first, second = results.run_ids[:2]  # the first page, straight from the store
        await pilot.press("m", "down", "m", "d")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DiffScreen) and (screen.run_a, screen.run_b) == (first, second)
        d = screen.diff
        assert d is not None and d["a"]["runs"] == [first] and d["b"]["runs"] == [second]
        fields = {r["field"] for r in d["spec"]}
        arch = {r: json.loads((ws.runs / r / "spec.json").read_text())["arch"] for r in (first, second)}
        assert ("arch" in fields) == (arch[first] != arch[second])
        assert d["metrics"] and all(r["phase"] == "finetune" for r in d["metrics"])
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is results
