"""A study's answer in numbers: per group its trend, band and effective robustness against a
baseline; the difference between two groups; residuals per fine-tuning epoch.

Every interval resamples whole runs within each group by default (`bootstrap`); words such as
"above" or "more effectively robust" appear only when the interval supports them and each group
holds at least `MIN_RUNS` runs. Pure functions of a points frame (`report.study_points`); they
raise ValueError for bad arguments, and the CLI turns those into DivrobError.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from divrob.analysis import BOOTSTRAP_UNITS, ID_COL, N_BOOT, OOD_COL
from divrob.analysis.bootstrap import Sample, bootstrap_groups, percentile_interval
from divrob.analysis.report import group_label, group_order, metric_words, with_groups
from divrob.analysis.transforms import CLIP_EPS, clipped
from divrob.analysis.trends import Trend, band_of_lines, effective_robustness, fit_scaled, fit_trend

DEFAULT_BASELINE = "scratch"
RESIDUALS_OF = "imagenet-full"  # the paper's Figure 3 shows the ImageNet-pretrained models
MIN_RUNS = 3  # below this many runs in a group (or its baseline) no verdict is given
BAND_GRID = 50
JSON_DIGITS = 6

VERDICTS = ("above", "below", "spans 0", "too few runs", "baseline")
"""What the effective-robustness interval of a group says, in the words tables print."""


@dataclass(frozen=True)
class Baseline:
    """What effective robustness is measured against."""

    name: str
    kind: str  # "group", "distribution", "reference line" or "reference points"
    trend: Trend
    sample: Sample | None  # None: a reference line, which is not resampled
    runs: int | None  # independent units behind the fit; None for a reference line
    id_range: tuple[float, float] | None  # ID values the fit saw; None when not known

    @property
    def is_group(self) -> bool:
        return self.kind in ("group", "reference points")


@dataclass(frozen=True)
class GroupResult:
    group: str
    n: int  # points (fine-tuning epochs with both metrics)
    runs: int
    trend: Trend | None  # None: fewer than 2 points or a single ID value
    band: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # (ID grid, low, high) in F1 units
    er: tuple[float, float, float] | None  # mean effective robustness, CI low, CI high
    verdict: str | None = None  # one of VERDICTS when `er` is set
    clipped: int = 0  # metric values clipped before the transform
    id_range: tuple[float, float] | None = None
    outside_baseline: int = 0  # points whose ID lies outside the baseline's fitted ID range
    external: bool = False  # reference points, not runs of the study
    approximate: bool = False  # the bootstrap took a large-study shortcut (see `bootstrap`)


@dataclass
class Analysis:
    df: pd.DataFrame  # the grouped rows (`group` column), reference points included
    group_by: str
    transform: str
    baseline: str | None  # None: no baseline in the data, so no effective robustness
    baseline_trend: Trend | None
    groups: dict[str, GroupResult] = field(default_factory=dict)
    n_boot: int = N_BOOT
    seed: int = 0
    level: float = 0.95
    notes: list[str] = field(default_factory=list)
    unit: str = "runs"
    baseline_info: Baseline | None = None
    references: dict[str, Trend] = field(default_factory=dict)  # external lines, drawn too
    metric: str = "macro-F1"  # what the scores measure (report.metric_words), for titles

    @property
    def trends(self) -> dict[str, Trend]:
        return {g: r.trend for g, r in self.groups.items() if r.trend is not None}

    @property
    def bands(self) -> dict[str, tuple]:
        return {g: r.band for g, r in self.groups.items() if r.band is not None}

    def ranked(self) -> list[GroupResult]:
        """Groups with an effective robustness, most robust first."""
        return sorted((r for r in self.groups.values() if r.er is not None), key=lambda r: -r.er[0])

    def flags(self) -> list[str]:
        """One word per kind of caveat in `notes`, for places with room for a word only."""
        out = []
        if any(r.clipped for r in self.groups.values()):
            out.append("clipped")
        if any(r.outside_baseline for r in self.groups.values()):
            out.append("extrapolated")
        if self.unit == "points":
            out.append("point bootstrap")
        return out


# ---- the baseline -----------------------------------------------------------------------------

@dataclass(frozen=True)
class GroupedRows:
    """The grouped rows as arrays, with each group's row positions: groups are sliced by index
    (once), never by comparing every row's label again."""

    df: pd.DataFrame
    index: dict[str, np.ndarray]
    x: np.ndarray
    y: np.ndarray
    run: np.ndarray  # run codes (each reference point its own)
    external: np.ndarray

    @classmethod
    def of(cls, df: pd.DataFrame) -> "GroupedRows":
        index = {str(g): np.asarray(i) for g, i in df.groupby("group", sort=False).indices.items()} if len(df) else {}
        run = pd.factorize(df["run_id"])[0] if "run_id" in df.columns else np.arange(len(df))
        external = df["external"].to_numpy(bool) if "external" in df.columns else np.zeros(len(df), bool)
        return cls(df, index, df[ID_COL].to_numpy(float), df[OOD_COL].to_numpy(float), run, external)

    @property
    def names(self) -> list[str]:
        return group_order(self.index)

    def sample(self, g: str, transform: str, unit: str) -> Sample:
        i = self.index[g]
        check_unit(unit)
        return Sample.of(self.x[i], self.y[i], transform, self.run[i] if unit == "runs" else None)

    def runs(self, g: str) -> int:
        return int(np.unique(self.run[self.index[g]]).size)


