"""What the model sees: the first N images of a source or downstream task made into model input by
the training code itself (decode cache, loader, `model_inputs`), de-normalised and written as PNGs.

`pretrain` shows the pre-training input (RandomResizedCrop over the whole frame + flip, the crops
of the first epoch's generator), `finetune` the fine-tuning training input (WILDS: the whole frame
resized to image_size square), `eval` the evaluation input (always the whole frame).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from divrob.errors import DivrobError, UsageError
from divrob.progress import SILENT, Reporter
from divrob.workspace import Workspace

PHASES = ("pretrain", "finetune", "eval")  # the CLI's choices


def check_phase(phase: str) -> None:
    if phase not in PHASES:
        raise UsageError(f"--phase {phase!r}: choose from {', '.join(PHASES)}")


def images_of(ws: Workspace, name: str, split: str | None, reporter: Reporter = SILENT):
    """Paths and labels (a numpy array) of a downstream task's split (default train) or of a
    source's index. A name that is both (`folder:NAME`, `domainnet:DOMAIN`) is the source unless a
    split is asked for."""
    import numpy as np

    from divrob.downstream import get_task, is_task, task_names
    from divrob.sources import known_source

    if is_task(name) and (split is not None or not known_source(name)):
        s = get_task(ws, name, reporter).split(split or "train")
        return list(s.paths), np.asarray(s.labels, dtype=np.int64)
    if split is not None:
        raise UsageError(f"--split {split!r}: only a downstream task ({', '.join(task_names())}) has splits")
    from divrob.sources import source_index, source_root

    df = source_index(ws, name, reporter)
    root = source_root(ws, name, reporter)
    return [root / p for p in df["path"]], df["class_id"].to_numpy(np.int64)


def write_preview(paths: list[Path], labels, cfg, phase: str, n: int, out: Path, seed: int = 0,
                  reporter: Reporter = SILENT) -> list[Path]:
    """Write the model input of the first `n` images as PNGs in `out`; their paths, in order.
    Imported by the CLI at start-up: numpy and torch are imported here, not above."""
    import torch
    from PIL import Image

    from divrob.train.crops import epoch_generator
    from divrob.train.data import batch_order, phase_images
    from divrob.train.inputs import denormalize, model_inputs
    from divrob.train.loader import stream_batches

    check_phase(phase)
    if not paths:
        raise DivrobError("no images to preview")
    paths, labels = paths[:n], labels[:n]
    training = phase != "eval"
    augment = training and cfg.augment
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="divrob-preview-") as cache:
        data = phase_images(paths, labels, cfg, Path(cache), training=training, reporter=reporter,
                            description=f"decoding {len(paths)} images")
        order = batch_order(data.valid, seed, 1, shuffle=False)
        gen = epoch_generator(seed, 1)
        for b in stream_batches(data, cfg.batch_size, order):
            x = model_inputs(b, cfg.image_size, torch.device("cpu"), augment=augment, generator=gen,
                             crop_scale=cfg.crop_scale)
            for k, img in zip(b.indices[b.rows], denormalize(x).numpy()):
                path = out / f"{phase}-{len(written):04d}-{Path(paths[k]).stem}.png"
                Image.fromarray(img).save(path)
                written.append(path)
    return written
