"""A run's status: one typed model, written by the run into its `status.json` and read back
through `read_status` by the manager, `divrob jobs`, the TUI and the tests.

On disk it is one flat JSON object (the run's fields, then the progress fields at the top level,
the progress time as `progress_updated`); absent fields are None. Readers ignore keys they do not
know, so a newer writer's additions (claims, GPU samples, ...) never break an older reader, and a
new field is one attribute here plus its writer.
"""

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, get_args

from divrob.fileio import write_json_atomic
from divrob.states import STATES


@dataclass(frozen=True)
class Progress:
    """Where a running phase is. `epoch` is the epoch in progress (1-based) with `step` of its
    `steps_per_epoch` steps done, so an epoch counts as done only when step == steps_per_epoch."""

    phase: str | None = None
    epoch: int | None = None
    epochs: int | None = None  # of this phase
    step: int | None = None
    steps_per_epoch: int | None = None
    images_per_s: float | None = None
    updated: float | None = None  # when the job last reported progress
    gpu_util: float | None = None  # percent, mean over the job's own GPUs (NVML; None: no GPU or no NVML)
    gpu_mem: int | None = None  # MiB used on the job's own GPUs, summed

    @property
    def epochs_done(self) -> float | None:
        """Epochs of this phase done, fractions of the epoch in progress included."""
        if self.epoch is None:
            return None
        if self.step is not None and self.steps_per_epoch:
            return self.epoch - 1 + min(1.0, self.step / self.steps_per_epoch)
        return float(self.epoch - 1)  # no step count: the epoch in progress is not done

    def run_fraction(self, pretrain_epochs: int, finetune_epochs: int) -> float | None:
        """The fraction of a whole run (pre-training then fine-tuning) done."""
        done = self.epochs_done
        total = pretrain_epochs + finetune_epochs
        if done is None or total <= 0:
            return None
        before = pretrain_epochs if self.phase == "finetune" else 0
        return min(1.0, (before + done) / total)

    def label(self) -> str:
        """'ft 2/6' or 'pre 3/90': the phase and the epoch in progress."""
        if self.epoch is None:
            return ""
        short = {"pretrain": "pre", "finetune": "ft"}.get(self.phase or "", self.phase or "")
        return f"{short} {self.epoch}/{self.epochs}" if self.epochs else f"{short} {self.epoch}"


@dataclass(frozen=True)
class RunStatus:
    state: str = "queued"
    reason: str | None = None
    pid: int | None = None  # of the process that runs it, on `host`
    host: str | None = None
    world_size: int | None = None
    started: float | None = None  # first time it ran
    updated: float | None = None  # last change of anything here
    unreadable: int | None = None  # images that could not be read (skipped), over every split decoded
    images: int | None = None  # images of those splits
    progress: Progress = field(default_factory=Progress)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "progress" and v is not None}
        for k, v in asdict(self.progress).items():
            if v is not None:
                out[_progress_key(k)] = v
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunStatus":
        """Raises ValueError when a field has the wrong type or the state is unknown."""
        progress = Progress(**{f.name: _typed(d, _progress_key(f.name), f) for f in fields(Progress)})
        values = {f.name: _typed(d, f.name, f) for f in fields(cls) if f.name != "progress"}
        values["state"] = values["state"] or "queued"
        if values["state"] not in STATES:
            raise ValueError(f"unknown state {values['state']!r}")
        return cls(**values, progress=progress)


def _progress_key(name: str) -> str:
    return "progress_updated" if name == "updated" else name


def _typed(d: dict[str, Any], key: str, f) -> Any:
    value = d.get(key)
    if value is None:
        return None
    kinds = [k for k in get_args(f.type) if k is not NoneType] if isinstance(f.type, UnionType) else [f.type]
    kind = kinds[0]
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else kind):
        raise ValueError(f"{key} = {value!r}, expected {kind.__name__}")
    return float(value) if kind is float else value


def read_status(path: Path) -> RunStatus:
    """The one reader of a run's status.json: queued when there is none yet. An unreadable file
    (not written by divrob: its writes are atomic) reads as queued with the reason."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return RunStatus()
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return RunStatus.from_dict(data)
    except ValueError as e:
        return RunStatus(reason=f"unreadable {path}: {e}")


def write_status(path: Path, status: RunStatus) -> None:
    write_json_atomic(path, status.to_dict())


def with_progress(status: RunStatus, now: float, **progress: Any) -> RunStatus:
    """The status of a running run that reported progress (a partial report keeps the rest)."""
    return replace(status, state="running", updated=now, progress=replace(status.progress, updated=now, **progress))
