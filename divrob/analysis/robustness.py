"""A study's answer in numbers: per group its trend, band and effective robustness against a
baseline; the difference between two groups; residuals per fine-tuning epoch.

Pure functions of a points frame (`report.study_points`); they raise ValueError for bad
arguments, and the CLI turns those into DivrobError.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from divrob.analysis.report import group_label, group_order, with_groups
from divrob.analysis.trends import (
    Trend,
    bootstrap_band,
    effective_robustness,
    effective_robustness_ci,
    effective_robustness_diff_ci,
    fit_trend,
)

DEFAULT_BASELINE = "scratch"
N_BOOT = 1000
BAND_GRID = 50
JSON_DIGITS = 6


@dataclass(frozen=True)
class GroupResult:
    group: str
    n: int  # points (fine-tuning epochs with both metrics)
    runs: int
    trend: Trend | None  # None: fewer than 2 points or a single ID value
    band: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # (ID grid, low, high) in F1 units
    er: tuple[float, float, float] | None  # mean effective robustness, CI low, CI high


@dataclass
class Analysis:
    df: pd.DataFrame  # the grouped rows (`group` column)
    group_by: str
    transform: str
    baseline: str | None  # None: no baseline in the data, so no effective robustness
    baseline_trend: Trend | None
    groups: dict[str, GroupResult] = field(default_factory=dict)
    n_boot: int = N_BOOT
    seed: int = 0
    level: float = 0.95
    notes: list[str] = field(default_factory=list)

    @property
    def trends(self) -> dict[str, Trend]:
        return {g: r.trend for g, r in self.groups.items() if r.trend is not None}

    @property
    def bands(self) -> dict[str, tuple]:
        return {g: r.band for g, r in self.groups.items() if r.band is not None}

    def ranked(self) -> list[GroupResult]:
        """Groups with an effective robustness, most robust first."""
        return sorted((r for r in self.groups.values() if r.er is not None), key=lambda r: -r.er[0])


def baseline_points(points: pd.DataFrame, grouped: pd.DataFrame,
                    baseline: str) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """(ID, OOD, is_a_group) of the baseline: the group of that name, else the distribution of
    that name (so `--group-by total` can still be read against scratch, which sweeps nothing)."""
    rows = grouped[grouped["group"] == baseline]
    is_group = len(rows) > 0
    if not is_group and "distribution" in points.columns:
        rows = points[points["distribution"].astype(str) == baseline].dropna(subset=["id_f1", "ood_f1"])
    if len(rows) == 0:
        return None
    return rows["id_f1"].to_numpy(float), rows["ood_f1"].to_numpy(float), is_group


def analyse(points: pd.DataFrame, group_by: str = "distribution", baseline: str | None = DEFAULT_BASELINE,
            transform: str = "probit", n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95,
            baseline_required: bool = False, with_bands: bool = True) -> Analysis:
    """Trend, band and effective robustness of every group of `points` by `group_by`.

    Without the baseline in the data, effective robustness is left out with a note, unless
    `baseline_required` (the user named it), which makes it an error.
    """
    df = with_groups(points, group_by)
    out = Analysis(df, group_by, transform, None, None, n_boot=n_boot, seed=seed, level=level)
    base = baseline_points(points, df, baseline) if baseline else None
    if baseline and base is None:
        choices = ", ".join(group_order(df["group"].unique())) or "none"
        msg = f"no group or distribution named {baseline!r} to use as the baseline; groups: {choices}"
        if baseline_required:
            raise ValueError(msg)
        out.notes.append(msg + " (effective robustness left out; choose one with --baseline)")
    elif base is not None:
        try:
            out.baseline_trend = fit_trend(base[0], base[1], transform, group=baseline)
            out.baseline = baseline
        except ValueError as e:
            if baseline_required:
                raise
            out.notes.append(f"baseline {baseline!r}: {e} (effective robustness left out)")
    for g in group_order(df["group"].unique()):
        sub = df[df["group"] == g]
        x, y = sub["id_f1"].to_numpy(float), sub["ood_f1"].to_numpy(float)
        trend = band = er = None
        try:
            trend = fit_trend(x, y, transform, group=g)
        except ValueError as e:
            out.notes.append(str(e))
        if trend is not None and with_bands:
            grid = np.linspace(x.min(), x.max(), BAND_GRID)
            try:
                band = (grid, *bootstrap_band(x, y, grid, transform, n_boot, seed, level))
            except ValueError as e:
                out.notes.append(f"group {g!r}: {e}")
        if out.baseline_trend is not None:
            shared = base[2] and g == out.baseline
            er = effective_robustness_ci(x, y, base[0], base[1], transform, n_boot, seed, level,
                                         is_baseline=shared)
        out.groups[g] = GroupResult(g, len(sub), int(sub["run_id"].nunique()), trend, band, er)
    return out


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    baseline: str
    diff: float  # mean effective robustness of a minus that of b (F1 units)
    low: float
    high: float
    level: float
    n_a: int
    n_b: int

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def sentence(self) -> str:
        pct = f"{self.level:.0%}"
        ci = f"{pct} CI {self.low:+.3f} to {self.high:+.3f}"
        head = (f"effective robustness of {self.a} minus {self.b} (baseline {self.baseline}): "
                f"{self.diff:+.3f} F1 ({ci}).")
        if self.excludes_zero:
            better, worse = (self.a, self.b) if self.diff > 0 else (self.b, self.a)
            return (f"{head} The interval excludes zero: {better} is more effectively robust "
                    f"than {worse}.")
        return (f"{head} The interval includes zero: no difference can be told apart at the "
                f"{pct} level.")


def compare(points: pd.DataFrame, a: str, b: str, group_by: str = "distribution",
            baseline: str = DEFAULT_BASELINE, transform: str = "probit", n_boot: int = N_BOOT,
            seed: int = 0, level: float = 0.95) -> Comparison:
    """Difference of two groups' effective robustness against one baseline, with a bootstrap CI."""
    df = with_groups(points, group_by)
    known = group_order(df["group"].unique())
    for name in (a, b):
        if name not in known:
            raise ValueError(f"no group {name!r} when grouping by {group_by}; groups: {', '.join(known) or 'none'}")
    if a == b:
        raise ValueError(f"compare two different groups, not {a!r} with itself")
    base = baseline_points(points, df, baseline)
    if base is None:
        raise ValueError(f"no group or distribution named {baseline!r} to use as the baseline; "
                         f"groups: {', '.join(known)}")
    ga, gb = (df[df["group"] == g] for g in (a, b))
    diff, lo, hi = effective_robustness_diff_ci(
        ga["id_f1"], ga["ood_f1"], gb["id_f1"], gb["ood_f1"], base[0], base[1], transform,
        n_boot, seed, level, a_is_baseline=base[2] and a == baseline,
        b_is_baseline=base[2] and b == baseline)
    return Comparison(a, b, baseline, diff, lo, hi, level, len(ga), len(gb))


