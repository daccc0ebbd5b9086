"""A study's trends at a glance: one line per distribution, fitted to every fine-tuning epoch,
read and fitted without pandas and without resampling.

This is what a screen draws first on a big study (100,000 runs x 12 epochs: about half a second
here, against two for the full points table): the same points, groups, order and least-squares
fit as `robustness.analyse(points, "distribution")` gives, so the lines do not move when the full
analysis (bands, effective robustness) replaces them. The points come in no set order within a
group, so the fits may differ from the analysis's in the last bits (1e-15): a glance is drawn,
its numbers are never printed. Only the default reading is covered: group
by distribution, the study's default OOD split, no filter.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from divrob.analysis.groups import group_order
from divrob.analysis.studies import check_study, choose_ood, task_facts
from divrob.preload import preload
from divrob.store.db import read_connection
from divrob.store.queries import distribution_scores
from divrob.workspace import Workspace

if TYPE_CHECKING:
    from divrob.analysis.trends import Trend


@dataclass(frozen=True)
class Glance:
    study: str
    ood: str  # the OOD split read
    metric: str  # what the scores measure, in words
    transform: str
    points: dict[str, tuple[np.ndarray, np.ndarray]]  # per distribution: every (ID, OOD) point
    trends: dict[str, Trend]  # per distribution with a line (at least 2 distinct ID values)

    @property
    def n(self) -> int:
        return sum(len(x) for x, _ in self.points.values())


def glance(ws: Workspace, study: str, transform: str = "probit") -> Glance:
    """Every distribution's points and trend in `study` (see the module docstring)."""
    with read_connection(ws.db_path) as con:
        return glance_of(con, ws, study, transform)


def glance_of(con, ws: Workspace, study: str, transform: str = "probit") -> Glance:
    """`glance` on an open read connection (a caller with more to read shares one)."""
    fitting = prepare()
    check_study(con, ws, study)
    split = choose_ood(con, study, None)
    facts = task_facts(con, study)
    names, rows = distribution_scores(con, study, split, facts.id_splits)
    fitting.join()
    from divrob.analysis.transforms import transform as to_scale
    from divrob.analysis.trends import fit_scaled

    ok = np.isfinite(rows["id_score"]) & np.isfinite(rows["ood_score"])
    x, y, g = rows["id_score"][ok], rows["ood_score"][ok], rows["group"][ok]  # sorted by group
    xt, yt = to_scale(x, transform), to_scale(y, transform)
    bounds = np.searchsorted(g, np.arange(len(names) + 1))
    spans = {name: slice(bounds[i], bounds[i + 1]) for i, name in enumerate(names) if bounds[i + 1] > bounds[i]}
    points, trends = {}, {}
    for name in group_order(spans):
        at = spans[name]
        points[name] = (x[at], y[at])
        try:
            trends[name] = fit_scaled(xt[at], yt[at], transform, group=name)
        except ValueError:
            continue  # one point, or one ID value: drawn without a line, as the full analysis does
    return Glance(study, split, facts.metric, transform, points, trends)


def prepare() -> threading.Thread:
    """Start importing what `glance` needs besides the store (the fitting code with scipy, the
    task registry) in the background (divrob.preload); a caller with other reading to do first
    may call it earlier."""
    return preload("divrob.analysis.trends", "divrob.downstream")
