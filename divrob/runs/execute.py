"""The body of one job: pre-train on the run's manifest (unless scratch), then fine-tune on the
downstream task with a new head, evaluating every epoch. Resumes from the run's checkpoints.

Run under torchrun (see divrob.runs.ddp_entry), every rank calls `execute_run`; rank 0 alone
writes the run directory, the others follow the same steps on their share of each batch."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

from divrob.errors import RunError
from divrob.progress import SILENT, Reporter
from divrob.runs.claim import claim_run
from divrob.runs.rundir import RunDir
from divrob.runs.spec import RunSpec
from divrob.workspace import Workspace

PRETRAINED = "pretrained.pt"


def pick_device(ws: Workspace, dist=None):
    import torch

    want = ws.config.compute.device
    if dist is not None and dist.active and torch.cuda.is_available() and want in ("auto", "cuda"):
        torch.cuda.set_device(dist.local_rank)  # one GPU per rank
        return torch.device("cuda", dist.local_rank)
    from divrob.devices import resolve_device

    return resolve_device(want, where=f"compute.device in {ws.config_path}")


def check_unreadable(ws: Workspace, rd: RunDir, reporter: Reporter, what: str, paths, decoded) -> None:
    """Count a split's unreadable images: said when the run starts, kept in the run's status
    (and so in the store and `divrob results`); beyond `max_unreadable_fraction` the run fails
    naming the first files."""
    import numpy as np

    bad = np.nonzero(~decoded.valid)[0]
    rd.add_unreadable(what, int(len(bad)), len(paths))
    if not len(bad):
        return
    frac = len(bad) / max(len(paths), 1)
    message = f"{what}: {len(bad)} of {len(paths)} images are unreadable ({frac:.1%}) and skipped"
    reporter.log(f"run {rd.run_id}: {message}")
    rd.log(message)
    limit = ws.config.compute.max_unreadable_fraction
    if frac > limit:
        first = ", ".join(str(paths[i]) for i in bad[:5])
        raise RunError(f"run {rd.run_id}: {what}: {len(bad)} of {len(paths)} images are unreadable ({frac:.1%} > "
                       f"max_unreadable_fraction = {limit:g} in {ws.config_path}); the first: {first}; replace or "
                       "remove them (then re-index the source), or raise the limit")


HEARTBEAT_S = 60.0  # a long decode logs its progress this often: the run's heartbeat


class HeartbeatReporter:
    """A reporter that also writes a line to the run's log, at most every `every_s` seconds,
    while a task advances ("decoding manifest 3f2a1b9c: 256,000 of 1,281,167"). The first decode
    of a large manifest can take longer than `stall_minutes`, and before training starts a run
    reports no other progress: the log's time is then its heartbeat (dispatch.manager)."""

    def __init__(self, inner: Reporter, rd: RunDir, every_s: float = HEARTBEAT_S) -> None:
        self.inner, self.rd, self.every_s = inner, rd, every_s

    def task(self, description: str, total: int | None = None):
        return _HeartbeatTask(self, self.inner.task(description, total), description, total)

    def log(self, message: str) -> None:
        self.inner.log(message)


class _HeartbeatTask:
    def __init__(self, owner: HeartbeatReporter, inner, description: str, total: int | None) -> None:
        self.owner, self.inner, self.description, self.total = owner, inner, description, total
        self.done, self.last = 0, time.monotonic()

    def advance(self, n: int = 1) -> None:
        self.inner.advance(n)
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.owner.every_s:
            self.last = now
            of = f" of {self.total:,}" if self.total else ""
            self.owner.rd.log(f"{self.description}: {self.done:,}{of}")

    def update(self, *, total: int | None = None, description: str | None = None) -> None:
        self.inner.update(total=total, description=description)
        self.total = total if total is not None else self.total
        self.description = description or self.description

    def close(self) -> None:
        self.inner.close()


def _pretrain_data(ws: Workspace, spec: RunSpec, reporter: Reporter, rd: RunDir):
    import numpy as np

    from divrob.recipes.manifest import load_manifest
    from divrob.sources import source_root
    from divrob.train.data import phase_images
    from divrob.train.loop import PhaseData

    rows = load_manifest(ws, spec.manifest_id)
    roots = {s: source_root(ws, s, reporter) for s in rows["source"].unique()}
    paths = [roots[s] / p for s, p in zip(rows["source"], rows["path"])]
    train = phase_images(paths, rows["label"].to_numpy(np.int64), spec.pretrain, ws.cache, training=True,
                         reporter=reporter, description=f"decoding manifest {spec.manifest_id[:8]}")
    check_unreadable(ws, rd, reporter, "pretrain", paths, train)
    return PhaseData(train=train, evals={})


def _finetune_data(ws: Workspace, spec: RunSpec, reporter: Reporter, rd: RunDir):
    from functools import partial

    from divrob.downstream import get_task, task_of_spec
    from divrob.train.data import phase_images
    from divrob.train.loop import PhaseData

    task = get_task(ws, task_of_spec(spec.downstream, spec.downstream_options), reporter)

    def dec(split: str):
        s = task.split(split)
        decoded = phase_images(s.paths, s.labels, spec.finetune, ws.cache, training=split == "train",
                               reporter=reporter, description=f"decoding {task.name} {split}")
        check_unreadable(ws, rd, reporter, f"finetune {split}", s.paths, decoded)
        return decoded

    evals = {s: dec(s) for s in task.eval_splits}
    # every evaluation split is also scored by the task's own metric (WILDS: the dataset's eval())
    scorers = {s: partial(task.score, s) for s in evals}
    return task.num_classes, PhaseData(train=dec("train"), evals=evals, scorers=scorers)


