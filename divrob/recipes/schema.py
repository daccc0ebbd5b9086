"""Pydantic models for recipes. Unknown keys are errors, so typos never pass silently."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from divrob.devices import PRECISIONS
from divrob.sources import fractaldb_1k as fdb

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
    crop_scale: float | None = Field(None, gt=0, le=1, description="smallest RandomResizedCrop area (pre-training)")
    augment: bool | None = Field(None, description="RandomResizedCrop + flip (default: pre-training yes, fine-tuning no)")
    decode_size: int | None = Field(None, ge=16, description="cached frame side (default: image_size, 2x with augment)")
    precision: Literal[PRECISIONS] | None = Field(None, description="bf16 | fp16 | fp32 | auto (bf16 on CUDA, fp32 on CPU)")
    workers: int | None = Field(None, ge=0)
    compile: bool | None = Field(None, description="torch.compile the model (CUDA)")
    checkpoint_minutes: float | None = Field(None, ge=0, description="checkpoint inside an epoch this often")


FINETUNE_MODES = ("full", "linear", "lp-ft")


class FinetuneOverrides(PhaseOverrides):
    """Fine-tuning overrides, plus which parameters train: `full` (every layer; the default),
    `linear` (a linear probe: the backbone frozen, BatchNorm statistics included, only the new head
    trains) or `lp-ft` (a linear probe for `lp_epochs` epochs, then every layer; Kumar et al. 2022)."""

    mode: Literal[FINETUNE_MODES] | None = Field(None, description="full | linear | lp-ft (default full)")
    lp_epochs: int | None = Field(None, ge=1, description="lp-ft: linear-probe epochs before full fine-tuning "
                                  "(default: half the epochs, at least 1)")

    @model_validator(mode="after")
    def _lp_epochs_needs_lp_ft(self) -> "FinetuneOverrides":
        if self.lp_epochs is not None and self.mode != "lp-ft":
            raise ValueError('lp_epochs only applies to mode = "lp-ft"')
        if self.lp_epochs is not None and self.epochs is not None and self.lp_epochs >= self.epochs:
            raise ValueError(f"lp_epochs ({self.lp_epochs}) must be below epochs ({self.epochs}): "
                             "lp-ft fine-tunes every layer after the linear probe")
        return self


class Study(_Strict):
    name: str = Field(min_length=1)
    downstream: str | dict[str, Any] | list[str | dict[str, Any]] = Field(
        "iwildcam", description='a task ("iwildcam", "wilds:fmow", "domainnet:infograph", "folder:NAME", '
        '"camtrap-sim"), a table { task = "domainnet", id_domain = ..., ood_domains = [...] }, or a list '
        "of them (every distribution is fine-tuned on each)")
    archs: list[str] = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    pretrain: PhaseOverrides = Field(default_factory=PhaseOverrides)
    finetune: FinetuneOverrides = Field(default_factory=FinetuneOverrides)

    @field_validator("archs")
    @classmethod
    def _known_archs(cls, archs: list[str]) -> list[str]:
        from divrob.archs import ARCHS

        unknown = [a for a in archs if a not in ARCHS]
        if unknown:
            raise ValueError(f"unknown architecture(s) {unknown}; choose from {sorted(ARCHS)}")
        if len(set(archs)) != len(archs):
            raise ValueError("architectures are listed twice")
        return archs

    @field_validator("downstream")
    @classmethod
    def _known_tasks(cls, value):
        from divrob.downstream import parse_task

        many = isinstance(value, list)
        items = value if many else [value]
        if not items:
            raise ValueError("an empty list; name at least one task")
        labels = {}
        for i, item in enumerate(items):
            try:
                label = parse_task(item).label
            except ValueError as e:
                raise ValueError(f"[{i}] {e}" if many else str(e)) from None
            if label in labels:
                raise ValueError(f"[{i}] {label!r} is already [{labels[label]}]")
            labels[label] = i
        return value

    @property
    def tasks(self) -> list:
        """The downstream tasks (`divrob.downstream.TaskRef`), in the recipe's order."""
        from divrob.downstream import parse_task

        return [parse_task(v) for v in (self.downstream if isinstance(self.downstream, list) else [self.downstream])]

    @property
    def downstream_label(self) -> str:
        return ", ".join(t.label for t in self.tasks)

    @model_validator(mode="after")
    def _sizes_fit_archs(self) -> "Study":
        from divrob.archs import image_size_problem

        for phase in ("pretrain", "finetune"):
            sizes = ({self.pretrain.image_size or 224} if phase == "pretrain" else
                     {self.finetune.image_size or t.finetune_defaults().get("image_size", 448) for t in self.tasks})
            for arch in self.archs:
                for size in sorted(sizes):
                    problem = image_size_problem(arch, size)
                    if problem:
                        raise ValueError(f"{phase}.image_size: {problem}")
        return self


