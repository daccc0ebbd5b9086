"""Pydantic models for recipes. Unknown keys are errors, so typos never pass silently."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SCRATCH = "scratch"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PhaseOverrides(_Strict):
    """Training overrides for one phase; anything unset takes the phase's default."""

    epochs: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=1)
    lr: float | None = Field(None, gt=0)
    momentum: float | None = Field(None, ge=0, lt=1)
    weight_decay: float | None = Field(None, ge=0)
    optimizer: Literal["sgd", "adam", "adamw"] | None = None
    lr_step: int | None = Field(None, ge=1, description="decay the lr every this many epochs")
    lr_gamma: float | None = Field(None, gt=0, le=1)
    image_size: int | None = Field(None, ge=16)
    workers: int | None = Field(None, ge=0)


class Study(_Strict):
    name: str = Field(min_length=1)
    downstream: Literal["iwildcam", "camtrap-sim"] = "iwildcam"
    archs: list[str] = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    pretrain: PhaseOverrides = Field(default_factory=PhaseOverrides)
    finetune: PhaseOverrides = Field(default_factory=PhaseOverrides)

    @field_validator("archs")
    @classmethod
    def _known_archs(cls, archs: list[str]) -> list[str]:
        from divrob.train.archs import ARCHS

        unknown = [a for a in archs if a not in ARCHS]
        if unknown:
            raise ValueError(f"unknown architecture(s) {unknown}; choose from {sorted(ARCHS)}")
        if len(set(archs)) != len(archs):
            raise ValueError("architectures are listed twice")
        return archs


class Distribution(_Strict):
    """One concrete (already sweep-expanded) pre-training distribution."""

    name: str = Field(min_length=1)
    source: str | None = None
    pretrain: bool = True
    total: int | None = Field(None, gt=0, description="images in total, spread evenly over classes")
    per_class: int | None = Field(None, gt=0, description="images per class")
    balance: Literal["per_class", "none"] = "per_class"
    replace: bool = Field(False, description="sample with replacement when a class has too few images")
    seed: int = Field(0, description="seed of the sampling (not of training)")
    classes: dict[str, Any] | None = None
    labels: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "Distribution":
        if self.is_scratch:
            return self
        if self.source is None:
            raise ValueError(
                f"distribution {self.name!r} has no source; set source = \"...\" "
                f"(or name it \"{SCRATCH}\" / pretrain = false for no pre-training)"
            )
        if self.total is not None and self.per_class is not None:
            raise ValueError("set either total or per_class, not both")
        return self

    @property
    def is_scratch(self) -> bool:
        return (not self.pretrain) or self.name == SCRATCH

    def identity(self) -> dict[str, Any]:
        """What determines the manifest's rows (the name does not)."""
        return self.model_dump(exclude={"name"})


class RawRecipe(_Strict):
    """A recipe as written: distributions may still hold sweep lists."""

    study: Study
    distribution: list[dict[str, Any]] = Field(min_length=1)
