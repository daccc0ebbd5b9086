"""Analysis: axis transforms, linear trends with bootstrap bands, effective robustness, reports.

The vocabularies shared with the front-ends live here (not in `transforms`, which imports scipy),
so that front-ends can list them without paying for the import at start-up.
"""

TRANSFORMS = ("probit", "logit", "linear")

BOOTSTRAP_UNITS = ("runs", "points")
"""What one bootstrap draw resamples. "runs" (the default) keeps all fine-tuning epochs of a run
together: they are repeated measurements of one model, not independent points. "points" treats
every epoch as independent; it gives intervals that are too narrow and is kept for comparison."""

N_BOOT = 1000
"""Bootstrap resamples, in the CLI and the TUI alike: with per-run sums a resample costs one row
of a matrix product, so interactive views need no cheaper setting."""

ID_COL, OOD_COL = "id_score", "ood_score"
"""The columns a trend is fitted to: the downstream task's own metric (WILDS's eval() metric,
DomainNet's accuracy, a folder task's chosen metric; macro-F1 for iWildCam) on the ID test split
and on the chosen OOD split."""

ALL_OOD = "all"
"""`--ood all`: every OOD split of a study, one row per (run, epoch, OOD split), the `ood`
column naming the split (what `--facet ood` draws one panel each of)."""
