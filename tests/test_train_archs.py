"""Every architecture builds and runs at the sizes recipes use; too-small sizes are refused
when the RunSpec is made, before any training."""

from __future__ import annotations

import pytest
import torch

from divrob.errors import RunError
from divrob.runs.spec import RunSpec
from divrob.archs import ARCHS, MIN_IMAGE_SIZE
from divrob.train.archs import build_model, replace_head
from divrob.train.config import finetune_config, pretrain_config


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.slow
def test_forward_at_demo_size_minimum_and_224(arch):
    torch.manual_seed(0)
    model = build_model(arch, 7)
    replace_head(model, 3, seed=1)
    smallest = max(16, MIN_IMAGE_SIZE.get(arch, 16))  # 16 px: the recipe schema's minimum
    sizes = sorted({smallest, max(smallest, 32), 224})  # the demo trains at 32 px
    with torch.no_grad():
        model.eval()
        for size in sizes:
            assert model(torch.zeros(1, 3, size, size)).shape == (1, 3), size
    # one training step at the smallest accepted size (BatchNorm in training mode, batch 2)
    model.train()
    size = sizes[0]
    loss = model(torch.randn(2, 3, size, size)).logsumexp(1).mean()
    loss.backward()
    if arch in MIN_IMAGE_SIZE:  # the minimum is real: one pixel less fails inside torchvision
        with pytest.raises(RuntimeError), torch.no_grad():
            model.eval()(torch.zeros(1, 3, MIN_IMAGE_SIZE[arch] - 1, MIN_IMAGE_SIZE[arch] - 1))


def test_too_small_image_size_is_refused_at_spec_time():
    fine = finetune_config("alexnet", {"image_size": 32})
    with pytest.raises(RunError, match=r"finetune: AlexNet needs image_size >= 63 px \(got 32\)"):
        RunSpec(arch="alexnet", seed=0, downstream="camtrap-sim", finetune=fine)
    with pytest.raises(RunError, match="pretrain: DenseNet-121 needs image_size >= 29"):
        RunSpec(arch="densenet121", seed=0, downstream="camtrap-sim", manifest_id="m", pretrain_classes=2,
                pretrain=pretrain_config("densenet121", {"image_size": 16}),
                finetune=finetune_config("densenet121", {"image_size": 64}))
    RunSpec(arch="resnet18", seed=0, downstream="camtrap-sim", finetune=finetune_config("resnet18", {"image_size": 16}))


def test_speed_settings_stay_out_of_the_run_id():
    base = RunSpec(arch="resnet18", seed=0, downstream="camtrap-sim", finetune=finetune_config("resnet18"))
    fast = RunSpec(arch="resnet18", seed=0, downstream="camtrap-sim",
                   finetune=finetune_config("resnet18", {"compile": True, "checkpoint_minutes": 0}))
    assert fast.run_id == base.run_id
    assert RunSpec.from_dict(fast.to_dict()) == fast
    # a spec.json written before these settings existed still loads, with their defaults
    old = base.to_dict()
    for key in ("compile", "checkpoint_minutes"):
        del old["finetune"][key]
    assert RunSpec.from_dict(old) == base
