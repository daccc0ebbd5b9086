"""Snapshots of the five screens at 80x24 and 160x48 (pytest-textual-snapshot). Deterministic: a fixed
fixture workspace, no bundled recipes in the list, a fixed clock for elapsed/ETA, no spinners,
and every worker awaited before the frame is taken. Update with `--snapshot-update`."""

from __future__ import annotations

import pytest
from test_tui_helpers import NOW, make_tui_workspace, settle


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return make_tui_workspace(tmp_path_factory.mktemp("snap") / "ws")


def app_on(ws, start: str):
    from divrob.tui.adapter import DivrobAdapter
    from divrob.tui.app import DivrobApp

    app = DivrobApp(adapter=DivrobAdapter(ws.root, clock=lambda: NOW, include_bundled=False), start=start,
                    refresh_s=3600)
    app.recipe = ws.root / "recipes" / "fixture.toml"
    return app


@pytest.mark.parametrize("screen", ["recipes", "study", "jobs", "results", "trends"])
@pytest.mark.slow
def test_screen(ws, snap_compare, screen):
    assert snap_compare(app_on(ws, screen), terminal_size=(80, 24), run_before=settle)


@pytest.mark.parametrize("screen", ["jobs", "trends"])
@pytest.mark.slow
def test_screen_large(ws, snap_compare, screen):
    assert snap_compare(app_on(ws, screen), terminal_size=(160, 48), run_before=settle)


async def _help(pilot):
    await settle(pilot)
    await pilot.press("question_mark")
    await pilot.pause()


@pytest.mark.slow
def test_help_overlay(ws, snap_compare):
    assert snap_compare(app_on(ws, "trends"), terminal_size=(80, 24), run_before=_help)


async def _facets(pilot):
    await settle(pilot)
    await pilot.press("f")
    await settle(pilot)


@pytest.mark.slow
def test_trends_facets_large(ws, snap_compare):
    assert snap_compare(app_on(ws, "trends"), terminal_size=(160, 48), run_before=_facets)
