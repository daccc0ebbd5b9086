"""External initial weights: a run that starts from a published or local checkpoint instead of
pre-training (`pretrain = { weights = "..." }`; the forms are `divrob.archs.WEIGHT_SOURCES`).

Planning resolves a reference to one file on this machine and its sha256 (`resolve_weights`), which
the run spec records; the run loads that file (`build_initial_model`), checking that its bytes are
still the ones planned. Nothing is ever downloaded: torchvision's weights come from torch's hub
cache, CLIP towers from a local open_clip checkpoint."""

from __future__ import annotations

import os
import pickle
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from divrob.archs import parse_weights
from divrob.errors import WeightsError
from divrob.fileio import sha256_file
from divrob.workspace import Workspace

TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
SAFETENSORS_SUFFIX = ".safetensors"
CLIP_EXTRA = "pip install 'divrob[clip]' (or pip install open-clip-torch)"
# OpenAI CLIP's input normalisation (open_clip.constants), applied inside the CLIP classifier to
# the ImageNet-normalised batches the data path gives every model.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_SHOWN = 5  # keys listed per kind of mismatch


def resolve_weights(ws: Workspace, text: str, arch: str) -> dict[str, Any]:
    """The file behind a weights reference for `arch`, as a run spec records it:
    {"source", "kind", "name", "path", "sha256"}. Errors (WeightsError) say where the file should be."""
    ref = parse_weights(text)
    if ref.kind == "torchvision":
        weights = torchvision_weights(ref.target, arch)
        path = torchvision_cache_path(weights)
        name = f"{type(weights).__name__}.{weights.name}"
        if not path.is_file():
            raise WeightsError(
                f"torchvision weights {name} are not in torch's cache: put the file {weights.url} at {path} "
                f"(fetch it where there is network, e.g. curl -L -o {path} {weights.url}; or point TORCH_HOME at a "
                f"directory holding hub/checkpoints/{path.name}); divrob never downloads weights at run time")
    else:
        path = _local_path(ws, ref.target, text)
        name = ref.clip_arch if ref.kind == "open_clip" else path.name
        if ref.kind == "open_clip":
            _check_clip_arch(ref.clip_arch)
        elif not path.name.endswith((*TORCH_SUFFIXES, SAFETENSORS_SUFFIX)):
            raise WeightsError(f"weights {path}: expected a PyTorch state dict ({', '.join(TORCH_SUFFIXES)}) "
                               f"or a {SAFETENSORS_SUFFIX} file")
    sha256 = sha256_file(path)
    if ref.kind == "file":
        check_file_fits(path, arch, sha256)
    return {"source": text, "kind": ref.kind, "name": name, "path": str(path), "sha256": sha256}


def _local_path(ws: Workspace, target: str, text: str) -> Path:
    if target.startswith("@"):
        path = ws.weights_path(target[1:])
        if path is None:
            raise WeightsError(f"weights {text!r}: no entry {target[1:]!r} under [datasets.weights] in "
                               f"{ws.config_path}; add {target[1:]} = \"/path/to/file\" there")
    else:
        path = Path(target).expanduser()
        path = path if path.is_absolute() else (ws.root / path).resolve()
    if not path.is_file():
        raise WeightsError(f"weights {text!r}: no file at {path}" + (
            " (relative paths are read from the workspace directory)" if not target.startswith(("@", "/", "~")) else ""))
    return path


def torchvision_weights(name: str, arch: str):
    """torchvision's WeightsEnum member for `arch`: `name` is a member of the arch's enum
    (IMAGENET1K_V1, DEFAULT) or a full `<Enum>.<MEMBER>` that must belong to `arch`."""
    import torchvision.models as tvm

    own = tvm.get_model_weights(arch)
    if "." not in name:
        try:
            return own[name]
        except KeyError:
            raise WeightsError(f"torchvision has no {name} weights for {arch}; it has "
                               f"{', '.join(own.__members__)}") from None
    try:
        weights = tvm.get_weight(name)
    except (ValueError, KeyError, AttributeError):
        raise WeightsError(f"torchvision has no weights {name!r}; e.g. {own.__name__}.IMAGENET1K_V1") from None
    if type(weights) is not own:
        raise WeightsError(f"torchvision:{name} are weights for another architecture than {arch} (whose enum is "
                           f"{own.__name__}); write torchvision:{weights.name} to take each study arch's own")
    return weights


