"""torchvision architectures by name (the catalogue is `divrob.archs`), with their classification
head swapped for our classes."""

from __future__ import annotations

from divrob.archs import ARCHS


def build_model(arch: str, num_classes: int):
    """A randomly initialised torchvision model (or divrob's `tinycnn`) with a `num_classes`-way head."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(ARCHS)}")
    if arch == "tinycnn":
        return tiny_cnn(num_classes)
    import torchvision

    return getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)


def tiny_cnn(num_classes: int, width: int = 16):
    """Four 3x3 conv-BN-ReLU layers (widths w, 2w, 4w, 8w; the last three stride 2), global
    average pooling and a linear head `fc`: about a tenth of ResNet-18's compute at 32 px, so the
    offline demo trains a dozen models in minutes on two CPU cores."""
    from torch import nn

    class TinyCNN(nn.Module):
        def __init__(self):
            super().__init__()
            layers, c_in = [], 3
            for i, c_out in enumerate((width, 2 * width, 4 * width, 8 * width)):
                layers += [nn.Conv2d(c_in, c_out, 3, 1 if i == 0 else 2, 1, bias=False), nn.BatchNorm2d(c_out),
                           nn.ReLU(inplace=True)]
                c_in = c_out
            self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.fc = nn.Linear(c_in, num_classes)

        def forward(self, x):
            return self.fc(self.features(x))

    return TinyCNN()


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


def head_module(model):
    """The classification head itself (the layer `replace_head` swaps)."""
    parent, attr = head(model)
    return parent[int(attr)] if attr.isdigit() else getattr(parent, attr)


def head_name(model) -> str:
    """The head's module name in `model.state_dict()` keys, e.g. "fc" or "classifier.3"."""
    layer = head_module(model)
    return next(name for name, m in model.named_modules() if m is layer)


def set_linear_probe(model, linear: bool) -> None:
    """Freeze every parameter but the head's (`linear`), or let all train. Only the parameters: the
    caller keeps the frozen layers in eval mode while training (`freeze_backbone_stats`)."""
    keep = {id(p) for p in head_module(model).parameters()}
    for p in model.parameters():
        p.requires_grad_(not linear or id(p) in keep)


def freeze_backbone_stats(model) -> None:
    """Eval mode for all but the head: BatchNorm statistics and dropout of frozen features stay fixed."""
    model.train(False)
    head_module(model).train()
