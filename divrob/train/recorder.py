"""What the training loop reports to, as a small protocol: the loop never imports `divrob.runs`.

A run directory (`divrob.runs.rundir.RunDir`) is the recorder of real runs; `MemoryRecorder`
keeps everything in memory (benchmarks, library use)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


class PhaseRecorder(Protocol):
    """Where one phase of training writes its checkpoints, epoch results, progress and log."""

    @property
    def checkpoints(self) -> Path: ...

    def append_epoch(self, phase: str, epoch: int, metrics: dict[str, dict[str, float]], **extra: Any) -> bool: ...

    def set_progress(self, **progress: Any) -> None: ...

    def log(self, message: str) -> None: ...


@dataclass
class MemoryRecorder:
    """A recorder that keeps epochs, progress and log lines in lists; checkpoints go to a directory."""

    checkpoint_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="divrob-ckpt-")))
    epochs: list[dict[str, Any]] = field(default_factory=list)
    progress: dict[str, Any] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    @property
    def checkpoints(self) -> Path:
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        return self.checkpoint_dir

    def append_epoch(self, phase: str, epoch: int, metrics: dict[str, dict[str, float]], **extra: Any) -> bool:
        if any(e["phase"] == phase and e["epoch"] == epoch for e in self.epochs):
            return False
        self.epochs.append({"phase": phase, "epoch": epoch, "metrics": metrics, **extra})
        return True

    def set_progress(self, **progress: Any) -> None:
        self.progress.update(progress)

    def log(self, message: str) -> None:
        self.lines.append(message)
