"""The TUI's one door to the data layer: every screen reads and acts through `DivrobAdapter`.

Its methods are plain blocking calls made from Textual worker threads, never from the event
loop. Each store read opens a short read-only connection (through the core functions), so a
running manager can keep writing. The heavy stack (pandas, duckdb, numpy, the analysis) is
imported inside the methods: importing this module costs nothing at startup, and torch is
never imported at all.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from divrob.analysis import N_BOOT, TRANSFORMS
from divrob.errors import DivrobError
from divrob.progress import SILENT, Reporter

TABLE_FORMATS = (".csv", ".parquet")
FIGURE_FORMATS = (".png", ".svg", ".pdf")


@dataclass(frozen=True)
class RecipeFile:
    group: str  # "workspace" or "bundled"
    label: str  # what the list shows: a path relative to its group's root
    path: Path


@dataclass
class RecipeView:
    """A recipe as the Recipes screen shows it: its study and distributions, or its error."""

    file: Path
    study: str = ""
    summary: str = ""
    rows: list[dict[str, str]] = field(default_factory=list)
    error_field: str | None = None  # set when the recipe does not validate
    error_reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.error_reason is None


@dataclass
class PlanView:
    recipe: Path
    study: str
    rows: list[dict[str, Any]]

    @property
    def generate_first(self) -> bool:
        """The recipe's sources are generated first; its runs are planned after that."""
        return any(r["kind"] == "generate" for r in self.rows)

    def counts(self) -> dict[str, int]:
        """Runs by what the next launch does with them (manifests are built while planning)."""
        out = {"to run": 0, "finished": 0, "partly done": 0, "queued/running": 0, "other": 0}
        for r in self.rows:
            if r["kind"] in ("manifest", "generate"):
                continue
            s = r["state"]
            if s.startswith("finished"):
                out["finished"] += 1
            elif s.startswith("partly"):
                out["partly done"] += 1
            elif s.startswith(("queued", "running")):
                out["queued/running"] += 1
            elif s.startswith("to run"):
                out["to run"] += 1
            else:
                out["other"] += 1
        return out


