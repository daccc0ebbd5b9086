"""The inline executor: run every unfinished run of a study in this process, one after another,
ingesting each into the store as it ends. One failing run never stops the others."""

from __future__ import annotations

from dataclasses import dataclass, field

from divrob.errors import DivrobError
from divrob.progress import SILENT, Reporter
from divrob.recipes.load import Recipe
from divrob.runs.claim import RunClaimed
from divrob.runs.execute import execute_run
from divrob.runs.grid import StudyPlan, plan_study
from divrob.runs.provenance import note_recipe
from divrob.runs.rundir import RunDir
from divrob.store.db import write_connection
from divrob.store.ingest import ingest_run, ingest_runs, record_manifest, record_recipe, record_study_run
from divrob.workspace import Workspace


@dataclass
class StudyOutcome:
    plan: StudyPlan
    trained: list[str] = field(default_factory=list)  # run ids run in this call
    skipped: list[str] = field(default_factory=list)  # already finished
    failed: dict[str, str] = field(default_factory=dict)  # run id → reason
    left: dict[str, str] = field(default_factory=dict)  # run id → the live process training it (its claim)


def record_plan(ws: Workspace, plan: StudyPlan) -> None:
    from divrob.runs.migrate import rekey_store

    with write_connection(ws.db_path) as con:
        rekey_store(con, ws)  # rows of runs re-keyed by plan_study follow their directories
        record_recipe(con, plan.recipe)
        con.execute("DELETE FROM study_runs WHERE study = ?", [plan.recipe.study.name])
        for name, info in plan.manifests.items():
            dist = plan.recipe.distribution(name).distribution
            record_manifest(con, info, dist.source_label)
        for pr in plan.runs:
            record_study_run(con, plan.recipe.study.name, pr)
        rundirs = {pr.spec.run_id: RunDir(ws.runs / pr.spec.run_id) for pr in plan.runs}
        for rd in rundirs.values():
            if rd.spec_path.exists():
                note_recipe(rd.path, plan.recipe)
        ingest_runs(con, [rd for rd in rundirs.values() if rd.spec_path.exists()])


def run_study(ws: Workspace, recipe: Recipe, reporter: Reporter = SILENT) -> StudyOutcome:
    from divrob.sources.generators import generate, pending_generations

    for job in pending_generations(ws, recipe):  # generated sources first, once
        generate(ws, job, reporter)
    plan = plan_study(ws, recipe, reporter)
    record_plan(ws, plan)
    outcome = StudyOutcome(plan)
    seen: set[str] = set()
    for pr in plan.runs:
        run_id = pr.spec.run_id
        if run_id in seen:  # two distributions with the same manifest share their runs
            continue
        seen.add(run_id)
        if RunDir(ws.runs / run_id).is_finished:
            outcome.skipped.append(run_id)
            continue
        reporter.log(f"run {run_id}: {pr.distribution} / {pr.spec.arch} / seed {pr.spec.seed}")
        note_recipe(RunDir.for_spec(ws.runs, pr.spec).path, recipe)
        try:
            rd = execute_run(ws, pr.spec, reporter)
            outcome.trained.append(run_id)
        except RunClaimed as e:  # another `study run` trains it: its ingest records it
            outcome.left[run_id] = e.owner.describe()
            reporter.log(f"run {run_id}: left to {e.owner.describe()}, which is training it")
            continue
        except DivrobError as e:
            outcome.failed[run_id] = str(e)
            reporter.log(f"run {run_id} failed: {e}")
            rd = RunDir(ws.runs / run_id)
        except Exception as e:  # a crash in one run is recorded in its dir; the others go on
            outcome.failed[run_id] = f"{type(e).__name__}: {e}"
            reporter.log(f"run {run_id} failed: {type(e).__name__}: {e} (see {ws.runs / run_id / 'log.txt'})")
            rd = RunDir(ws.runs / run_id)
        with write_connection(ws.db_path) as con:
            ingest_run(con, rd)
    return outcome
