"""The study grid: (distribution x architecture x seed) → RunSpecs, manifests built on the way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from divrob.progress import SILENT, Reporter
from divrob.recipes.load import Recipe
from divrob.recipes.manifest import ManifestInfo, build_manifest
from divrob.runs.spec import RunSpec
from divrob.train.config import finetune_config, pretrain_config
from divrob.workspace import Workspace


@dataclass
class PlannedRun:
    distribution: str
    source: str | None
    sweep: dict[str, Any]
    spec: RunSpec
    manifest: ManifestInfo | None


@dataclass
class PlannedJob:
    """One unit of dispatch: a manifest build, a run, or (later) a generation job, with the ids of
    the jobs it waits for. Run jobs are keyed by run id, so finished work is recognised anywhere."""

    job_id: str
    kind: str  # "manifest" | "run" | "generate" (a source generator `(workspace, params, reporter)`)
    label: str
    deps: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)


def manifest_job_id(manifest_id: str) -> str:
    return f"manifest-{manifest_id}"


@dataclass
class StudyPlan:
    recipe: Recipe
    runs: list[PlannedRun] = field(default_factory=list)
    manifests: dict[str, ManifestInfo] = field(default_factory=dict)  # by distribution name

    def jobs(self) -> list[PlannedJob]:
        """Every job in dependency order: manifests (built while planning), then the runs,
        each run once even when two distributions share a manifest."""
        out: dict[str, PlannedJob] = {}
        several_tasks = len({pr.spec.downstream for pr in self.runs}) > 1
        for name, info in self.manifests.items():
            jid = manifest_job_id(info.manifest_id)
            out.setdefault(jid, PlannedJob(jid, "manifest", f"manifest {name}", params={"distribution": name}))
        for pr in self.runs:
            spec = pr.spec
            deps = (manifest_job_id(spec.manifest_id),) if spec.manifest_id else ()
            task = f"{spec.downstream} / " if several_tasks else ""
            out.setdefault(spec.run_id, PlannedJob(
                spec.run_id, "run", f"{task}{pr.distribution} / {spec.arch} / seed {spec.seed}", deps))
        return list(out.values())


def plan_study(ws: Workspace, recipe: Recipe, reporter: Reporter = SILENT) -> StudyPlan:
    from divrob.runs.migrate import migrate_legacy_ids

    migrate_legacy_ids(ws, reporter)  # before building: a legacy workspace's finished runs keep counting
    study = recipe.study
    plan = StudyPlan(recipe)
    pre_over = study.pretrain.model_dump(exclude_none=True)
    fine_over = study.finetune.model_dump(exclude_none=True)
    tasks = study.tasks
    task = reporter.task("building manifests", total=len(recipe.distributions))
    try:
        for ed in recipe.distributions:
            dist = ed.distribution
            info = build_manifest(ws, dist, reporter) if dist.builds_manifest else None
            if info is not None:
                plan.manifests[dist.name] = info
            task.advance()
            archs, weights, source = _archs_and_weights(ws, dist, study.archs)
            if info is not None:
                source = dist.source_label
            for downstream in tasks:
                for arch in archs:
                    for seed in study.seeds:
                        spec = RunSpec(
                            arch=arch, seed=seed, downstream=downstream.label, weights=weights.get(arch),
                            downstream_options=downstream.spec_options,
                            # the task's defaults (WILDS's config for its dataset), then the recipe's
                            finetune=finetune_config(arch, {**downstream.finetune_defaults(), **fine_over}),
                            manifest_id=info.manifest_id if info else None,
                            pretrain_classes=info.n_classes if info else None,
                            pretrain=pretrain_config(arch, pre_over) if info else None,
                        )
                        plan.runs.append(PlannedRun(dist.name, source, ed.sweep, spec, info))
    finally:
        task.close()
    return plan


def _archs_and_weights(ws: Workspace, dist, study_archs: list[str]):
    """The architectures a distribution's runs train, the external weights of each (resolved to a
    file and its sha256, divrob.train.weights), and the source label its runs show. A CLIP checkpoint
    brings its own tower: its runs train that one architecture, not the study's."""
    if dist.weights is None:
        return study_archs, {}, None
    from divrob.errors import WeightsError
    from divrob.train.weights import resolve_weights

    archs = dist.run_archs(study_archs)
    try:
        weights = {arch: resolve_weights(ws, dist.weights, arch) for arch in archs}
    except WeightsError as e:
        raise WeightsError(f"distribution {dist.name!r}: {e}") from None
    return archs, weights, dist.weights
