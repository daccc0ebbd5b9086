"""The architectures a recipe may name, and the input sizes they accept. Torch-free, so recipe
validation can check them without importing the training code (`divrob.train.archs` builds them)."""

from __future__ import annotations

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
