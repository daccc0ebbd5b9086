"""torchvision architectures by name, with their classification head swapped for our classes.

This module must stay importable without torch (recipe validation uses ARCHS).
"""

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
}

# The smallest square input each architecture accepts (measured with torchvision): below it a
# pooling layer gets an empty feature map. Architectures not listed accept any recipe size.
MIN_IMAGE_SIZE: dict[str, int] = {"alexnet": 63, "densenet121": 29}


def image_size_problem(arch: str, size: int) -> str | None:
    """Why `arch` cannot train at `size` px, or None if it can (torch-free, for validation)."""
    need = MIN_IMAGE_SIZE.get(arch, 1)
    if size < need:
        return f"{ARCHS.get(arch, arch)} needs image_size >= {need} px (got {size}); raise image_size"
    return None


def build_model(arch: str, num_classes: int):
    """A randomly initialised torchvision model with a `num_classes`-way head."""
    import torchvision

    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(ARCHS)}")
    return getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)


def head(model):
    """The final linear layer (the one fine-tuning replaces), as (parent module, attribute)."""
    import torch.nn as nn

    for parent_name in ("fc", "classifier", "head"):
        layer = getattr(model, parent_name, None)
        if isinstance(layer, nn.Linear):
            return model, parent_name
        if isinstance(layer, nn.Sequential):
            for i in reversed(range(len(layer))):
                if isinstance(layer[i], nn.Linear):
                    return layer, str(i)
    raise ValueError(f"cannot find the classification head of {type(model).__name__}")


def replace_head(model, num_classes: int, seed: int):
    """Swap the head for a freshly initialised `num_classes`-way linear layer."""
    import torch
    import torch.nn as nn

    parent, attr = head(model)
    old = parent[int(attr)] if attr.isdigit() else getattr(parent, attr)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        new = nn.Linear(old.in_features, num_classes)
    if attr.isdigit():
        parent[int(attr)] = new
    else:
        setattr(parent, attr, new)
    return model