def execute_run(ws: Workspace, spec: RunSpec, reporter: Reporter = SILENT, *, claim_wait_s: float = 0.0) -> RunDir:
    """Run (or resume) one RunSpec to completion in this process (or as one rank of a DDP run).

    The run is claimed first (`divrob.runs.claim`; rank 0 claims for a DDP run): while another
    live process trains it, this waits up to `claim_wait_s`, then raises RunClaimed without
    touching the run directory."""
    from divrob.train.distributed import Dist

    dist = Dist.from_env()
    rd = RunDir.for_spec(ws.runs, spec, writer=dist.is_main)
    claim = claim_run(rd.path, wait_s=claim_wait_s) if dist.is_main else None
    try:
        if rd.is_finished:
            return rd
        if claim is not None:
            rd.prepare_resume()
        rd.set_status("running", pid=os.getpid(), world_size=dist.world)
        with rd.recording_failure():
            _execute(ws, spec, rd, reporter, dist)
        rd.set_status("finished")
        return rd
    finally:
        if claim is not None:
            claim.release()


def _execute(ws: Workspace, spec: RunSpec, rd: RunDir, reporter: Reporter, dist) -> None:
    import torch

    threads = torch.get_num_threads()
    if ws.config.compute.threads:
        torch.set_num_threads(ws.config.compute.threads)
    try:
        _on_device(ws, spec, rd, reporter, dist)
    finally:
        # a run inside a longer-lived process (inline in the TUI, a test) leaves its thread count
        torch.set_num_threads(threads)


def _on_device(ws: Workspace, spec: RunSpec, rd: RunDir, reporter: Reporter, dist) -> None:
    import torch

    device = pick_device(ws, dist)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: autotune once per shape
    dist.init(device.type)
    from divrob.runs.provenance import ProvenanceWriter

    if device.type == "cuda":
        from dataclasses import replace

        rd = replace(rd, sample_gpus=True)
    prov = ProvenanceWriter(rd.path, writer=dist.is_main)
    prov.start(spec, device, dist.world)
    try:
        _phases(ws, spec, rd, reporter, dist, device, prov)
        prov.finish()
    finally:
        dist.shutdown()


@contextmanager
def _timed(prov, phase: str):
    """Wall time (and GPU time) of one phase into the run's provenance, also when it fails."""
    t0 = time.time()
    try:
        yield
    finally:
        prov.phase(phase, t0, time.time())


def _phases(ws: Workspace, spec: RunSpec, rd: RunDir, reporter: Reporter, dist, device, prov) -> None:
    import torch

    from divrob.train.archs import build_model, replace_head
    from divrob.train.checkpoint import load_checkpoint, save_checkpoint
    from divrob.train.loop import train_phase

    start = "scratch" if spec.is_scratch else (spec.weights["name"] if spec.weights else spec.manifest_id[:8])
    label = f"{spec.arch} {start}"
    last = load_checkpoint(rd.checkpoints / "last.pt")
    in_finetune = last is not None and last.get("phase") == "finetune"
    pretrained_path = rd.checkpoints / PRETRAINED

    decoding = HeartbeatReporter(reporter, rd)  # a long first decode keeps the run's heartbeat
    if spec.manifest_id is not None and not in_finetune and not pretrained_path.exists():
        with dist.main_first():  # rank 0 fills the decode cache, the others then read it
            data = _pretrain_data(ws, spec, decoding, rd)
        torch.manual_seed(spec.seed)
        model = build_model(spec.arch, spec.pretrain_classes)
        rd.log(f"pretrain: {spec.arch} on manifest {spec.manifest_id} ({int(data.train.valid.sum())} images)")
        prov.manifest(len(data.train.valid), data.train.n_skipped)
        with _timed(prov, "pretrain"):
            train_phase(phase="pretrain", model=model, cfg=spec.pretrain, data=data, recorder=rd,
                        seed=spec.seed, device=device, reporter=reporter, label=label, dist=dist)
        if dist.is_main:
            save_checkpoint(pretrained_path, {"model": model.cpu().state_dict()})
        dist.barrier()  # nobody reads pretrained.pt before rank 0 has written it

    with dist.main_first():
        num_classes, data = _finetune_data(ws, spec, decoding, rd)
    torch.manual_seed(spec.seed)
    if spec.weights is not None:  # external weights instead of pre-training (divrob.train.weights)
        from divrob.train.weights import build_initial_model

        model = build_initial_model(spec.arch, spec.weights, num_classes, seed=spec.seed + 1,
                                    image_size=spec.finetune.image_size, load=not in_finetune)
        if not in_finetune:
            rd.log(f"weights: {spec.weights['source']} ({spec.weights['path']}, sha256 {spec.weights['sha256'][:12]})")
    elif spec.is_scratch:
        model = build_model(spec.arch, num_classes)
    else:
        model = build_model(spec.arch, spec.pretrain_classes)
        if not in_finetune:  # a resumed fine-tune loads its own checkpoint instead
            state = load_checkpoint(pretrained_path)
            if state is None:
                raise RunError(f"run {rd.run_id}: {pretrained_path} is missing; delete the run dir to start over")
            model.load_state_dict(state["model"])
        replace_head(model, num_classes, seed=spec.seed + 1)
    rd.log(f"finetune: {spec.arch} on {spec.downstream} ({int(data.train.valid.sum())} images)")
    with _timed(prov, "finetune"):
        train_phase(phase="finetune", model=model, cfg=spec.finetune, data=data, recorder=rd,
                    seed=spec.seed + 1, device=device, reporter=reporter, label=label, dist=dist)
