"""The tables analysis commands print. Each fits 80 columns: numbers and verdict words never
wrap or get cut (they are short and `no_wrap`); only group names fold when they must."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from divrob.cli.common import console

_VERDICT_STYLE = {"above": "green", "below": "red", "spans 0": "yellow", "too few runs": "dim",
                  "baseline": "dim"}
SUMMARY_ROWS = 40  # a results table shows at most this many runs; the rest are summarised


def _fmt(x) -> str:
    return "-" if x is None or x != x else f"{x:.3f}"


def _signed(x) -> str:
    return "-" if x is None or x != x else f"{x:+.3f}"


def _name_column(table: Table, header: str) -> None:
    table.add_column(header, overflow="fold", ratio=1, min_width=8)


def _number_column(table: Table, header: str, **kw) -> None:
    table.add_column(header, no_wrap=True, justify="right", **kw)


def print_summary(points, limit: int = SUMMARY_ROWS) -> None:
    """The results table of a points frame: per run its last epoch's scores, or summarised per
    distribution and architecture over `limit` runs (a table of 100,000 rows helps nobody:
    `--format csv` gives every row)."""
    from divrob.analysis import ID_COL, OOD_COL
    from divrob.analysis.report import metric_words, run_summary

    runs = run_summary(points, (ID_COL, OOD_COL))
    ood = ", ".join(map(str, points["ood"].unique())) if "ood" in points.columns else "test"
    label = {"metric": metric_words(points), "ood": ood}
    if len(runs) <= limit:
        rows = list(runs[["distribution", "arch", "seed", "run_id", "epoch", ID_COL, OOD_COL]]
                    .itertuples(index=False, name=None))
        print_results_table("runs", [(d, a, s, r, None, e, i, o) for d, a, s, r, e, i, o in rows], len(runs),
                            **label)
        return
    agg = (runs.groupby(["distribution", "arch"], as_index=False, sort=True, observed=True)
           .agg(runs=("run_id", "size"), epochs=("epoch", "mean"), id_score=(ID_COL, "mean"),
                ood_score=(OOD_COL, "mean")))
    print_results_table("grouped", list(agg.itertuples(index=False, name=None)), len(runs), **label)


def print_results_table(kind: str, rows: list[tuple], n_runs: int, limit: int = SUMMARY_ROWS, *,
                        metric: str = "macro-F1", ood: str = "test") -> None:
    """Rows of `store.queries.last_epoch_rows`: per run (kind "runs") or per distribution and
    architecture ("grouped"); `metric` names the scores, `ood` the OOD split they come from."""
    heads = ("ID", f"OOD {ood}" if len(ood) <= 12 else "OOD")
    if kind == "runs":
        table = Table(title=f"results: {escape(metric)} at the last fine-tuning epoch (OOD split: {escape(ood)})")
        _name_column(table, "distribution")
        table.add_column("arch", no_wrap=True)
        _number_column(table, "seed")
        table.add_column("run", no_wrap=True)
        for h in ("epochs", *heads):
            _number_column(table, escape(h))
        for dist, arch, seed, run_id, _state, epoch, id_f1, ood_f1 in rows:
            table.add_row(escape(str(dist)), escape(str(arch)), str(seed), str(run_id)[:8], str(epoch),
                          _fmt(id_f1), _fmt(ood_f1))
        console.print(table)
        return
    table = Table(title=f"results: {n_runs} runs, mean {escape(metric)} at their last fine-tuning epoch, "
                        f"OOD split {escape(ood)} (every row: --format csv)")
    _name_column(table, "distribution")
    table.add_column("arch", no_wrap=True)
    for h in ("runs", "epochs", *heads):
        _number_column(table, escape(h))
    for dist, arch, runs, epochs, id_f1, ood_f1 in rows[:limit]:
        table.add_row(escape(str(dist)), escape(str(arch)), str(runs), f"{epochs:.1f}", _fmt(id_f1), _fmt(ood_f1))
    if len(rows) > limit:
        table.caption = f"… and {len(rows) - limit} more (distribution, arch) pairs"
    console.print(table)


def print_trends(analysis) -> None:
    table = Table(title=f"linear trends (OOD on ID, {analysis.transform} scale), by {analysis.group_by}")
    _name_column(table, "group")
    for h in ("slope", "intercept", "R²", "points", "runs"):
        _number_column(table, h)
    for name, r in analysis.groups.items():
        t = r.trend
        table.add_row(escape(name), _fmt(t and t.slope), _fmt(t and t.intercept), _fmt(t and t.r2),
                      str(r.n), str(r.runs))
    console.print(table)


def print_robustness(analysis) -> None:
    """Groups ranked by mean effective robustness, with the CI and what it says."""
    if analysis.baseline is None:
        return
    pct = f"{analysis.level:.0%}"
    base = analysis.baseline_info
    kind = f" ({base.kind})" if base is not None and base.kind != "group" else ""
    table = Table(title=f"effective robustness vs {escape(analysis.baseline)}{kind}: OOD {escape(analysis.metric)} "
                        f"above its trend; {pct} CI from {analysis.n_boot} resamples of {analysis.unit}")
    _number_column(table, "#")
    _name_column(table, "group")
    _number_column(table, "ER")
    _number_column(table, f"{pct} CI")
    table.add_column("verdict", no_wrap=True, min_width=12)
    _number_column(table, "runs")
    for i, r in enumerate(analysis.ranked(), 1):
        mean, lo, hi = r.er
        word = r.verdict or ""
        table.add_row(str(i), escape(r.group), _signed(mean), f"{_signed(lo)}…{_signed(hi)}",
                      f"[{_VERDICT_STYLE.get(word, '')}]{word}[/]" if word else "", str(r.runs))
    console.print(table)


def print_residual_summary(view) -> None:
    pct = f"{view.level:.0%}"
    table = Table(title=f"mean residual per architecture; {pct} CI from {view.n_boot} resamples of {view.unit}")
    table.add_column("arch", overflow="fold", ratio=1, min_width=8)
    for h in ("runs", "mean", f"{pct} CI", "min", "max"):
        _number_column(table, h)
    for r in view.summary.itertuples():
        table.add_row(escape(str(r.arch)), str(r.runs), _signed(r.mean), f"{_signed(r.low)}…{_signed(r.high)}",
                      _signed(r.min), _signed(r.max))
    console.print(table)


def print_notes(notes) -> None:
    for note in notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