class _ReadWriteLock:
    """Many readers or one writer. DuckDB refuses a read-write connection in a process that has a
    read-only one open on the same file (and the reverse), and the TUI's workers run at once:
    store reads share this lock, the few writes (cancel, launch, retry) take it alone."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writer)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writer and not self._readers)
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


def _stamp(con) -> tuple:
    epochs = con.execute("SELECT count(*) FROM epochs").fetchone()[0]
    runs = con.execute("SELECT count(*), max(updated) FROM runs").fetchone()
    jobs = con.execute("SELECT count(*), max(updated) FROM jobs").fetchone()
    return (epochs, *runs, *jobs)


def _reads(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kw):
        with self._store.reading():
            return method(self, *args, **kw)
    return wrapper


def _writes(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kw):
        with self._store.writing():
            return method(self, *args, **kw)
    return wrapper


class DivrobAdapter:
    """Workspace access for the TUI. `clock` is injectable so tests render fixed times."""

    def __init__(self, workspace: str | Path | None = None, clock: Callable[[], float] = time.time,
                 include_bundled: bool = True):
        self._workspace_arg = workspace
        self.include_bundled = include_bundled
        self._ws = None
        self.clock = clock
        self._store = _ReadWriteLock()
        self._open_lock = threading.Lock()
        self._early_glance = None  # a Future of first_glance, begun before the screens exist

    # ---- the workspace ---------------------------------------------------------------------

    @property
    def ws(self):
        with self._open_lock:  # several workers may ask first
            if self._ws is None:
                from divrob.workspace import open_workspace

                self._ws = open_workspace(self._workspace_arg)
        return self._ws

    @property
    def name(self) -> str:
        return self.ws.root.name

    @_reads
    def store_stamp(self) -> tuple:
        """Something that changes whenever results or jobs change: live views reload on it."""
        from divrob.store.db import read_connection

        with read_connection(self.ws.db_path) as con:
            return _stamp(con)

    # ---- recipes ----------------------------------------------------------------------------

    def recipe_files(self) -> list[RecipeFile]:
        """The workspace's recipes (its root and recipes/), then the bundled ones."""
        out: list[RecipeFile] = []
        root = self.ws.root
        mine = sorted(root.glob("*.toml")) + sorted((root / "recipes").rglob("*.toml"))
        for p in mine:
            if p.name == "divrob.toml":  # the workspace config, not a recipe
                continue
            rel = p.relative_to(root)
            out.append(RecipeFile("workspace", str(rel.with_suffix("")), p))
        if not self.include_bundled:
            return out
        try:
            from divrob.bundled import bundled

            shipped = bundled("recipes")
        except DivrobError:
            shipped = None  # an installed wheel without the checkout: no bundled recipes
        if shipped is not None:
            for p in sorted(shipped.rglob("*.toml")):
                rel = p.relative_to(shipped)
                group = "bundled" + (f": {rel.parent}" if str(rel.parent) != "." else "")
                out.append(RecipeFile(group, p.stem, p))
        return out

    def open_recipe(self, path: Path) -> RecipeView:
        """Load and validate; a validation error comes back in the view, not as an exception."""
        from divrob.errors import RecipeError
        from divrob.recipes.load import load_recipe

        try:
            r = load_recipe(path)
        except RecipeError as e:
            return RecipeView(Path(path), error_field=e.field or None, error_reason=e.reason)
        s = r.study
        runs = len(r.distributions) * len(s.archs) * len(s.seeds)
        summary = (f"downstream {s.downstream_label} · archs {', '.join(s.archs)} · seeds "
                   f"{', '.join(map(str, s.seeds))} · {len(r.distributions)} distributions, {runs} runs")
        rows = [{"distribution": ed.distribution.name, **ed.distribution.summary(),
                 "sweep": ", ".join(f"{k}={v}" for k, v in ed.sweep.items()) or "-"}
                for ed in r.distributions]
        return RecipeView(Path(path), s.name, summary, rows)

    def class_counts(self, path: Path, distribution: str, reporter: Reporter = SILENT):
        """Build (or reuse) one distribution's manifest: its ManifestInfo, class counts included."""
        from divrob.recipes.load import load_recipe
        from divrob.recipes.manifest import build_manifest

        dist = load_recipe(path).distribution(distribution).distribution
        if dist.is_scratch:
            raise DivrobError(f"distribution {distribution!r} has no pre-training, so it has no class counts")
        return build_manifest(self.ws, dist, reporter)

    def build_recipe(self, path: Path, reporter: Reporter = SILENT) -> list[tuple[str, Any]]:
        """Every distribution's manifest; (name, None) for those without pre-training."""
        from divrob.recipes.load import load_recipe
        from divrob.recipes.manifest import build_manifest

        r = load_recipe(path)
        task = reporter.task(f"building {r.study.name}", total=len(r.distributions))
        out = []
        try:
            for ed in r.distributions:
                d = ed.distribution
                out.append((d.name, None if d.is_scratch else build_manifest(self.ws, d, reporter)))
                task.advance()
        finally:
            task.close()
        return out

    # ---- studies ----------------------------------------------------------------------------

    def plan(self, path: Path, reporter: Reporter = SILENT) -> PlanView:
        """The study's jobs and what a launch would do with each (builds missing manifests;
        only the generation jobs while the recipe's sources are still to be generated)."""
        from divrob.dispatch.launch import preview_study

        with self._store.reading():
            study, rows = preview_study(self.ws, path, reporter)
        return PlanView(Path(path), study, rows)

    @_writes
    def launch(self, path: Path, executor: str, reporter: Reporter = SILENT, *, retry: bool = False) -> str:
        """Launch the study detached (its runs outlive the TUI); returns a one-line summary."""
        from divrob.dispatch.launch import LaunchRequest, launch_study

        if executor not in ("local", "slurm", "submitit-local"):
            raise DivrobError(f"cannot launch on {executor!r} from the TUI: choose local or slurm")
        request = LaunchRequest(Path(path), self.ws.root, executor, retry=retry, detach=True)
        return launch_study(request, reporter).summary()[0]

    # ---- jobs -------------------------------------------------------------------------------

    @_reads
    def jobs(self, include_done: bool = True):
        """Every job as the monitor shows it (`dispatch.monitor.JobView`, the numbers of `divrob
        jobs ls`); with include_done False only the queued and running ones."""
        from divrob.dispatch.monitor import job_views

        from divrob.states import ACTIVE

        rows = job_views(self.ws, now=self.clock())
        return rows if include_done else [r for r in rows if r.state in ACTIVE]

    @_reads
    def time_left(self, views) -> list[str]:
        """Estimated time left per study with unfinished runs, in words (`divrob jobs ls` says the same)."""
        from divrob.dispatch.cost import time_left_lines

        return time_left_lines(self.ws, views, short=True)

    @_reads
    def job_log(self, job_id: str, lines: int = 200) -> str:
        """The job's state line and the end of its logs, as one text."""
        head, body, _ = self.job_log_since(job_id, None, lines)
        return head + "\n" + (body or "(no log yet)")

    @_reads
    def job_log_since(self, job_id: str, offsets: dict[str, int] | None, lines: int = 200,
                      max_bytes: int = 1 << 20) -> tuple[str, str, dict[str, int]]:
        """(state line, log text, offsets): with offsets None the last `lines` of each log, else
        only what was appended since those offsets, so a log pane can follow without rewriting."""
        from divrob.dispatch.control import find_job, log_paths
        from divrob.dispatch.jobs import log_tail

        j = find_job(self.ws, job_id)
        head = f"{j.job_id} ({j.label or j.kind}): {j.state}" + (f" — {j.reason}" if j.reason else "")
        parts, new = [], {}
        for p in log_paths(self.ws, j):
            if not p.exists():
                continue
            size = p.stat().st_size
            new[str(p)] = size
            if offsets is None:
                parts.append(f"── {p.name} ──\n" + log_tail(p, lines))
            elif size > offsets.get(str(p), 0):
                start = max(offsets.get(str(p), 0), size - max_bytes)
                with open(p, "rb") as f:
                    f.seek(start)
                    text = f.read(size - start).decode(errors="replace")
                parts.append((f"── {p.name} ──\n" if str(p) not in offsets else "") + text.rstrip("\n"))
        return head, "\n".join(parts), new

    @_writes
    def cancel(self, job_id: str) -> list[str]:
        from divrob.dispatch.control import cancel

        return cancel(self.ws, job_id)

    def retry(self, job_id: str, reporter: Reporter = SILENT) -> str:
        """Queue a failed or cancelled job again. dispatch retries per study, so this re-queues
        every failed or cancelled run of the job's study, through the recipe the store recorded."""
        from divrob.dispatch.control import find_job
        from divrob.store.db import read_connection

        with self._store.reading():
            j = find_job(self.ws, job_id)
        if j.state not in ("failed", "cancelled"):
            raise DivrobError(f"job {j.job_id[:8]} is {j.state}; only failed or cancelled jobs can be retried")
        if not j.study:
            raise DivrobError(f"job {j.job_id[:8]} belongs to no study; retry it with `divrob study retry RECIPE`")
        with self._store.reading(), read_connection(self.ws.db_path) as con:
            row = con.execute("SELECT path FROM recipes WHERE study = ? ORDER BY added DESC LIMIT 1",
                              [j.study]).fetchone()
        if row is None or not Path(row[0]).exists():
            raise DivrobError(f"the recipe of study {j.study!r} is not where it was recorded; "
                              f"retry with `divrob study retry RECIPE`")
        executor = j.executor if j.executor in ("local", "slurm", "submitit-local") else "local"
        return self.launch(Path(row[0]), executor, reporter, retry=True)

    # ---- results ----------------------------------------------------------------------------

    @_reads
    def studies(self) -> list[str]:
        from divrob.store.db import read_connection
        from divrob.store.queries import studies

        with read_connection(self.ws.db_path) as con:
            return studies(con)

    @_reads
    def points(self, study: str | None, where: str | None = None, *, for_analysis: bool = False):
        """Every fine-tuning epoch of a study (None: all), sweep keys as columns, filtered.
        `for_analysis`: only the scores a trend needs (a big study loads several times faster)."""
        from divrob.analysis.report import study_points
        from divrob.analysis.where import apply_where

        if for_analysis:
            from divrob.analysis import ID_COL, OOD_COL

            points = study_points(self.ws, study, (ID_COL, OOD_COL))
        else:
            points = study_points(self.ws, study)
        return apply_where(points, where) if where and where.strip() else points

    def begin_first_glance(self) -> None:
        """Start `first_glance` in a thread now: an app that opens on Trends calls this before
        Textual's own start-up, which the reading of the store (it releases the interpreter)
        then overlaps. The next `first_glance` returns its result or raises its error. (Reading
        it ahead for an app that opens elsewhere was tried: it slowed that screen's own first
        paint by a second on a big study, so Trends reads when it is opened.)"""
        from concurrent.futures import Future

        future: Future = Future()
        self._early_glance = future

        def run() -> None:
            try:
                future.set_result(self._first_glance())
            except BaseException as e:  # handed to whoever asks for it, as if asked then
                future.set_exception(e)

        threading.Thread(target=run, name="divrob-first-glance", daemon=True).start()

    def first_glance(self):
        """The studies, the store's stamp and the first study's trends at a glance (every
        distribution's points and least-squares line, read without pandas: `analysis.glance`),
        in one call: what Trends draws first on a big study."""
        early, self._early_glance = self._early_glance, None
        return early.result() if early is not None else self._first_glance()

    @_reads
    def _first_glance(self):
        from divrob.analysis.glance import glance_of, prepare
        from divrob.store.db import read_connection
        from divrob.store.queries import studies as studies_of

        prepare()  # the fitting code loads while the store is opened and the study list read
        with read_connection(self.ws.db_path) as con:
            studies, stamp = studies_of(con), _stamp(con)
            try:
                first = glance_of(con, self.ws, studies[0]) if studies else None
            except DivrobError:  # e.g. several OOD splits: the full load meets it and says so
                first = None
        return studies, stamp, first

    @_reads
    def results_page(self, study: str, limit: int):
        """A study's first `limit` runs at their last epoch straight from the store, their number,
        the OOD split and the metric: what Results paints first (`analysis.studies.results_page`)."""
        from divrob.analysis.studies import results_page

        return results_page(self.ws, study, limit)

    @_reads
    def diff(self, run_a: str, run_b: str) -> dict:
        """divrob.analysis.diff.diff_runs of two runs (ids or unique prefixes) or STUDY:GROUPs."""
        from divrob.analysis.diff import diff_runs

        return diff_runs(self.ws, run_a, run_b)

    @staticmethod
    def summary(points, all_studies: bool = False):
        """Per run, its last epoch: the task's ID / OOD score (as `divrob results`) and its state;
        over all studies also its study."""
        from divrob.analysis import ID_COL, OOD_COL
        from divrob.analysis.report import run_summary

        out = run_summary(points, (ID_COL, OOD_COL), context=True)
        return out if all_studies or "study" not in out.columns else out.drop(columns="study")

    def export_table(self, df, path: str | Path) -> Path:
        from divrob.fileio import atomic_path

        path = self._resolve(path)
        if path.suffix.lower() not in TABLE_FORMATS:
            raise DivrobError(f"cannot export a table to {path.name!r}: end the name in .csv or .parquet")
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            if path.suffix.lower() == ".csv":
                from divrob.fileio import write_csv

                write_csv(df, tmp)
            else:
                df.to_parquet(tmp, index=False)
        return path

    def group_fields(self, points) -> list[str]:
        """Columns a trend can be grouped by: run fields, then swept recipe keys."""
        from divrob.store.queries import SCORE_COLUMNS

        skip = {"run_id", "epoch", "state", "metric", *SCORE_COLUMNS}
        first = [c for c in ("distribution", "source", "arch", "seed", "axis") if c in points.columns]
        return first + [c for c in points.columns if c not in skip and c not in first]

    @staticmethod
    def analyse(points, group_by: str, baseline: str | None, transform: str, n_boot: int = N_BOOT,
                with_bands: bool = True):
        """Trends, bands and effective robustness as `divrob plot trends` computes them: the same
        run-level bootstrap and the same number of resamples (analysis.N_BOOT)."""
        from divrob.analysis.robustness import analyse

        if transform not in TRANSFORMS:
            raise DivrobError(f"transform {transform!r}: choose from {', '.join(TRANSFORMS)}")
        try:
            return analyse(points, group_by, baseline, transform, n_boot=n_boot, with_bands=with_bands)
        except ValueError as e:  # the pure analysis functions speak ValueError
            raise DivrobError(str(e)) from None

    def export_figure(self, analysis, groups: list[str], path: str | Path, title: str) -> Path:
        from divrob.plots.export import export_trends
        from divrob.plots.terminal import panel_of

        path = self._resolve(path)
        if path.suffix.lower() not in FIGURE_FORMATS:
            raise DivrobError(f"cannot export a figure to {path.name!r}: end the name in .png, .svg or .pdf")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return export_trends(panel_of(analysis, groups), path, title=title)
        except ValueError as e:
            raise DivrobError(str(e)) from None

    def _resolve(self, path: str | Path) -> Path:
        """A relative export path lands in the workspace, not wherever the TUI was started."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.ws.root / p


