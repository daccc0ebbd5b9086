"""A RunSpec is everything that determines a run's results; its hash is the run id."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from divrob.errors import RunError
from divrob.fileio import short_hash
from divrob.train.config import PhaseConfig

# 2: the data path follows its references (whole frames: WILDS's Resize((S, S)) for fine-tuning
# and evaluation, RandomResizedCrop over the whole original image for pre-training; version 1
# centre-cropped both), and precision is a setting. Runs trained before saw other pixels, so
# their ids must not match new specs.
SPEC_VERSION = 2
# Settings that change speed, never results, stay out of the run id.
_NOT_IDENTITY = ("workers", "compile", "checkpoint_minutes")


@dataclass(frozen=True)
class RunSpec:
    arch: str
    seed: int
    downstream: str
    finetune: PhaseConfig
    manifest_id: str | None = None  # None: no pre-training (scratch)
    pretrain_classes: int | None = None
    pretrain: PhaseConfig | None = None
    # the task's options its label does not spell (divrob.downstream.TaskRef.spec_options)
    downstream_options: dict[str, Any] = field(default_factory=dict)
    # external initial weights instead of pre-training (divrob.train.weights.resolve_weights):
    # {"source": as the recipe wrote it, "kind", "name", "path", "sha256"}; the run id takes the
    # kind and the file's sha256 alone, so other bytes are another run and a moved file is not
    weights: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        from divrob.archs import image_size_problem

        for phase, cfg in (("pretrain", self.pretrain), ("finetune", self.finetune)):
            problem = cfg is not None and image_size_problem(self.arch, cfg.image_size)
            if problem:
                raise RunError(f"{phase}: {problem} in the recipe's [study] {phase} settings")
        ft = self.finetune
        if ft.mode == "lp-ft" and (ft.lp_epochs or 0) >= ft.epochs:
            raise RunError(f"finetune: lp-ft needs lp_epochs ({ft.lp_epochs}) below epochs ({ft.epochs}); "
                           "raise epochs or lower lp_epochs in the recipe's [study] finetune settings")

    @property
    def is_scratch(self) -> bool:
        return self.manifest_id is None and self.weights is None

    def identity(self) -> dict[str, Any]:
        d = {
            "version": SPEC_VERSION,
            "arch": self.arch,
            "seed": self.seed,
            "downstream": self.downstream,
            "manifest_id": self.manifest_id,
            "pretrain_classes": self.pretrain_classes,
            "pretrain": _phase_identity(self.pretrain),
            "finetune": _phase_identity(self.finetune),
        }
        if self.downstream_options:  # absent for tasks without options: their runs keep their ids
            d["downstream_options"] = self.downstream_options
        if self.weights is not None:  # absent otherwise: runs without external weights keep their ids
            d["weights"] = {"kind": self.weights["kind"], "sha256": self.weights["sha256"]}
        return d

    @property
    def run_id(self) -> str:
        return short_hash(self.identity())

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["run_id"] = self.run_id
        d["version"] = SPEC_VERSION
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], any_version: bool = False) -> "RunSpec":
        """A spec as `to_dict` wrote it; one of an older SPEC_VERSION is refused, since running it
        now would feed other pixels than the run it names was trained on. `any_version` reads it
        anyway, for what only needs its fields (re-keying a legacy run keeps its own version)."""
        version = d.get("version", 1)
        if version != SPEC_VERSION and not any_version:
            raise RunError(
                f"run {d.get('run_id', '?')} was planned by spec version {version} (this divrob: "
                f"{SPEC_VERSION}, whose data path differs); it cannot be resumed: `divrob study run` "
                f"plans new runs, and its directory can be deleted"
            )
        pre = d.get("pretrain")
        return cls(
            arch=d["arch"],
            seed=int(d["seed"]),
            downstream=d["downstream"],
            finetune=PhaseConfig(**d["finetune"]),
            manifest_id=d.get("manifest_id"),
            pretrain_classes=d.get("pretrain_classes"),
            pretrain=PhaseConfig(**pre) if pre else None,
            downstream_options=d.get("downstream_options") or {},
            weights=d.get("weights"),
        )


def _phase_identity(cfg: PhaseConfig | None) -> dict[str, Any] | None:
    if cfg is None:
        return None
    d = {k: v for k, v in cfg.to_dict().items() if k not in _NOT_IDENTITY}
    d["decode_size"] = cfg.train_decode_size  # the default and its explicit value: one run
    if cfg.mode == "full":  # the default, left out so runs planned before modes existed keep their ids
        d.pop("mode")
        d.pop("lp_epochs")
    return d


def precision_summary(specs) -> str:
    """Each phase's precision over a set of specs, e.g. for `study plan`:
    "pretrain auto (bf16 on CUDA, fp32 on CPU), finetune fp16"."""
    from divrob.devices import precision_label

    by_phase: dict[str, set[str]] = {}
    for spec in specs:
        for phase, cfg in (("pretrain", spec.pretrain), ("finetune", spec.finetune)):
            if cfg is not None:
                by_phase.setdefault(phase, set()).add(cfg.precision)
    return ", ".join(f"{phase} {' / '.join(precision_label(p) for p in sorted(ps))}" for phase, ps in by_phase.items())
