"""The architectures a recipe may name, and the input sizes they accept. Torch-free, so recipe
validation can check them without importing the training code (`divrob.train.archs` builds them)."""

from __future__ import annotations

from dataclasses import dataclass

ARCHS: dict[str, str] = {
    "resnet18": "ResNet-18",
    "resnet34": "ResNet-34",
    "resnet50": "ResNet-50",
    "resnet101": "ResNet-101",
    "resnext50_32x4d": "ResNeXt-50 32x4d",
    "densenet121": "DenseNet-121",
    "alexnet": "AlexNet",
    "mobilenet_v3_small": "MobileNetV3-Small",
    "mobilenet_v3_large": "MobileNetV3-Large",
    "tinycnn": "TinyCNN (4 conv layers, for the CPU demo)",
}

# The smallest square input each architecture accepts (measured with torchvision): below it a
# pooling layer gets an empty feature map. Architectures not listed accept any recipe size.
MIN_IMAGE_SIZE: dict[str, int] = {"alexnet": 63, "densenet121": 29}


def image_size_problem(arch: str, size: int) -> str | None:
    """Why `arch` cannot train at `size` px, or None if it can."""
    need = MIN_IMAGE_SIZE.get(arch, 1)
    if size < need:
        return f"{ARCHS.get(arch, arch)} needs image_size >= {need} px (got {size}); raise image_size"
    return None


# External initial weights a distribution may start from instead of pre-training
# (`pretrain = { weights = "..." }` in a recipe); `divrob.train.weights` loads them.
WEIGHT_SOURCES: dict[str, str] = {
    "PATH": "a local PyTorch state dict (.pt/.pth/.bin) or .safetensors file for each study arch; "
            "relative to the workspace, or @NAME for a path under [datasets.weights] in divrob.toml",
    "torchvision:WEIGHTS": "torchvision's published weights from its local cache (never downloaded at run time): "
                           "IMAGENET1K_V1 / DEFAULT (each arch's own), or one enum, e.g. ResNet50_Weights.IMAGENET1K_V1",
    "open_clip:ARCH:PATH": "a CLIP image tower (open-clip-torch, the `clip` extra) from a local checkpoint, "
                           "e.g. open_clip:RN50:@clip-yfcc15m; its runs use that tower, not the study archs",
}
WEIGHT_KINDS = ("file", "torchvision", "open_clip")
CLIP_ARCH_PREFIX = "open_clip:"


@dataclass(frozen=True)
class WeightsRef:
    """A parsed weights reference: `kind` "file" (target: a path), "torchvision" (target: an enum
    name, with or without its class) or "open_clip" (target: a path, clip_arch: the model name)."""

    text: str
    kind: str
    target: str
    clip_arch: str | None = None

    def model_arch(self, arch: str) -> str:
        """The architecture its runs train: a CLIP tower's own, otherwise the study's `arch`."""
        return f"{CLIP_ARCH_PREFIX}{self.clip_arch}" if self.kind == "open_clip" else arch


def parse_weights(text: str) -> WeightsRef:
    """Parse a `weights = "..."` value (syntax only; files are looked up when a study is planned)."""
    text = text.strip()
    if not text:
        raise ValueError("weights is empty; give a file, torchvision:<WeightsEnum> or open_clip:<arch>:<path>")
    if text.startswith("torchvision:"):
        name = text.split(":", 1)[1]
        parts = name.split(".")
        if not name or len(parts) > 2 or not all(p.isidentifier() for p in parts):
            raise ValueError(f"{text!r}: expected torchvision:IMAGENET1K_V1 (each arch's own) or "
                             "torchvision:<Enum>.<NAME>, e.g. torchvision:ResNet50_Weights.IMAGENET1K_V1")
        return WeightsRef(text, "torchvision", name)
    if text.startswith("open_clip:"):
        parts = text.split(":", 2)
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise ValueError(f"{text!r}: expected open_clip:<arch>:<checkpoint path>, e.g. open_clip:RN50:/ckpt/yfcc15m.pt")
        return WeightsRef(text, "open_clip", parts[2], clip_arch=parts[1])
    return WeightsRef(text, "file", text)
