"""`divrob compare A B`: the difference of two groups' effective robustness against one
baseline, with a run-level bootstrap interval, and what it supports (`Comparison.verdict`)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from divrob.analysis import N_BOOT
from divrob.analysis.bootstrap import percentile_interval
from divrob.analysis.report import metric_words, with_groups
from divrob.analysis.robustness import (
    DEFAULT_BASELINE,
    MIN_RUNS,
    GroupedRows,
    check_unit,
    draw_all,
    num,
    resolve_baseline,
    with_reference_points,
)
from divrob.analysis.trends import Trend, effective_robustness


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    baseline: str
    diff: float  # mean effective robustness of a minus that of b (metric units)
    low: float
    high: float
    level: float
    n_a: int
    n_b: int
    runs_a: int = 0
    runs_b: int = 0
    runs_baseline: int | None = None  # None: a reference line
    unit: str = "runs"
    n_boot: int = N_BOOT
    metric: str = "macro-F1"  # the units of diff, low and high

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    @property
    def too_few_runs(self) -> bool:
        return min(self.runs_a, self.runs_b, self.runs_baseline or MIN_RUNS) < MIN_RUNS

    @property
    def verdict(self) -> str:
        """"a", "b" (which is more effectively robust), "no difference" or "too few runs"."""
        if self.too_few_runs:
            return "too few runs"
        if not self.excludes_zero:
            return "no difference"
        return "a" if self.diff > 0 else "b"

    def sentence(self) -> str:
        pct = f"{self.level:.0%}"
        ci = f"{pct} CI {self.low:+.3f} to {self.high:+.3f}, {self.n_boot} resamples of {self.unit}"
        head = (f"effective robustness of {self.a} minus {self.b} (baseline {self.baseline}): "
                f"{self.diff:+.3f} {self.metric} ({ci}).")
        if self.verdict == "too few runs":
            base = "" if self.runs_baseline is None else f", {self.baseline} {self.runs_baseline}"
            return (f"{head} Too few runs to tell: {self.a} has {self.runs_a}, {self.b} "
                    f"{self.runs_b}{base}; at least {MIN_RUNS} runs per group are needed.")
        if self.verdict == "no difference":
            return (f"{head} The interval includes zero: no difference can be told apart at the "
                    f"{pct} level.")
        better, worse = (self.a, self.b) if self.verdict == "a" else (self.b, self.a)
        return f"{head} The interval excludes zero: {better} is more effectively robust than {worse}."


def compare(points: pd.DataFrame, a: str, b: str, group_by: str = "distribution",
            baseline: str = DEFAULT_BASELINE, transform: str = "probit", n_boot: int = N_BOOT,
            seed: int = 0, level: float = 0.95, unit: str = "runs",
            references: dict[str, Trend] | None = None,
            reference_points: pd.DataFrame | None = None) -> Comparison:
    """Difference of two groups' effective robustness against one baseline, with a bootstrap CI."""
    references = dict(references or {})
    check_unit(unit)
    df = with_reference_points(with_groups(points, group_by), reference_points, references)
    rows = GroupedRows.of(df)
    known = rows.names
    for name in (a, b):
        if name not in known:
            raise ValueError(f"no group {name!r} when grouping by {group_by}; groups: {', '.join(known) or 'none'}")
    if a == b:
        raise ValueError(f"compare two different groups, not {a!r} with itself")
    base = resolve_baseline(points, rows, baseline, transform, unit, references)
    if base is None:
        raise ValueError(f"no group, distribution or reference named {baseline!r} to use as the "
                         f"baseline; choose from: {', '.join(known + sorted(references))}")
    samples = {g: rows.sample(g, transform, unit) for g in (a, b)}
    draws = draw_all(samples, base, n_boot, seed)
    means = {g: float(np.mean(effective_robustness(rows.x[rows.index[g]], rows.y[rows.index[g]], base.trend)))
             for g in (a, b)}
    diff = draws[a].er - draws[b].er
    diff = diff[np.isfinite(diff)]
    if diff.size == 0:
        raise ValueError("every baseline resample had a single ID value; no interval can be drawn")
    lo, hi = percentile_interval(diff, level, min(draws[a].er_units, draws[b].er_units))
    return Comparison(a, b, baseline, means[a] - means[b], float(lo), float(hi), level, len(rows.index[a]),
                      len(rows.index[b]), rows.runs(a), rows.runs(b), base.runs, unit, n_boot, metric_words(points))


def comparison_json(c: Comparison, **context) -> str:
    doc = {"a": c.a, "b": c.b, "baseline": c.baseline, "difference": num(c.diff), "low": num(c.low),
           "high": num(c.high), "level": c.level, "excludes_zero": c.excludes_zero,
           "verdict": c.verdict, "n_a": c.n_a, "n_b": c.n_b, "runs_a": c.runs_a, "runs_b": c.runs_b,
           "runs_baseline": c.runs_baseline, "min_runs_for_a_verdict": MIN_RUNS,
           "bootstrap": {"unit": c.unit, "n_boot": c.n_boot}, "n_boot": c.n_boot, **context}
    return json.dumps(doc, sort_keys=True, indent=2) + "\n"