class ClassSelector(_Strict):
    """Which source classes a distribution keeps (applied in this order)."""

    most_frequent: int | None = Field(None, gt=0, description="the k classes with the most images")
    under: str | None = Field(None, description="ImageNet classes under this WordNet synset, e.g. animal.n.01")
    not_under: str | None = Field(None, description="ImageNet classes not under this synset")
    wnids: list[str] | None = Field(None, min_length=1, description="exactly these ImageNet classes")
    breeds: str | None = Field(None, description="a superclass map, e.g. paper-16x12; label = superclass")
    supercategories: list[str] | None = Field(None, min_length=1, description="iNat supercategories to keep")
    largest_supercategories: int | None = Field(None, gt=0, description="the k iNat supercategories with most images")
    subclass_fraction: float | None = Field(None, gt=0, le=1, description="keep this fraction of each superclass's subclasses (nested)")
    random: int | None = Field(None, gt=0, description="k classes drawn at random (nested across k)")

    @model_validator(mode="after")
    def _consistent(self) -> "ClassSelector":
        if self.under and self.not_under:
            raise ValueError("set either under or not_under, not both")
        grouped = self.breeds or self.supercategories or self.largest_supercategories
        if self.subclass_fraction is not None and not grouped:
            raise ValueError("subclass_fraction needs breeds, supercategories or largest_supercategories")
        if self.supercategories and self.largest_supercategories:
            raise ValueError("set either supercategories or largest_supercategories, not both")
        return self


class LabelMap(_Strict):
    """How source classes are relabelled (coarser labels)."""

    wordnet_depth: int | None = Field(None, ge=0, description="contract ImageNet labels to this WordNet depth")
    supercategory: bool = Field(False, description="label iNat images by their supercategory")

    @model_validator(mode="after")
    def _one(self) -> "LabelMap":
        if self.wordnet_depth is not None and self.supercategory:
            raise ValueError("set either wordnet_depth or supercategory, not both")
        return self


class PretrainWeights(_Strict):
    """Start from external weights instead of pre-training (`divrob models` lists the forms)."""

    weights: str = Field(description='a file (.pt/.pth/.safetensors, or @NAME from [datasets.weights]), '
                         '"torchvision:IMAGENET1K_V1" or "open_clip:<arch>:<checkpoint>"')

    @field_validator("weights")
    @classmethod
    def _parses(cls, value: str) -> str:
        from divrob.archs import parse_weights

        parse_weights(value)
        return value