def torchvision_cache_path(weights) -> Path:
    """Where torchvision's loader looks for the file before it would download it:
    <torch.hub.get_dir()>/checkpoints/<the URL's file name> ($TORCH_HOME/hub/checkpoints/...)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def _check_clip_arch(clip_arch: str) -> None:
    open_clip = _open_clip()
    if clip_arch not in open_clip.list_models():
        raise WeightsError(f"open_clip has no model {clip_arch!r}; e.g. {', '.join(open_clip.list_models()[:8])} "
                           "(all: python -c 'import open_clip; print(open_clip.list_models())')")


def _open_clip():
    try:
        import open_clip
    except ImportError:
        raise WeightsError(f"open_clip weights need the open-clip-torch package: {CLIP_EXTRA}") from None
    return open_clip


@contextmanager
def _hub_dir(path: str):
    """torch.hub's directory set to the one holding `path` (…/checkpoints/<file>) for this block."""
    import torch.hub

    # torch.hub keeps an explicit set_dir in a module global (None: follow $TORCH_HOME); put back
    # exactly what was there, so a later $TORCH_HOME still counts in this process
    before = getattr(torch.hub, "_hub_dir", None)
    torch.hub.set_dir(str(Path(path).parent.parent))
    try:
        yield
    finally:
        torch.hub._hub_dir = before


def build_initial_model(arch: str, weights: dict[str, Any], num_classes: int, seed: int, image_size: int,
                        load: bool = True):
    """The run's model with a fresh `num_classes`-way head (seeded by `seed`): its backbone from the
    weights file when `load`, untouched otherwise (a resumed fine-tune loads its own checkpoint)."""
    from divrob.train.archs import build_model, replace_head

    kind, path = weights["kind"], weights["path"]
    if load:
        if not Path(path).is_file():
            raise WeightsError(f"weights {weights['source']}: {path} is gone since the run was planned; put it back")
        if sha256_file(path) != weights["sha256"]:
            raise WeightsError(f"weights {weights['source']}: {path} changed since the run was planned (sha256 "
                               f"{weights['sha256'][:12]}…); restore that file, or plan again for a new run")
    if kind == "open_clip":
        return build_clip(weights["name"], path if load else None, num_classes, seed, image_size)
    if kind == "torchvision" and load:
        import torchvision.models as tvm

        with _hub_dir(path):  # torchvision's own loader (with its per-arch key fixes), from the planned file
            model = getattr(tvm, arch)(weights=tvm.get_weight(weights["name"]), progress=False)
        return replace_head(model, num_classes, seed=seed)
    model = build_model(arch, num_classes)
    if load:
        load_backbone(model, read_state_file(path), path)
    return replace_head(model, num_classes, seed=seed)


