"""What a study will cost before it runs: images processed, GPU-hours per run and in total, and
the wall time on N GPUs. These are estimates from a throughput table, never measurements:

1. measured: `divrob bench train` stores its end-to-end images/s per (GPU model, architecture,
   resolution) in the workspace (`bench/throughput.json`);
2. else defaults: DESIGN.md's model-bound throughputs on one H200 (bf16, eager) at 224 px,
   scaled by (224 / resolution)^2 for other input sizes (ResNet-50 @ 448: 1,165 measured vs
   1,168 so scaled). README "Cost estimates" has the table and its source.

Evaluating an image costs a third of training one (forward only). A run's images: pre-training
epochs x its manifest's images, plus fine-tuning epochs x (training images + evaluated images / 3).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from divrob.fileio import write_json_atomic
from divrob.workspace import Workspace

# images/s, model-bound, one H200, bf16 autocast, channels_last, eager, 224 px (DESIGN.md)
DEFAULT_THROUGHPUT = {"resnet18": 13725.0, "resnet50": 4674.0, "resnext50_32x4d": 3679.0, "densenet121": 2830.0,
                      "mobilenet_v3_large": 9227.0, "alexnet": 41419.0}
DEFAULT_SOURCE = "defaults: DESIGN.md, one H200, model-bound, bf16"
FALLBACK_ARCH = "resnet50"  # architectures without a default are estimated at ResNet-50's rate
EVAL_SPEEDUP = 3.0
# training and evaluated images per fine-tuning epoch of tasks whose data may not be here yet
# (WILDS v2.0 iWildCam: train 129,809; val 14,961 + test 42,791 + id_val 7,314 + id_test 8,154.
#  fMoW-WILDS v1.1: train 76,863; 64,833 evaluated)
TASK_SIZES = {"wilds:iwildcam": (129_809, 73_220), "wilds:fmow": (76_863, 64_833)}


def throughput_path(ws: Workspace) -> Path:
    return ws.root / "bench" / "throughput.json"


def read_throughputs(ws: Workspace) -> list[dict[str, Any]]:
    try:
        data = json.loads(throughput_path(ws).read_text())
    except (OSError, ValueError):
        return []
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []


def record_throughput(ws: Workspace, gpu: str, arch: str, res: int, phase: str, images_per_s: float) -> None:
    """Store one measurement (`divrob bench train`); a new one replaces the old for the same key."""
    key = (gpu, arch, int(res), phase)
    rows = [d for d in read_throughputs(ws) if (d.get("gpu"), d.get("arch"), d.get("res"), d.get("phase")) != key]
    rows.append({"gpu": gpu, "arch": arch, "res": int(res), "phase": phase,
                 "images_per_s": round(float(images_per_s), 1), "measured": time.time()})
    throughput_path(ws).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(throughput_path(ws), rows)


@dataclass
class Throughputs:
    """Images/s per (arch, resolution): measured on `gpu` when the workspace has it, else defaults."""

    measured: list[dict[str, Any]]
    gpu: str | None = None
    used: dict[str, set[str]] = field(default_factory=dict)  # source → "arch@res" looked up from it

    def rate(self, arch: str, res: int) -> float:
        rows = [d for d in self.measured if d.get("arch") == arch and d.get("res") == res
                and (self.gpu is None or d.get("gpu") == self.gpu) and d.get("gpu") != "cpu"]
        if rows:
            best = max(rows, key=lambda d: d.get("measured", 0))
            self.used.setdefault(f"measured on {best['gpu']} (`divrob bench train`)", set()).add(f"{arch}@{res}")
            return float(best["images_per_s"])
        base = DEFAULT_THROUGHPUT.get(arch, DEFAULT_THROUGHPUT[FALLBACK_ARCH])
        how = DEFAULT_SOURCE + ("" if arch in DEFAULT_THROUGHPUT else f", {arch} at ResNet-50's rate")
        self.used.setdefault(how, set()).add(f"{arch}@{res}")
        return base * (224.0 / res) ** 2

    def sources(self) -> list[str]:
        return [f"{src}: {', '.join(sorted(what))}" for src, what in sorted(self.used.items())]


@dataclass
class RunCost:
    run_id: str
    images: int  # images trained on (evaluated images count a third)
    gpu_hours: float
    note: str | None = None


def task_sizes(ws: Workspace, spec, cache: dict) -> tuple[int, int] | None:
    """(training, evaluated) images per fine-tuning epoch of the run's task; None when unknown."""
    key = (spec.downstream, json.dumps(spec.downstream_options, sort_keys=True))
    if key in cache:
        return cache[key]
    from divrob.downstream import get_task, task_of_spec

    try:
        ref = task_of_spec(spec.downstream, spec.downstream_options)
        sizes = TASK_SIZES.get(ref.kind.name)
        if sizes is None and ref.kind.name == "camtrap-sim" and not (ws.data / "camtrap-sim").exists():
            return cache.setdefault(key, None)  # generated on first use: never by an estimate
        if sizes is None:  # the task's data is here (generated, or configured): count its splits
            task = get_task(ws, ref)
            sizes = (len(task.split("train").paths), sum(len(task.split(s).paths) for s in task.eval_splits))
    except Exception:  # an unknown task, or its data not there yet: fine-tuning not counted, and said so
        sizes = None
    cache[key] = sizes
    return sizes