def resolve_baseline(points: pd.DataFrame, grouped: "pd.DataFrame | GroupedRows", name: str, transform: str,
                     unit: str, references: dict[str, Trend] | None = None) -> Baseline | None:
    """The baseline called `name`: a reference line, else the group of that name (reference
    points included), else the distribution of that name (so `--group-by total` can still be read
    against scratch, which sweeps nothing); None if there is none. Raises ValueError when it
    exists but no line can be fitted."""
    if references and name in references:
        return Baseline(name, "reference line", references[name], None, None, None)
    g = grouped if isinstance(grouped, GroupedRows) else GroupedRows.of(grouped)
    if name in g.index:
        i = g.index[name]
        kind = "reference points" if g.external[i].any() else "group"
        x, y = g.x[i], g.y[i]
        sample, runs = g.sample(name, transform, unit), g.runs(name)
    elif "distribution" in points.columns:
        rows = points[(points["distribution"].astype(str) == name).to_numpy()].dropna(subset=[ID_COL, OOD_COL])
        if len(rows) == 0:
            return None
        kind = "distribution"
        x, y = rows[ID_COL].to_numpy(float), rows[OOD_COL].to_numpy(float)
        sample, runs = sample_of(rows, transform, unit), count_runs(rows)
    else:
        return None
    trend = fit_trend(x, y, transform, group=name)
    return Baseline(name, kind, trend, sample, runs, (float(x.min()), float(x.max())))


def check_unit(unit: str) -> None:
    if unit not in BOOTSTRAP_UNITS:
        raise ValueError(f"bootstrap unit {unit!r}: choose {' or '.join(BOOTSTRAP_UNITS)}")


def count_runs(rows: pd.DataFrame) -> int:
    return int(rows["run_id"].nunique()) if "run_id" in rows.columns else len(rows)


def sample_of(rows: pd.DataFrame, transform: str, unit: str) -> Sample:
    check_unit(unit)
    units = rows["run_id"].to_numpy() if unit == "runs" and "run_id" in rows.columns else None
    return Sample.of(rows[ID_COL].to_numpy(float), rows[OOD_COL].to_numpy(float), transform, units)


def draw_all(samples: dict[str, Sample], base: Baseline | None, n_boot: int, seed: int) -> dict:
    """Every sample's bootstrap, the baseline resampled once for all (see bootstrap_groups)."""
    if base is None:
        return bootstrap_groups(samples, n_boot, seed)
    if base.sample is None:
        t = base.trend
        return bootstrap_groups(samples, n_boot, seed, baseline=(t.slope, t.intercept, t.transform))
    if base.is_group and base.name in samples:
        return bootstrap_groups(samples, n_boot, seed, baseline_group=base.name)
    # A group's stream is keyed by its name, so a baseline group drawn here (compare A B against
    # it) gets the very lines it gets in `analyse`; a distribution baseline has a key of its own.
    key = base.name if base.is_group else f"baseline:{base.name}"
    return bootstrap_groups(samples, n_boot, seed, baseline=base.sample, baseline_key=key)


def verdict(low: float, high: float, runs: int, baseline_runs: int | None) -> str:
    """What an effective-robustness interval says, in the words of VERDICTS."""
    if runs < MIN_RUNS or (baseline_runs is not None and baseline_runs < MIN_RUNS):
        return "too few runs"
    if low > 0:
        return "above"
    if high < 0:
        return "below"
    return "spans 0"


