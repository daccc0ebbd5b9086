"""Residuals from a trend per fine-tuning epoch and architecture: the paper's Figure 3.

The paper measures the residuals of ImageNet-pretrained models from Miller et al.'s external
trend, so by default the points shown are the `imagenet-full` group's, read against the one
`--reference` line given (else scratch). A group read against a trend fitted to its own points
is circular; that is allowed (studies without imagenet-full) but said in a note.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from divrob.analysis import ID_COL, N_BOOT, OOD_COL
from divrob.analysis.bootstrap import percentile_interval
from divrob.analysis.report import group_order, metric_words, with_groups
from divrob.analysis.robustness import (
    DEFAULT_BASELINE,
    MIN_RUNS,
    RESIDUALS_OF,
    Baseline,
    count_runs,
    draw_all,
    num,
    resolve_baseline,
    sample_of,
    with_reference_points,
)
from divrob.analysis.trends import Trend, effective_robustness


@dataclass
class ResidualView:
    of: str
    baseline: Baseline
    circular: bool
    per_epoch: pd.DataFrame  # arch, epoch, residual (mean over runs), n
    summary: pd.DataFrame  # arch, runs, points, mean, low, high, min, max
    unit: str
    n_boot: int
    level: float
    notes: list[str] = field(default_factory=list)
    metric: str = "macro-F1"  # what the residuals are in (the downstream task's metric)

    def to_json(self, **context) -> str:
        doc = {"of": self.of, "baseline": self.baseline.name, "baseline_kind": self.baseline.kind,
               "circular": self.circular, "level": self.level,
               "bootstrap": {"unit": self.unit, "n_boot": self.n_boot},
               "archs": [{k: (num(v) if isinstance(v, float) else v) for k, v in row.items()}
                         for row in self.summary.to_dict(orient="records")],
               "epochs": [{"arch": r["arch"], "epoch": int(r["epoch"]), "residual": num(r["residual"]),
                           "n": int(r["n"])} for r in self.per_epoch.to_dict(orient="records")],
               "notes": list(self.notes), **context}
        return json.dumps(doc, sort_keys=True, indent=2) + "\n"


def epoch_residuals(points: pd.DataFrame, baseline_trend: Trend) -> pd.DataFrame:
    """Per architecture and fine-tuning epoch: mean OOD minus the baseline trend's prediction
    (metric units) over runs, and how many points each mean holds (the paper's Figure 3)."""
    rows = points.dropna(subset=[ID_COL, OOD_COL]).copy()
    rows["residual"] = effective_robustness(rows[ID_COL], rows[OOD_COL], baseline_trend)
    out = (rows.groupby(["arch", "epoch"], as_index=False)
           .agg(residual=("residual", "mean"), n=("residual", "size")))
    return out.sort_values(["arch", "epoch"]).reset_index(drop=True)


def residual_summary(rows: pd.DataFrame, base: Baseline, transform: str, n_boot: int = N_BOOT,
                     seed: int = 0, level: float = 0.95, unit: str = "runs",
                     circular: bool = False) -> pd.DataFrame:
    """Per architecture: runs, points, mean residual from the baseline trend with a bootstrap CI
    that resamples the architecture's runs (and refits the baseline from its own resampled
    runs), and the lowest and highest per-epoch mean.

    `circular`: the rows are the baseline's own points. Resampling them twice independently would
    count them twice, so the line is then held fixed (the interval is narrower than it should be,
    and `residuals_of` says so).
    """
    rows = rows.dropna(subset=[ID_COL, OOD_COL, "arch"])
    by_arch = {str(a): sub for a, sub in rows.groupby("arch", sort=True)}
    samples = {a: sample_of(sub, transform, unit) for a, sub in by_arch.items()}
    held = base if base.sample is not None and not circular else Baseline(
        base.name, "reference line", base.trend, None, None, None)
    draws = draw_all(samples, held, n_boot, seed)
    per_epoch = epoch_residuals(rows, base.trend)
    out = []
    for a, sub in by_arch.items():
        mean = float(np.mean(effective_robustness(sub[ID_COL], sub[OOD_COL], base.trend)))
        er = draws[a].er[np.isfinite(draws[a].er)]
        lo, hi = percentile_interval(er, level, draws[a].er_units) if er.size else (np.nan, np.nan)
        ep = per_epoch[per_epoch["arch"] == a]["residual"]
        out.append({"arch": a, "runs": count_runs(sub), "points": len(sub), "mean": mean, "low": float(lo),
                    "high": float(hi), "min": float(ep.min()), "max": float(ep.max())})
    return pd.DataFrame(out, columns=["arch", "runs", "points", "mean", "low", "high", "min", "max"])


def residuals_of(points: pd.DataFrame, *, of: str | None = None, baseline: str | None = None,
                 group_by: str = "distribution", transform: str = "probit", unit: str = "runs",
                 n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95,
                 references: dict[str, Trend] | None = None,
                 reference_points: pd.DataFrame | None = None) -> ResidualView:
    """The residual view with the defaults of the module docstring; ValueError for names that
    are not there."""
    references = dict(references or {})
    df = with_reference_points(with_groups(points, group_by), reference_points, references)
    known = group_order(df["group"].unique())
    if baseline is None:
        baseline = next(iter(references)) if len(references) == 1 else DEFAULT_BASELINE
    base = resolve_baseline(points, df, baseline, transform, unit, references)
    if base is None:
        raise ValueError(f"no group, distribution or reference named {baseline!r} to measure residuals "
                         f"from; choose with --baseline from: {', '.join(known + sorted(references)) or 'none'}")
    shown = of or (RESIDUALS_OF if RESIDUALS_OF in known else base.name)
    rows = df[df["group"] == shown]
    if rows.empty:
        raise ValueError(f"no group {shown!r} when grouping by {group_by}; groups: {', '.join(known) or 'none'}")
    circular = shown == base.name and base.sample is not None
    notes = []
    if circular:
        notes.append(f"the residuals of {shown} are measured from a trend fitted to these same points, "
                     f"so they average zero by construction and their intervals hold the line fixed; "
                     f"the paper's Figure 3 reads them against an external trend: give it with "
                     f"--reference NAME=SLOPE,INTERCEPT[,TRANSFORM]")
    if base.sample is None:
        notes.append(f"{base.name!r} is a reference line: intervals carry this study's uncertainty only")
    summary = residual_summary(rows, base, transform, n_boot, seed, level, unit, circular)
    few = summary[summary["runs"] < MIN_RUNS]["arch"].tolist()
    if few:
        notes.append(f"fewer than {MIN_RUNS} runs for {', '.join(few)}: their intervals say little")
    if unit == "points":
        notes.append("intervals resample single points (--bootstrap points): too narrow when the "
                     "epochs of a run are correlated; the default resamples runs")
    return ResidualView(shown, base, circular, epoch_residuals(rows, base.trend), summary, unit,
                        n_boot, level, notes, metric_words(points))