def manifest_images(ws: Workspace, manifest_id: str) -> int | None:
    import pyarrow.parquet as pq

    try:
        return int(pq.ParquetFile(ws.manifests / f"{manifest_id}.parquet").metadata.num_rows)
    except (OSError, ValueError):
        return None


def run_cost(ws: Workspace, spec, rates: Throughputs, n_pretrain: int | None, cache: dict) -> RunCost:
    images, hours, notes = 0.0, 0.0, []
    if spec.pretrain is not None:
        if n_pretrain is None:
            n_pretrain = manifest_images(ws, spec.manifest_id) if spec.manifest_id else None
        if n_pretrain is None:
            notes.append("manifest not built: pre-training not counted")
        else:
            n = spec.pretrain.epochs * n_pretrain
            images += n
            hours += n / rates.rate(spec.arch, spec.pretrain.image_size) / 3600
    sizes = task_sizes(ws, spec, cache)
    if sizes is None:
        notes.append(f"{spec.downstream}: data not here, fine-tuning not counted")
    else:
        train, evaluated = sizes
        n = spec.finetune.epochs * (train + evaluated / EVAL_SPEEDUP)
        images += n
        hours += n / rates.rate(spec.arch, spec.finetune.image_size) / 3600
    return RunCost(spec.run_id, int(round(images)), hours, "; ".join(notes) or None)


@dataclass
class StudyCost:
    runs: list[RunCost]
    todo: list[str]  # run ids not finished
    gpus: int
    sources: list[str]

    @property
    def total_gpu_hours(self) -> float:
        return sum(r.gpu_hours for r in self.runs)

    @property
    def todo_gpu_hours(self) -> float:
        todo = set(self.todo)
        return sum(r.gpu_hours for r in self.runs if r.run_id in todo)

    def wall_hours(self) -> float:
        """On `gpus` GPUs, one run per GPU: the work spread evenly, but never less than the longest run."""
        todo = [r.gpu_hours for r in self.runs if r.run_id in set(self.todo)]
        return max(sum(todo) / max(1, self.gpus), max(todo)) if todo else 0.0

    def to_json(self) -> dict:
        """What `study plan --json` says of the cost (estimates, with where the throughputs came from)."""
        todo = set(self.todo)
        return {"runs_to_do": len(todo), "images": sum(r.images for r in self.runs if r.run_id in todo),
                "gpu_hours_to_do": self.todo_gpu_hours, "gpu_hours_all": self.total_gpu_hours,
                "wall_hours": self.wall_hours(), "gpus": self.gpus, "throughput_sources": list(self.sources),
                "per_run": [{"run_id": r.run_id, "images": r.images, "gpu_hours": r.gpu_hours, "not_counted": r.note}
                            for r in self.runs], "estimate": True}

    def lines(self) -> list[str]:
        todo = [r for r in self.runs if r.run_id in set(self.todo)]
        images = sum(r.images for r in todo)
        per_run = [r.gpu_hours for r in self.runs]
        out = [f"estimate: {len(todo)} runs to do, {images:,} images, {self.todo_gpu_hours:,.1f} GPU-h "
               f"({self.total_gpu_hours:,.1f} GPU-h for all {len(self.runs)} runs; "
               f"{min(per_run, default=0):,.2f}-{max(per_run, default=0):,.2f} GPU-h per run); "
               f"wall ≈ {fmt_hours(self.wall_hours())} on {self.gpus} GPU(s)",
               "throughput (estimates, not measurements) from " + "; ".join(self.sources or ["nothing (no runs)"])]
        notes = sorted({r.note for r in self.runs if r.note})
        out += [f"not counted: {n}" for n in notes]
        return out


