"""Terminal (plotext) and exported (matplotlib) trend figures: one renderer for the CLI, the demo
and the TUI, readable at 80x24 and 160x48 (snapshot-style: properties of the text, not bytes)."""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtr, ndtri

from divrob.analysis.robustness import analyse
from divrob.analysis.trends import Trend
from divrob.plots.export import export_panels, export_residuals, export_trends, trend_figure
from divrob.plots.terminal import (
    TrendPanel,
    draw_trends,
    panel_of,
    render_residuals,
    render_trends,
    x_title,
    y_title,
)

ANSI = re.compile(r"\x1b\[[0-9;]*m")
GROUPS = {"scratch": (0.9, -0.7), "imagenet-1k": (0.8, -0.3), "shapes-2000-with-a-long-name": (0.85, -0.5)}


@pytest.fixture(scope="module")
def analysis():
    """Three groups of 6 runs x 12 epochs on distinct probit-linear trends."""
    rng = np.random.default_rng(0)
    rows = []
    for group, (slope, intercept) in GROUPS.items():
        for r in range(6):
            x0, offset = rng.normal(-1.0, 0.25), 0.1 * rng.normal()
            for e in range(12):
                xt = x0 + 0.06 * e
                rows.append({"distribution": group, "run_id": f"{group}{r}", "arch": f"a{r % 3}", "epoch": e + 1,
                             "id_score": ndtr(xt), "ood_score": ndtr(slope * xt + intercept + offset + 0.02 * rng.normal())})
    return analyse(pd.DataFrame(rows), n_boot=300)


@pytest.fixture(scope="module")
def panel(analysis):
    return panel_of(analysis)


def plain(text: str) -> str:
    return ANSI.sub("", text)


def split_plot(text: str) -> tuple[list[str], list[str]]:
    """(the plot's lines, the legend's lines): the legend starts after the axis-title line."""
    lines = plain(text).splitlines()
    axis = max(i for i, line in enumerate(lines) if x_title() in line)
    return lines[: axis + 1], [line for line in lines[axis + 1:] if line.strip()]


# ---- terminal: readable at 80x24 and 160x48 ---------------------------------------------------

@pytest.mark.parametrize("width, height", [(80, 22), (160, 46)])
@pytest.mark.parametrize("bands", ["lines", "shade", "none"])
def test_plot_fits_the_terminal_has_titles_and_a_legend_outside_the_data(panel, width, height, bands):
    out = render_trends(panel, width=width, height=height, title="quantity", bands=bands)
    plot, legend = split_plot(out)
    assert all(len(line) <= width for line in plain(out).splitlines())
    assert len(plot) == height
    text = "\n".join(plot)
    for expected in ("quantity", x_title(), y_title(), "y = x"):
        assert expected in text
    # The legend is below the plot, never drawn over the data: no group name inside the frame.
    legend_text = " ".join(legend)
    for group in GROUPS:
        assert group in legend_text
        assert all(group not in line for line in plot)
    assert "y = x" in legend_text and "trend" in legend_text
    assert ("95% band" in legend_text) == (bands != "none")


def test_bands_are_drawn_as_edges_a_shade_or_not_at_all(panel):
    inside = {b: "\n".join(split_plot(render_trends(panel, width=100, height=30, bands=b))[0])
              for b in ("none", "lines", "shade")}
    assert "░" in inside["shade"] and "░" not in inside["lines"] and "░" not in inside["none"]
    assert inside["lines"].count("·") > inside["none"].count("·") + 20  # two edge lines per group
    with pytest.raises(ValueError, match="lines, shade"):
        render_trends(panel, width=80, height=20, bands="dots")


def test_axis_is_probit_with_metric_tick_labels(panel):
    plot, _ = split_plot(render_trends(panel, width=120, height=30))
    labels = plot[-2].split()
    cols = [m.start() for m in re.finditer("┬", plot[-3])]
    assert len(labels) == len(cols) >= 3 and {"0.1", "0.2"} <= set(labels)
    a, b, c = (float(v) for v in labels[:3])
    gaps = (cols[1] - cols[0]) / (cols[2] - cols[1])
    # Tick columns are spaced as the probit of their labels, not as the labels themselves.
    probit = (ndtri(b) - ndtri(a)) / (ndtri(c) - ndtri(b))
    assert gaps == pytest.approx(probit, abs=0.12)
    assert abs(probit - (b - a) / (c - b)) > 0.25  # so a linear axis would fail