class Distribution(_Strict):
    """One concrete (already sweep-expanded) pre-training distribution."""

    name: str = Field(min_length=1)
    source: str | dict[str, float] | None = Field(
        None, description='a source name, or a mixture {"imagenet" = 0.5, "inat2017" = 0.5} (needs total)'
    )
    pretrain: bool | PretrainWeights = Field(
        True, description='false: no pre-training; { weights = "..." }: start from external weights instead')
    total: int | None = Field(None, gt=0, description="images in total, spread evenly over classes")
    per_class: int | None = Field(None, gt=0, description="images per class")
    balance: Literal["per_class", "none"] = "per_class"
    replace: bool = Field(False, description="sample with replacement when a class has too few images")
    seed: int = Field(0, description="seed of the sampling (not of training)")
    classes: ClassSelector | None = None
    labels: LabelMap | None = None

    @field_validator("pretrain", mode="before")
    @classmethod
    def _pretrain_form(cls, value):
        """One clear message for a table (not pydantic's one per union member)."""
        if isinstance(value, dict):
            from pydantic import ValidationError

            try:
                return PretrainWeights.model_validate(value)
            except ValidationError as e:
                err = e.errors()[0]
                where = ".".join(str(p) for p in err["loc"])
                raise ValueError(f"{where + ': ' if where else ''}{err['msg'].removeprefix('Value error, ')}") from None
        if not isinstance(value, bool):
            raise ValueError('expected true, false or { weights = "..." }')
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "Distribution":
        if self.weights is not None and self.name == SCRATCH:
            raise ValueError(f'"{SCRATCH}" means no pre-training; give the weights distribution another name')
        if self.is_scratch:
            return self
        if self.weights is not None:
            set_keys = [k for k in ("source", "total", "per_class", "classes", "labels") if getattr(self, k) is not None]
            if set_keys:
                raise ValueError(f"distribution {self.name!r} starts from pretrain.weights, so it samples no images: "
                                 f"remove {', '.join(set_keys)}")
            return self
        if self.source is None:
            raise ValueError(
                f"distribution {self.name!r} has no source; set source = \"...\" "
                f"(or name it \"{SCRATCH}\" / pretrain = false for no pre-training)"
            )
        if self.total is not None and self.per_class is not None:
            raise ValueError("set either total or per_class, not both")
        if isinstance(self.source, dict):
            if not self.source:
                raise ValueError("a mixture needs at least one source")
            if any(w <= 0 for w in self.source.values()):
                raise ValueError("mixture weights must be positive")
            if self.total is None:
                raise ValueError("a mixture of sources needs total = N (split by the weights)")
        return self

    @property
    def source_label(self) -> str | None:
        """The source as one string for tables: a name, or `a+b` for a mixture."""
        return "+".join(self.sources) or None

    @property
    def sources(self) -> list[str]:
        if self.source is None:
            return []
        return sorted(self.source) if isinstance(self.source, dict) else [self.source]

    @property
    def is_scratch(self) -> bool:
        return self.pretrain is False or self.name == SCRATCH

    @property
    def weights(self) -> str | None:
        """The external weights it starts from, or None (pre-trained by divrob, or scratch)."""
        return self.pretrain.weights if isinstance(self.pretrain, PretrainWeights) else None

    def run_archs(self, study_archs: list[str]) -> list[str]:
        """The architectures its runs train: the study's, except that a CLIP checkpoint
        (open_clip:<arch>:<path>) brings its own tower, `open_clip:<arch>`, and trains only that."""
        from divrob.archs import parse_weights

        if self.weights is not None and parse_weights(self.weights).kind == "open_clip":
            return [parse_weights(self.weights).model_arch("")]
        return list(study_archs)

    @property
    def builds_manifest(self) -> bool:
        """Whether divrob samples and pre-trains on it (not scratch, not external weights)."""
        return not self.is_scratch and self.weights is None

    def summary(self) -> dict[str, str]:
        """Short text per column for tables (CLI and TUI): source, size, classes, labels."""

        def pairs(model) -> str:
            if model is None:
                return "-"
            values = model.model_dump(exclude_none=True, exclude_defaults=True)
            return ", ".join(f"{k}={v}" for k, v in values.items()) or "-"

        if self.is_scratch:
            return {"source": "-", "size": "-", "classes": "-", "labels": "-"}
        if self.weights is not None:
            return {"source": f"weights {self.weights}", "size": "-", "classes": "-", "labels": "-"}
        size = f"{self.total} total" if self.total else (f"{self.per_class}/class" if self.per_class else "all")
        if isinstance(self.source, dict):
            source = " + ".join(f"{s} x{w:g}" for s, w in self.source.items())
        else:
            source = self.source or "-"
        return {"source": source, "size": size, "classes": pairs(self.classes), "labels": pairs(self.labels)}

    def identity(self) -> dict[str, Any]:
        """What determines the manifest's rows (the name does not)."""
        return self.model_dump(exclude={"name"}, exclude_none=True)


class FractalDBGen(_Strict):
    """How to generate the `fractaldb` source if the workspace lacks it (`divrob generate fractaldb`).
    Defaults: FractalDB-1k as Kataoka et al.'s exe.sh made it (divrob.sources.fractaldb_1k)."""

    categories: int = Field(fdb.CATEGORIES, gt=0)
    instances: int = Field(fdb.INSTANCES, gt=0)
    size: int = Field(fdb.SIZE, ge=32)
    seed: int = Field(0, ge=0)
    points: int = Field(fdb.RENDER_POINTS, ge=1000, description="chaos-game points per image")
    weight_step: float = Field(fdb.WEIGHT_STEP, gt=0, lt=0.5, description="weights 1 ± s, 1 ± 2s")


class DiffusionGen(_Strict):
    """How to generate the `diffusion` source if the workspace lacks it (`divrob generate diffusion`)."""

    model: str = Field(min_length=1, description="a local diffusers model directory or a cached hub id")
    classes: str = Field("imagenet", description='"imagenet" or a text file of class names')
    per_class: int | Literal["imagenet"] = Field(
        150, description='images per class, or "imagenet": ImageNet\'s own per-class counts (1,281,167 in all)')
    steps: int = Field(50, gt=0)
    guidance: float = Field(7.5, ge=0)
    size: int = Field(512, ge=8)
    seed: int = Field(0, ge=0)
    batch: int = Field(8, gt=0, description="images per pipeline call (speed only)")


    @field_validator("per_class")
    @classmethod
    def _positive(cls, v):
        if isinstance(v, int) and v < 1:
            raise ValueError("must be a positive number of images, or \"imagenet\"")
        return v

    @model_validator(mode="after")
    def _imagenet_counts_need_imagenet_classes(self) -> "DiffusionGen":
        if self.per_class == "imagenet" and self.classes != "imagenet":
            raise ValueError('per_class = "imagenet" copies ImageNet\'s per-class counts: it needs classes = "imagenet"')
        return self


class Generate(_Strict):
    fractaldb: FractalDBGen | None = None
    diffusion: DiffusionGen | None = None


class RawRecipe(_Strict):
    """A recipe as written: distributions may still hold sweep lists."""

    study: Study
    generate: Generate = Field(default_factory=Generate)
    distribution: list[dict[str, Any]] = Field(min_length=1)
