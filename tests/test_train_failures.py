"""Failures that must not crash silently: out-of-memory names the batch size to try; the loader
shards each global batch across DDP ranks without losing or repeating an image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from divrob.errors import RunError
from divrob.runs.rundir import RunDir
from divrob.train.archs import build_model
from divrob.train.config import finetune_config
from divrob.train.data import DecodedImages
from divrob.train.distributed import Dist
from divrob.train.loader import stream_batches, steps_per_epoch
from divrob.train.loop import PhaseData, train_phase


def _tiny_data(n: int = 10, size: int = 16) -> DecodedImages:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    return DecodedImages(images, np.arange(n, dtype=np.int64) % 2, np.full((n, 2), size, dtype=np.int32))


def test_out_of_memory_says_which_batch_size_to_try(tmp_path):
    model = build_model("resnet18", 2)

    def oom(module, inputs):  # what the CUDA caching allocator raises; the loop must translate it
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    model.register_forward_pre_hook(oom)
    rd = RunDir(tmp_path / "run")
    rd.checkpoints.mkdir(parents=True)
    cfg = finetune_config("resnet18", {"epochs": 1, "batch_size": 8, "image_size": 16})
    with pytest.raises(RunError, match=r"out of GPU memory .* batch_size 8.*set batch_size = 4 under \[study\] finetune"):
        train_phase(phase="finetune", model=model, cfg=cfg, data=PhaseData(_tiny_data()),
                    recorder=rd, seed=0, device=torch.device("cpu"))


def test_ddp_shards_cover_each_global_batch_once():
    data = _tiny_data(11)
    order = np.random.default_rng(1).permutation(11)
    per_rank = [list(stream_batches(data, 4, order, dist=Dist(rank, 2))) for rank in range(2)]
    # 11 images in batches of 4: 4 + 4 + 3, and a last batch of 3 still gives both ranks an image
    assert steps_per_epoch(11, 4, 2) == 3 and steps_per_epoch(9, 4, 2) == 2 and steps_per_epoch(9, 4, 1) == 3
    for step in range(3):
        a, b = per_rank[0][step], per_rank[1][step]
        together = np.concatenate([a.images.numpy(), b.images.numpy()])
        expected = data.images[np.sort(order[step * 4:(step + 1) * 4])]
        assert np.array_equal(together, expected)
        assert a.global_size == b.global_size == len(expected) and a.rows.stop == b.rows.start
    # copying each batch with several threads gives the same batches
    threaded = list(stream_batches(data, 4, order, threads=3))
    assert [t.images.numpy().tobytes() for t in threaded] == [
        data.images[np.sort(order[s * 4:(s + 1) * 4])].tobytes() for s in range(3)]


def test_a_run_leaves_torch_s_thread_count_as_it_found_it(tmp_path):
    # [compute] threads applies to the run only: an inline run in the TUI or a test process must
    # not leave every later computation on one thread (it did; tests then saw other rounding)
    from divrob.errors import DivrobError
    from divrob.runs.execute import execute_run
    from divrob.runs.spec import RunSpec
    from divrob.workspace import init_workspace, open_workspace

    root = tmp_path / "ws"
    init_workspace(root)
    config = root / "divrob.toml"
    config.write_text(config.read_text().replace("threads = 0", "threads = 1", 1))
    ws = open_workspace(root)
    assert ws.config.compute.threads == 1
    spec = RunSpec(arch="resnet18", seed=0, downstream="iwildcam", finetune=finetune_config("resnet18"))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(DivrobError):  # no iWildCam root here: the run fails once it has set its threads
            execute_run(ws, spec)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