def test_facets_go_side_by_side_when_wide_and_stack_when_narrow(panel):
    panels = {"total": panel, "classes.random": dataclasses.replace(panel, bands={})}
    wide, _ = split_plot(render_trends(panels, width=160, height=30, title="study"))
    assert any(line.count("┌") == 2 for line in wide) and "total" in "\n".join(wide)
    narrow = plain(render_trends(panels, width=80, height=20, title="study")).splitlines()
    assert sum(line.count("┌") for line in narrow) == 2 and all(line.count("┌") <= 1 for line in narrow)
    assert all(len(line) <= 80 for line in narrow)
    assert "total" in "\n".join(narrow) and "classes.random" in "\n".join(narrow)


def test_notes_reach_the_title_even_when_narrow(panel):
    flagged = dataclasses.replace(panel, flags=("clipped", "extrapolated"))
    plot, _ = split_plot(render_trends(flagged, width=60, height=18, title="a long title that cannot fit"))
    assert "note: clipped, extrapolated" in plot[0]


def test_reference_lines_are_drawn_and_named_in_the_legend(panel):
    ref = Trend("miller", 0.85, -0.55, float("nan"), 0, "probit")
    with_ref = dataclasses.replace(panel, references={"miller": ref})
    plot, legend = split_plot(render_trends(with_ref, width=100, height=30))
    before, _ = split_plot(render_trends(panel, width=100, height=30))
    assert "miller (reference)" in " ".join(legend)
    assert sum(line.count("━") for line in plot) > sum(line.count("━") for line in before) + 10


def test_the_tui_figure_gets_the_same_drawing(panel):
    """The TUI passes textual-plotext's figure; the same renderer draws on it."""
    from textual_plotext.plot import Plot

    fig = Plot()
    draw_trends(fig, dataclasses.replace(panel, flags=()), title="OOD vs ID macro-F1 (probit)", width=46, height=18)
    fig.plotsize(46, 18)
    text = plain(fig.build())
    assert "y = x" in text and x_title() in text and "OOD vs ID" in text
    assert not any(g in text for g in GROUPS)  # no legend on the data (the TUI's table is the legend)


def test_render_default_size_follows_the_terminal(panel, monkeypatch):
    monkeypatch.setenv("COLUMNS", "70")
    monkeypatch.setenv("LINES", "25")
    plot, _ = split_plot(render_trends(panel))
    assert len(plot) == 23  # two lines left for the prompt
    assert max(len(line) for line in plot) <= 70


def test_render_without_trends_or_points_still_draws_axes():
    empty = panel_of(analyse(pd.DataFrame({"distribution": ["x"], "run_id": ["r"], "id_score": [np.nan],
                                           "ood_score": [np.nan]}), baseline=None))
    text = plain(render_trends(empty, width=60, height=15))
    assert x_title() in text


# ---- export -----------------------------------------------------------------------------------

@pytest.mark.parametrize("transform", ["probit", "logit", "linear"])
def test_export_png(analysis, tmp_path, transform):
    a = analysis if transform == "probit" else analyse(analysis.df.drop(columns="group"), transform=transform, n_boot=200)
    out = export_trends(panel_of(a), tmp_path / "fig.png", title="source")
    assert out == tmp_path / "fig.png"
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["fig.png"]  # no temp file left behind


def test_exported_legend_sits_outside_every_panel(panel):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = trend_figure({"total": panel, "classes.random": panel}, title="two axes", bands="lines")
    renderer = FigureCanvasAgg(fig).get_renderer()
    legend = fig.legends[0].get_window_extent(renderer)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {*GROUPS, "y = x", "95% band"} <= set(labels)
    for ax in fig.axes:
        assert not legend.overlaps(ax.get_window_extent(renderer))
        assert ax.get_xlabel().startswith("ID macro-F1") and ax.get_ylabel().startswith("OOD macro-F1")