def read_state_file(path: str | os.PathLike) -> dict[str, Any]:
    """A state dict from a .safetensors file or a PyTorch file (weights_only=True: tensors, no code);
    a {"state_dict": …} or {"model": …} wrapper and DDP's "module." prefix are taken off."""
    import torch

    path = Path(path)
    if path.name.endswith(SAFETENSORS_SUFFIX):
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as e:  # safetensors raises its own error types for a bad header
            raise WeightsError(f"weights {path}: not a readable safetensors file ({e})") from None
    else:
        try:
            try:  # memory-mapped where the format allows: planning reads only keys and shapes
                state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as e:
                if "mmap" not in str(e):
                    raise
                state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # pickle refusals and corrupt archives alike
            raise WeightsError(f"weights {path}: not a plain PyTorch state dict that loads with "
                               f"weights_only=True ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise WeightsError(f"weights {path}: expected a state dict (parameter name -> tensor)")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def load_backbone(model, state: dict[str, Any], where) -> None:
    """Load every parameter and buffer but the classification head (replaced for the downstream
    task, so its keys and shape may differ); any other key that is missing, unexpected or of another
    shape is an error that lists them."""
    model.load_state_dict(backbone_state(model, state, where), strict=False)


_FITS: set[tuple[str, str]] = set()  # (sha256, arch) pairs already checked in this process


def check_file_fits(path: str | os.PathLike, arch: str, sha256: str) -> None:
    """Planning's check that a state-dict file fits `arch` (its keys and shapes, the head aside),
    against a model on the meta device (no memory, no initialisation), so a misfit stops the plan
    with the key list instead of failing every run."""
    if (sha256, arch) in _FITS:
        return
    import torch

    from divrob.train.archs import build_model

    with torch.device("meta"):
        model = build_model(arch, 2)
    backbone_state(model, read_state_file(path), path)
    _FITS.add((sha256, arch))


def backbone_state(model, state: dict[str, Any], where) -> dict[str, Any]:
    """`state` without the head's keys, once every other key matches `model` (WeightsError otherwise)."""
    from divrob.train.archs import head_name

    prefix = head_name(model) + "."
    own = {k: v for k, v in model.state_dict().items() if not k.startswith(prefix)}
    theirs = {k: v for k, v in state.items() if not k.startswith(prefix)}
    # BatchNorm's step counter is bookkeeping that files from older torch lack
    missing = sorted(k for k in own.keys() - theirs.keys() if not k.endswith("num_batches_tracked"))
    unexpected = sorted(theirs.keys() - own.keys())
    shapes = sorted(k for k in own.keys() & theirs.keys() if tuple(own[k].shape) != tuple(theirs[k].shape))
    if missing or unexpected or shapes:
        parts = []
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("of another shape", shapes)):
            if keys:
                more = f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else ""
                detail = [f"{k} {tuple(theirs[k].shape)} vs {tuple(own[k].shape)}" if what == "of another shape" else k
                          for k in keys[:_SHOWN]]
                parts.append(f"{len(keys)} {what}: {', '.join(detail)}{more}")
        raise WeightsError(f"weights {where} do not fit {type(model).__name__} (the head {prefix[:-1]} aside): "
                           + "; ".join(parts) + ". Is it a state dict of this study arch?")
    return theirs


def build_clip(clip_arch: str, checkpoint: str | None, num_classes: int, seed: int, image_size: int):
    """open_clip's image tower of `clip_arch` (its weights from the local `checkpoint`, when given)
    under a fresh linear head, fed at `image_size` px."""
    import torch

    open_clip = _open_clip()
    kwargs = {}
    if image_size != _clip_image_size(open_clip, clip_arch):
        kwargs["force_image_size"] = image_size
    clip = open_clip.create_model(clip_arch, pretrained=None, **kwargs)
    if checkpoint is not None:
        try:
            open_clip.load_checkpoint(clip, checkpoint)
        except (RuntimeError, KeyError, ValueError, pickle.UnpicklingError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise WeightsError(f"open_clip checkpoint {checkpoint} does not fit {clip_arch} at {image_size} px "
                               f"({first}); is it a {clip_arch} checkpoint? A ResNet tower needs finetune "
                               f"image_size = {_clip_image_size(open_clip, clip_arch)}") from None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ClipClassifier(clip.visual, num_classes)


def _clip_image_size(open_clip, clip_arch: str) -> int:
    size = (open_clip.get_model_config(clip_arch) or {}).get("vision_cfg", {}).get("image_size", 224)
    return size[0] if isinstance(size, (tuple, list)) else int(size)


def _clip_classifier_class():
    import torch
    import torch.nn as nn

    from divrob.train.inputs import IMAGENET_MEAN, IMAGENET_STD

    class _ClipClassifier(nn.Module):
        """A CLIP image tower and a linear head. Batches arrive ImageNet-normalised; the tower
        sees them normalised as CLIP was trained (one affine map per channel)."""

        def __init__(self, visual, num_classes: int):
            super().__init__()
            self.visual = visual
            dim = getattr(visual, "output_dim", None)
            if dim is None:
                raise WeightsError("this open_clip tower does not state its output_dim")
            self.fc = nn.Linear(dim, num_classes)
            mean_in, std_in = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
            mean, std = torch.tensor(CLIP_MEAN), torch.tensor(CLIP_STD)
            self.register_buffer("_scale", (std_in / std).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("_shift", ((mean_in - mean) / std).view(1, 3, 1, 1), persistent=False)

        def forward(self, x):
            return self.fc(self.visual(x * self._scale + self._shift))

    return _ClipClassifier


def ClipClassifier(visual, num_classes: int):  # noqa: N802 (a class made lazily, so torch loads only here)
    return _clip_classifier_class()(visual, num_classes)
