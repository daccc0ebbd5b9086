"""A workspace full of results, built without training: for analysis, CLI and TUI tests.

    from results_fixture import GroupSpec, make_results_workspace   # tests/ is on sys.path

    ws = make_results_workspace(tmp_path / "ws")                     # the default study below
    ws = make_results_workspace(tmp_path / "ws", study="q", groups=[
        GroupSpec("scratch", slope=0.9, intercept=-0.7),
        GroupSpec("imagenet-5000", slope=0.9, intercept=-0.4, source="imagenet", sweep={"total": 5000}),
    ], archs=("resnet18", "resnet50"), seeds=(0, 1), epochs=6, noise=0.03, seed=0)

Every (group, arch, seed) gets a real run directory written by the real code: `spec.json`
from a `RunSpec` (so run ids are real content hashes), `events.jsonl` with one `finetune`
event per epoch holding id_test / test / id_val / val metrics, and `status.json` = finished.
The store is then filled by the real ingest (`record_study_run` with a `PlannedRun`, then
`ingest_run`), exactly as the inline executor fills it.

The metrics come from known lines: in probit space, OOD = slope * ID + intercept + noise,
with ID rising over the epochs from a per-architecture start. So a test knows the true
trend of every group, and the true effective robustness of a group against another at any ID
value. A pre-trained group gets a made-up manifest id (its name's hash): no manifest files
are written, since nothing in analysis reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy.special import ndtr

from divrob.fileio import short_hash
from divrob.runs.grid import PlannedRun
from divrob.runs.rundir import RunDir
from divrob.runs.spec import RunSpec
from divrob.store.db import write_connection
from divrob.store.ingest import ingest_run, record_study_run
from divrob.train.config import finetune_config, pretrain_config
from divrob.workspace import Workspace, init_workspace


@dataclass(frozen=True)
class GroupSpec:
    """One pre-training distribution of the study and the true line its runs lie on."""

    name: str
    slope: float = 0.9
    intercept: float = -0.6
    source: str | None = None  # None: no pre-training (scratch)
    sweep: dict[str, Any] = field(default_factory=dict)  # e.g. {"total": 5000}

    def ood(self, id_metric):
        """The true OOD metric at the given ID metric (noise-free)."""
        from scipy.special import ndtri

        return ndtr(self.slope * ndtri(np.asarray(id_metric, float)) + self.intercept)


DEFAULT_GROUPS = (
    GroupSpec("scratch", 0.9, -0.7),
    GroupSpec("shapes-500", 0.9, -0.5, "demo-shapes", {"total": 500}),
    GroupSpec("shapes-2000", 0.9, -0.3, "demo-shapes", {"total": 2000}),
)
DEFAULT_ARCHS = ("resnet18", "resnet34")

# Probit of the ID metric at epoch 1 per architecture, and its rise per epoch: the points of a
# run spread along its trend as fine-tuning proceeds, as they do in real runs.
_ID_START = -1.3
_ID_STEP = 0.15


def make_results_workspace(root, *, study: str = "fixture", groups: Sequence[GroupSpec] = DEFAULT_GROUPS,
                           archs: Sequence[str] = DEFAULT_ARCHS, seeds: Sequence[int] = (0,),
                           epochs: int = 5, noise: float = 0.03, seed: int = 0,
                           downstream: str = "camtrap-sim") -> Workspace:
    """Create (or add a study to) a workspace at `root` holding finished runs with results.

    Calling it again on the same root with another `study` adds that study; runs of equal
    (group source, arch, seed) across studies are distinct because the manifest id includes
    the study name. Deterministic: the same arguments give the same files and store rows.
    """
    ws = init_workspace(Path(root))
    rng = np.random.default_rng(seed)
    planned: list[PlannedRun] = []
    for g in groups:
        for a_i, arch in enumerate(archs):
            for s in seeds:
                pretrained = g.source is not None
                spec = RunSpec(
                    arch=arch, seed=int(s), downstream=downstream,
                    finetune=finetune_config(arch, {"epochs": epochs, "image_size": 32}),
                    manifest_id=short_hash({"study": study, "group": g.name}) if pretrained else None,
                    pretrain_classes=10 if pretrained else None,
                    pretrain=pretrain_config(arch, {"epochs": 2, "image_size": 32}) if pretrained else None,
                )
                _write_run(ws, spec, g, a_i, epochs, noise, rng)
                planned.append(PlannedRun(g.name, g.source, dict(g.sweep), spec, None))
    with write_connection(ws.db_path) as con:
        con.execute("DELETE FROM study_runs WHERE study = ?", [study])
        for pr in planned:
            record_study_run(con, study, pr)
            ingest_run(con, RunDir(ws.runs / pr.spec.run_id))
    return ws


def _write_run(ws: Workspace, spec: RunSpec, g: GroupSpec, arch_index: int, epochs: int,
               noise: float, rng: np.random.Generator) -> None:
    rd = RunDir.for_spec(ws.runs, spec)
    rd.events_path.unlink(missing_ok=True)  # rewriting a fixture must not append twice
    rd.set_status("running")
    start = _ID_START + 0.1 * arch_index
    for epoch in range(1, epochs + 1):
        x = start + _ID_STEP * epoch + 0.05 * rng.normal()
        metrics = {}
        for id_split, ood_split in (("id_test", "test"), ("id_val", "val")):
            xi = x + 0.02 * rng.normal()
            yi = g.slope * xi + g.intercept + noise * rng.normal()
            metrics[id_split] = _metric(ndtr(xi), rng)
            metrics[ood_split] = _metric(ndtr(yi), rng)
        rd.append_epoch("finetune", epoch, metrics)
    rd.set_status("finished")


def _metric(f1: float, rng: np.random.Generator) -> dict[str, float]:
    acc = float(min(1.0, f1 + 0.2 + 0.01 * rng.normal()))
    return {"f1_macro": float(f1), "acc": acc, "recall_macro": float(f1), "loss": 1.0 - acc, "n": 500}