def test_export_svg_is_reproducible_xml(panel, tmp_path):
    a = export_trends(panel, tmp_path / "a.svg").read_bytes()
    b = export_trends(panel, tmp_path / "b.svg").read_bytes()
    assert a == b
    assert ET.parse(tmp_path / "a.svg").getroot().tag.split("}")[-1] == "svg"


def test_export_pdf(panel, tmp_path):
    out = export_trends(panel, tmp_path / "sub" / "fig.PDF")
    assert out.read_bytes()[:5] == b"%PDF-"
    assert [p.name for p in out.parent.iterdir()] == ["fig.PDF"]


def test_export_bad_suffix_raises_and_writes_nothing(panel, tmp_path):
    with pytest.raises(ValueError, match=r"\.png.*\.svg.*\.pdf"):
        export_trends(panel, tmp_path / "fig.jpg")
    assert list(tmp_path.iterdir()) == []


def test_export_panels_one_axes_per_panel(panel, tmp_path):
    out = export_panels({"total": panel, "classes.random": panel}, tmp_path / "p.svg", title="two axes")
    assert out.read_text().count('id="axes_') == 2


# ---- residuals --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def residuals():
    rng = np.random.default_rng(1)
    return pd.DataFrame([{"arch": a, "epoch": e, "residual": 0.01 * rng.normal()}
                         for a in ("resnet18", "resnet50") for e in range(1, 13)])


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".pdf", b"%PDF-"), (".svg", b"<?xml")])
def test_export_residuals_formats(residuals, tmp_path, suffix, magic):
    out = export_residuals(residuals, tmp_path / f"r{suffix}", title="Figure 3")
    assert out.read_bytes()[: len(magic)] == magic


@pytest.mark.parametrize("width, height", [(80, 20), (160, 46)])
def test_render_residuals_legend_below_and_epoch_axis(residuals, width, height):
    lines = plain(render_residuals(residuals, width=width, height=height, title="residuals")).splitlines()
    assert all(len(line) <= width for line in lines)
    plot, legend = lines[:height], " ".join(lines[height:])
    assert "resnet18" in legend and "resnet50" in legend and "baseline trend" in legend
    assert not any("resnet" in line for line in plot)
    assert "fine-tuning epoch" in "\n".join(plot) and "12" in plot[-2]


@pytest.mark.parametrize("n", [50, 5000])
def test_exported_lines_stay_visible_over_a_dense_cloud(n):
    # with a few points per group the points go on top; with thousands (a big study) they would
    # hide every line, so they get small, faint and rasterised, and the lines go on top of them
    from matplotlib.collections import PathCollection

    from divrob.analysis.trends import fit_trend
    from divrob.plots.export import DENSE_POINTS

    rng = np.random.default_rng(0)
    x = rng.uniform(0.2, 0.8, n)
    y = np.clip(x - 0.1 + rng.normal(0, 0.03, n), 0.01, 0.99)
    panel = TrendPanel("probit", {"g": (x, y)}, {"g": fit_trend(x, y, "probit", "g")})
    (ax, *_) = trend_figure({"": panel}, bands="none").axes
    (cloud,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    (line,) = [ln for ln in ax.lines if ln.get_linewidth() == 2]
    dense = n > DENSE_POINTS
    assert (line.get_zorder() > cloud.get_zorder()) == dense
    assert cloud.get_rasterized() == dense and (cloud.get_alpha() < 0.5) == dense


def test_the_diagonal_s_label_is_left_out_where_it_would_be_cut():
    # a study far below y = x: the diagonal leaves the panel near its left edge, where the
    # right-aligned words "y = x" were cut to a stray "x" in the corner; the legend still names it
    from divrob.analysis.trends import fit_trend

    x = np.linspace(0.42, 0.76, 30)
    y = np.linspace(0.13, 0.41, 30)
    far = render_trends(TrendPanel("probit", {"g": (x, y)}, {"g": fit_trend(x, y, "probit", "g")}),
                        width=80, height=24)
    plot, legend = far.rsplit("\n", 1)
    assert "y = x" not in plot and "y = x" in legend
    assert not any(line.strip("│ ").startswith("x") for line in plot.splitlines()[:3])
    near = render_trends(TrendPanel("probit", {"g": (x, x - 0.05)}), width=80, height=24)
    assert "y = x" in near.rsplit("\n", 1)[0]  # with room, the diagonal is labelled on the plot
