"""Phase configs: pre-training defaults follow PyTorch's ImageNet reference recipe, fine-tuning
defaults follow WILDS's iWildCam recipe; a recipe overrides any value."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class PhaseConfig:
    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    momentum: float
    weight_decay: float
    lr_step: int | None  # StepLR period in epochs; None = constant lr
    lr_gamma: float
    image_size: int
    crop_scale: float = 0.08  # smallest RandomResizedCrop area fraction (pre-training augmentation)
    # RandomResizedCrop over the whole frame + horizontal flip on the training images; off: the
    # whole frame resized to image_size square (WILDS's Resize((S, S)), its train and eval input)
    augment: bool = False
    # side of the square every training frame is decoded to once (the cache); None: image_size
    # without augmentation (exactly WILDS's input), 2 x image_size with it (see train/data.py)
    decode_size: int | None = None
    precision: str = "auto"  # bf16 | fp16 | fp32; auto: bf16 on CUDA, fp32 on CPU (divrob.devices)
    # which parameters train (fine-tuning): "full"; "linear" (frozen backbone, BatchNorm statistics
    # included: a linear probe); "lp-ft" (linear for the first lp_epochs epochs, then full)
    mode: str = "full"
    lp_epochs: int | None = None  # lp-ft only
    # Settings below change speed or bookkeeping, never results: they stay out of the run id.
    workers: int = 4  # threads copying each batch out of the cache
    compile: bool = False  # torch.compile the model (CUDA only; minutes of warm-up)
    checkpoint_minutes: float = 10.0  # also checkpoint inside an epoch this often; 0 = every step

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def linear_at(self, epoch: int) -> bool:
        """Whether epoch `epoch` (1-based) trains the head alone (the backbone frozen)."""
        return self.mode == "linear" or (self.mode == "lp-ft" and epoch <= (self.lp_epochs or 0))

    @property
    def train_decode_size(self) -> int:
        """The cache side of this phase's training images (evaluation images: image_size)."""
        if self.decode_size:
            return self.decode_size
        return 2 * self.image_size if self.augment else self.image_size


def _apply(base: PhaseConfig, overrides: dict[str, Any]) -> PhaseConfig:
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def pretrain_config(arch: str, overrides: dict[str, Any] | None = None) -> PhaseConfig:
    """torchvision references/classification: SGD 0.9, lr 0.1 x batch/256 (AlexNet 0.01),
    wd 1e-4, lr x 0.1 every 30 epochs, 90 epochs, RandomResizedCrop(224) + flip."""
    overrides = dict(overrides or {})
    batch = overrides.get("batch_size") or 256
    base_lr = 0.01 if arch == "alexnet" else 0.1
    base = PhaseConfig(
        epochs=90, batch_size=batch, lr=base_lr * batch / 256, optimizer="sgd", momentum=0.9,
        weight_decay=1e-4, lr_step=30, lr_gamma=0.1, image_size=224, augment=True,
    )
    return _apply(base, overrides)


def finetune_config(arch: str, overrides: dict[str, Any] | None = None) -> PhaseConfig:
    """WILDS iWildCam: Adam lr 3e-5, no weight decay, batch 16, 12 epochs, 448 px, no scheduler, and
    no augmentation: `image_base` = Resize((448, 448)) of the whole frame for train and eval."""
    base = PhaseConfig(
        epochs=12, batch_size=16, lr=3e-5, optimizer="adam", momentum=0.9,
        weight_decay=0.0, lr_step=None, lr_gamma=1.0, image_size=448,
    )
    cfg = _apply(base, dict(overrides or {}))
    if cfg.mode == "lp-ft" and cfg.lp_epochs is None:  # documented default: half the epochs, at least 1
        cfg = replace(cfg, lp_epochs=max(1, cfg.epochs // 2))
    if cfg.mode != "lp-ft" and cfg.lp_epochs is not None:
        cfg = replace(cfg, lp_epochs=None)
    return cfg
