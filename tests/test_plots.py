"""Terminal (plotext) and exported (matplotlib) trend figures."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtr

from divrob.analysis.trends import bootstrap_band, fit_trends
from divrob.plots.export import export_panels, export_residuals, export_trends
from divrob.plots.terminal import render_residuals, render_trends

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def results():
    """Two groups on distinct probit-linear trends, like scratch vs ImageNet pre-training."""
    rng = np.random.default_rng(0)
    frames = []
    for group, (slope, intercept) in {"scratch": (0.9, -0.7), "imagenet-1k": (0.8, -0.3)}.items():
        xt = rng.uniform(-1.5, 0.2, 30)
        yt = slope * xt + intercept + 0.08 * rng.normal(size=30)
        frames.append(pd.DataFrame({"group": group, "id_f1": ndtr(xt), "ood_f1": ndtr(yt)}))
    df = pd.concat(frames, ignore_index=True)
    trends = fit_trends(df)
    bands = {}
    for group, sub in df.groupby("group"):
        grid = np.linspace(sub.id_f1.min(), sub.id_f1.max(), 25)
        bands[group] = (grid, *bootstrap_band(sub.id_f1, sub.ood_f1, grid, n_boot=200))
    return df, trends, bands


def plain(text: str) -> str:
    return ANSI.sub("", text)


# ---- terminal -------------------------------------------------------------------------------

def test_render_has_legend_labels_and_requested_size(results):
    df, trends, bands = results
    out = render_trends(df, trends, bands=bands, width=90, height=28, title="quantity")
    text = plain(out)
    lines = text.splitlines()
    assert len(lines) == 28
    assert max(len(line) for line in lines) == 90
    for expected in ("scratch", "imagenet-1k", "y = x", "ID macro-F1", "OOD macro-F1", "quantity"):
        assert expected in text


def test_render_axis_is_probit_with_metric_tick_labels(results):
    df, trends, _ = results
    lines = plain(render_trends(df, trends, width=90, height=24)).splitlines()
    labels = lines[-2].split()
    assert {"0.1", "0.2", "0.4"} <= set(labels)
    cols = dict(zip(labels, [m.start() for m in re.finditer("┬", lines[-3])]))
    # Column gaps 0.1->0.2 vs 0.2->0.4 are in ratio 0.75 on a probit axis
    # (0.5 on a linear axis, 1.0 on a log one).
    ratio = (cols["0.2"] - cols["0.1"]) / (cols["0.4"] - cols["0.2"])
    assert ratio == pytest.approx(0.75, abs=0.08)


def test_render_default_size_follows_the_terminal(results, monkeypatch):
    df, trends, _ = results
    monkeypatch.setenv("COLUMNS", "70")
    monkeypatch.setenv("LINES", "25")
    lines = plain(render_trends(df, trends)).splitlines()
    assert len(lines) == 23  # two lines left for the prompt
    assert max(len(line) for line in lines) == 70


def test_render_clamps_absurd_sizes(results):
    df, trends, _ = results
    lines = plain(render_trends(df, trends, width=5, height=3)).splitlines()
    assert len(lines) >= 12 and max(len(line) for line in lines) >= 40


def test_render_bands_add_marks(results):
    df, trends, bands = results
    without = plain(render_trends(df, trends, width=90, height=28))
    with_bands = plain(render_trends(df, trends, bands=bands, width=90, height=28))
    assert with_bands != without


def test_render_without_trends_or_points_still_draws_axes():
    empty = pd.DataFrame({"group": [], "id_f1": [], "ood_f1": []})
    text = plain(render_trends(empty, {}, width=60, height=15))
    assert len(text.splitlines()) == 15 and "ID macro-F1" in text


# ---- export -----------------------------------------------------------------------------------

@pytest.mark.parametrize("transform", ["probit", "logit", "linear"])
def test_export_png(results, tmp_path, transform):
    df, trends, bands = results
    out = export_trends(df, trends, tmp_path / "fig.png", bands=bands, transform=transform,
                        title="source")
    assert out == tmp_path / "fig.png"
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["fig.png"]  # no temp file left behind


def test_export_svg_is_xml_with_svg_root(results, tmp_path):
    df, trends, bands = results
    out = export_trends(df, trends, tmp_path / "fig.svg", bands=bands)
    root = ET.parse(out).getroot()
    assert root.tag.split("}")[-1] == "svg"
    assert [p.name for p in tmp_path.iterdir()] == ["fig.svg"]


def test_export_pdf(results, tmp_path):
    df, trends, bands = results
    out = export_trends(df, trends, tmp_path / "sub" / "fig.PDF", bands=bands)
    assert out.read_bytes()[:5] == b"%PDF-"
    assert [p.name for p in out.parent.iterdir()] == ["fig.PDF"]


def test_export_svg_is_reproducible(results, tmp_path):
    df, trends, bands = results
    a = export_trends(df, trends, tmp_path / "a.svg", bands=bands).read_bytes()
    b = export_trends(df, trends, tmp_path / "b.svg", bands=bands).read_bytes()
    assert a == b


def test_export_bad_suffix_raises_and_writes_nothing(results, tmp_path):
    df, trends, _ = results
    with pytest.raises(ValueError, match=r"\.png.*\.svg.*\.pdf"):
        export_trends(df, trends, tmp_path / "fig.jpg")
    assert list(tmp_path.iterdir()) == []


# ---- panels and residuals -------------------------------------------------------------------

@pytest.fixture(scope="module")
def residuals():
    rng = np.random.default_rng(1)
    return pd.DataFrame([{"arch": a, "epoch": e, "residual": 0.01 * rng.normal()}
                         for a in ("resnet18", "resnet50") for e in range(1, 13)])


def test_export_panels_one_axes_per_panel(results, tmp_path):
    df, trends, bands = results
    panels = {"total": (df, trends, bands), "classes.random": (df[df.group == "scratch"],
                                                               {"scratch": trends["scratch"]}, {})}
    out = export_panels(panels, tmp_path / "p.svg", title="two axes")
    svg = out.read_text()
    assert svg.count('id="axes_') == 2
    assert export_panels(panels, tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".pdf", b"%PDF-"), (".svg", b"<?xml")])
def test_export_residuals_formats(residuals, tmp_path, suffix, magic):
    out = export_residuals(residuals, tmp_path / f"r{suffix}", title="Figure 3")
    assert out.read_bytes()[: len(magic)] == magic
    if suffix == ".svg":
        assert ET.parse(out).getroot().tag.split("}")[-1] == "svg"


def test_render_residuals_legend_and_epoch_axis(residuals):
    text = plain(render_residuals(residuals, width=80, height=20, title="residuals"))
    lines = text.splitlines()
    assert len(lines) == 20
    for expected in ("resnet18", "resnet50", "y = 0", "fine-tuning epoch", "residuals"):
        assert expected in text
    assert "12" in lines[-2]