# ---- a study's trends ---------------------------------------------------------------------

def with_reference_points(df: pd.DataFrame, reference_points: pd.DataFrame | None,
                          references: dict[str, Trend] | None = None) -> pd.DataFrame:
    """The grouped rows plus external points as groups of their own (`external` set, each point
    its own resampling unit: they are distinct models)."""
    if reference_points is None or reference_points.empty:
        return df  # no `external` column: every row is the study's
    clash = (set(reference_points["group"]) & set(df["group"])) | (set(reference_points["group"]) & set(references or ()))
    if clash:
        raise ValueError(f"reference points use group name(s) the study or a reference line already has: "
                         f"{', '.join(sorted(clash))}; rename them in the CSV")
    ext = reference_points.assign(external=True)
    ext["run_id"] = [f"reference:{g}:{i}" for i, g in enumerate(ext["group"])]
    return pd.concat([df.assign(external=False), ext], ignore_index=True, sort=False)


def analyse(points: pd.DataFrame, group_by: str = "distribution", baseline: str | None = DEFAULT_BASELINE,
            transform: str = "probit", n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95,
            baseline_required: bool = False, with_bands: bool = True, unit: str = "runs",
            references: dict[str, Trend] | None = None,
            reference_points: pd.DataFrame | None = None) -> Analysis:
    """Trend, band and effective robustness of every group of `points` by `group_by`.

    Without the baseline in the data, effective robustness is left out with a note, unless
    `baseline_required` (the user named it), which makes it an error.
    """
    references = dict(references or {})
    check_unit(unit)
    df = with_reference_points(with_groups(points, group_by), reference_points, references)
    rows = GroupedRows.of(df)
    out = Analysis(df, group_by, transform, None, None, n_boot=n_boot, seed=seed, level=level,
                   unit=unit, references=references, metric=metric_words(points))
    base = _baseline_or_note(points, rows, baseline, transform, unit, references, baseline_required, out)
    if base is not None:
        out.baseline, out.baseline_trend, out.baseline_info = base.name, base.trend, base
    samples = {g: rows.sample(g, transform, unit) for g in rows.names}
    draws = draw_all(samples, base, n_boot, seed) if (with_bands or base is not None) else {}
    for g in rows.names:
        out.groups[g] = _group_result(g, rows, samples[g], draws.get(g), base, out)
    _add_notes(out)
    return out


def _baseline_or_note(points, rows: GroupedRows, name, transform, unit, references, required, out) -> Baseline | None:
    if not name:
        return None
    try:
        base = resolve_baseline(points, rows, name, transform, unit, references)
    except ValueError as e:
        if required:
            raise
        out.notes.append(f"baseline {name!r}: {e} (effective robustness left out)")
        return None
    if base is None:
        choices = ", ".join(rows.names + sorted(references)) or "none"
        msg = f"no group, distribution or reference named {name!r} to use as the baseline; choose from: {choices}"
        if required:
            raise ValueError(msg)
        out.notes.append(msg + " (effective robustness left out; choose one with --baseline)")
    return base


def _group_result(g: str, rows: GroupedRows, sample: Sample, draws, base: Baseline | None,
                  out: Analysis) -> GroupResult:
    i = rows.index[g]
    x, y = rows.x[i], rows.y[i]
    runs = rows.runs(g)
    trend = band = er = word = None
    try:
        trend = fit_scaled(sample.xt, sample.yt, out.transform, group=g)
    except ValueError as e:
        out.notes.append(str(e))
    if trend is not None and draws is not None:
        grid = np.linspace(x.min(), x.max(), BAND_GRID)
        try:
            band = (grid, *band_of_lines(*draws.lines(), grid, out.transform, out.level, draws.n_units))
        except ValueError as e:
            out.notes.append(f"group {g!r}: {e}")
    if base is not None and draws is not None and draws.er is not None:
        mean = float(np.mean(sample.ood - base.trend.predict_scaled(sample.xt) if base.trend.transform == out.transform
                             else effective_robustness(x, y, base.trend)))
        finite = draws.er[np.isfinite(draws.er)]
        if finite.size:
            lo, hi = percentile_interval(finite, out.level, draws.er_units)
            er = (mean, float(lo), float(hi))
            word = "baseline" if g == base.name else verdict(er[1], er[2], runs, base.runs)
        else:
            out.notes.append(f"group {g!r}: every baseline resample had a single ID value; no interval")
    outside = 0
    if base is not None and base.id_range is not None and g != base.name:
        outside = int(np.count_nonzero((x < base.id_range[0]) | (x > base.id_range[1])))
    n_clipped = clipped(x, out.transform) + clipped(y, out.transform)
    return GroupResult(g, len(i), runs, trend, band, er, word, n_clipped,
                       (float(x.min()), float(x.max())) if len(x) else None, outside,
                       bool(rows.external[i].any()), approximate=bool(draws is not None and draws.approximate))