def epoch_residuals(points: pd.DataFrame, baseline_trend: Trend) -> pd.DataFrame:
    """Per architecture and fine-tuning epoch: mean OOD minus the baseline trend's prediction
    (F1 units) over runs, and how many points each mean holds (the paper's Figure 3)."""
    rows = points.dropna(subset=["id_f1", "ood_f1"]).copy()
    rows["residual"] = effective_robustness(rows["id_f1"], rows["ood_f1"], baseline_trend)
    out = (rows.groupby(["arch", "epoch"], as_index=False)
           .agg(residual=("residual", "mean"), n=("residual", "size")))
    return out.sort_values(["arch", "epoch"]).reset_index(drop=True)


def _num(x) -> float | None:
    if x is None or not math.isfinite(float(x)):
        return None
    v = round(float(x), JSON_DIGITS)
    return 0.0 if v == 0 else v  # no "-0.0": the bytes must not depend on rounding's sign


def to_json(analysis: Analysis, **context) -> str:
    """Each group's trend and effective robustness as stable JSON: sorted keys, floats rounded
    to 6 digits, no timestamps, so the same data give the same bytes."""
    groups = {}
    for g, r in analysis.groups.items():
        t = r.trend
        groups[g] = {
            "n": r.n, "runs": r.runs,
            "slope": _num(t.slope) if t else None,
            "intercept": _num(t.intercept) if t else None,
            "r2": _num(t.r2) if t else None,
            "is_baseline": g == analysis.baseline,
            "effective_robustness": None if r.er is None else {
                "mean": _num(r.er[0]), "low": _num(r.er[1]), "high": _num(r.er[2]),
                # Against itself the baseline is ~0 by construction; a verdict would mislead.
                "excludes_zero": None if g == analysis.baseline else bool(r.er[1] > 0 or r.er[2] < 0)},
        }
    doc = {"group_by": analysis.group_by, "transform": analysis.transform,
           "baseline": analysis.baseline, "n_boot": analysis.n_boot, "seed": analysis.seed,
           "level": analysis.level, "groups": groups, "notes": list(analysis.notes),
           **{k: (group_label(v) if isinstance(v, float) else v) for k, v in context.items()}}
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