def time_left_lines(ws: Workspace, views, short: bool = False) -> list[str]:
    """`time_left` in words, one line per study (`divrob jobs ls`; `short` for the TUI's status line)."""
    if short:
        return [f"{study} {_about(t['wall_hours'])} left (estimate)" for study, t in sorted(time_left(ws, views).items())]
    return [f"time left for {study}: {_about(t['wall_hours'])} ({t['gpu_hours']:,.1f} GPU-h for "
            f"{t['runs']} unfinished runs, {t['running']} running; an estimate)"
            for study, t in sorted(time_left(ws, views).items())]


def _about(h: float) -> str:
    text = fmt_hours(h)
    return text if text.startswith("<") else "~" + text


def fmt_hours(h: float) -> str:
    if h * 60 < 0.5:
        return "<1 min"
    return f"{h * 60:.0f} min" if h < 1 else (f"{h:.1f} h" if h < 48 else f"{h / 24:.1f} days")


def study_cost(ws: Workspace, plan, todo: list[str], gpus: int = 1, gpu: str | None = None) -> StudyCost:
    """The cost of a planned study (`divrob.runs.grid.StudyPlan`); `todo`: its unfinished run ids."""
    rates = Throughputs(read_throughputs(ws), gpu)
    cache: dict = {}
    seen: dict[str, RunCost] = {}
    for pr in plan.runs:
        if pr.spec.run_id not in seen:
            n = pr.manifest.n_images if pr.manifest is not None else None
            seen[pr.spec.run_id] = run_cost(ws, pr.spec, rates, n, cache)
    return StudyCost(list(seen.values()), list(todo), gpus, rates.sources())


def time_left(ws: Workspace, views) -> dict[str, dict[str, float]]:
    """Per study with active run jobs: GPU-hours left (unfinished fractions of running runs
    included) and the wall time at the number of jobs running now (at least one). `views` are the
    monitor's (divrob.dispatch.monitor.JobView), whose run fraction counts steps."""
    from divrob.errors import DivrobError
    from divrob.runs.rundir import RunDir
    from divrob.states import ACTIVE

    rates = Throughputs(read_throughputs(ws))
    cache: dict = {}
    out: dict[str, dict[str, float]] = {}
    for j in views:
        if j.kind != "run" or j.state not in ACTIVE or not j.study:  # no-op stand-ins cost nothing
            continue
        try:
            spec = RunDir(ws.runs / j.job_id).spec()
        except (DivrobError, OSError, ValueError, KeyError, TypeError):  # no readable spec: nothing to estimate
            continue
        cost = run_cost(ws, spec, rates, None, cache)
        frac = (j.fraction or 0.0) if j.state != "queued" else 0.0
        s = out.setdefault(j.study, {"gpu_hours": 0.0, "running": 0, "runs": 0})
        s["gpu_hours"] += cost.gpu_hours * (1 - frac)
        s["runs"] += 1
        s["running"] += j.state != "queued"
    for s in out.values():
        s["wall_hours"] = s["gpu_hours"] / max(1, s["running"])
    return out