def _add_notes(a: Analysis) -> None:
    base = a.baseline_info
    clipped_groups = [f"{g} {r.clipped}" for g, r in a.groups.items() if r.clipped]
    if clipped_groups:
        a.notes.append(f"metric values of 0 or 1 were clipped to [{CLIP_EPS:g}, {1 - CLIP_EPS:g}] before "
                       f"the {a.transform} transform, which puts them at an arbitrary place on the axis "
                       f"(values per group: {', '.join(clipped_groups)})")
    outside = [f"{g} {r.outside_baseline} of {r.n}" for g, r in a.groups.items() if r.outside_baseline]
    if outside:
        lo, hi = base.id_range
        a.notes.append(f"points with an ID {a.metric} outside the range the {base.name} trend was fitted on "
                       f"({lo:.3f} to {hi:.3f}) have extrapolated effective robustness (points per "
                       f"group: {', '.join(outside)})")
    shortcut = [g for g, r in a.groups.items() if r.approximate]
    if shortcut:
        a.notes.append(f"groups with many runs ({', '.join(shortcut)}) were bootstrapped with the "
                       f"large-study shortcuts: resampled sums from their normal limit and a "
                       f"second-order expansion of the baseline line")
    if base is not None and base.sample is None:
        a.notes.append(f"baseline {base.name!r} is a reference line: intervals carry this study's "
                       f"uncertainty only, and the ID range it was fitted on is not known to divrob")
    if a.unit == "points":
        a.notes.append("intervals resample single points (--bootstrap points): the epochs of a run "
                       "are correlated, so these intervals are too narrow; the default resamples runs")


# ---- JSON ---------------------------------------------------------------------------------------

def num(x) -> float | None:
    if x is None or not math.isfinite(float(x)):
        return None
    v = round(float(x), JSON_DIGITS)
    return 0.0 if v == 0 else v  # no "-0.0": the bytes must not depend on rounding's sign


def _range(r) -> list | None:
    return None if r is None else [num(r[0]), num(r[1])]


def to_json(analysis: Analysis, **context) -> str:
    """Each group's trend and effective robustness as stable JSON: sorted keys, floats rounded
    to 6 digits, no timestamps, so the same data give the same bytes."""
    groups = {}
    for g, r in analysis.groups.items():
        t = r.trend
        groups[g] = {
            "n": r.n, "runs": r.runs,
            "slope": num(t.slope) if t else None,
            "intercept": num(t.intercept) if t else None,
            "r2": num(t.r2) if t else None,
            "is_baseline": g == analysis.baseline,
            "external": r.external,
            "clipped": r.clipped,
            "id_range": _range(r.id_range),
            "outside_baseline_range": r.outside_baseline,
            "effective_robustness": None if r.er is None else {
                "mean": num(r.er[0]), "low": num(r.er[1]), "high": num(r.er[2]),
                # Against itself the baseline is ~0 by construction; a verdict would mislead.
                "excludes_zero": None if g == analysis.baseline else bool(r.er[1] > 0 or r.er[2] < 0),
                "verdict": r.verdict},
        }
    base = analysis.baseline_info
    doc = {"group_by": analysis.group_by, "transform": analysis.transform, "metric": analysis.metric,
           "baseline": analysis.baseline,
           "baseline_kind": base.kind if base else None,
           "baseline_range": _range(base.id_range) if base else None,
           "bootstrap": {"unit": analysis.unit, "n_boot": analysis.n_boot, "seed": analysis.seed,
                         "level": analysis.level, "min_runs_for_a_verdict": MIN_RUNS},
           "n_boot": analysis.n_boot, "seed": analysis.seed, "level": analysis.level,
           "references": {n: {"slope": num(t.slope), "intercept": num(t.intercept), "transform": t.transform}
                          for n, t in sorted(analysis.references.items())},
           "groups": groups, "notes": list(analysis.notes),
           **{k: (group_label(v) if isinstance(v, float) else v) for k, v in context.items()}}
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
