"""Which torch device to compute on, and at which precision: one rule for runs, generators and
benchmarks."""

from __future__ import annotations

from divrob.errors import DivrobError


def resolve_device(want: str | None = "auto", *, where: str = "--device"):
    """`auto` (or empty) is CUDA when a GPU is visible, else the CPU; `cuda[:N]` without a visible
    GPU is an error that names the setting (`where`) to change."""
    import torch

    if want in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(want).startswith("cuda") and not torch.cuda.is_available():
        raise DivrobError(f"{where} = {want!r}, but no CUDA device is visible; use 'cpu' or 'auto'")
    try:
        return torch.device(want)
    except RuntimeError:
        raise DivrobError(f"{where} = {want!r} is not a device; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None


# A phase's `precision` setting; "auto" is decided where the phase runs (see resolve_precision).
PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def resolve_precision(want: str, device_type: str) -> str:
    """`auto` is bf16 autocast on CUDA (tensor cores, no loss scaling needed) and fp32 on the CPU
    (where autocast is slower than fp32 for most layers); anything else is taken as asked."""
    if want not in PRECISIONS:
        raise DivrobError(f"precision = {want!r}: choose from {', '.join(PRECISIONS)}")
    if want == "auto":
        return "bf16" if device_type == "cuda" else "fp32"
    return want


def precision_label(want: str) -> str:
    """A precision setting as a plan shows it: `auto` says what it becomes where."""
    if want != "auto":
        return want
    return f"auto ({resolve_precision(want, 'cuda')} on CUDA, {resolve_precision(want, 'cpu')} on CPU)"


_nvml_ready: bool | None = None  # NVML initialised in this process (None: not tried yet)


def gpu_use() -> tuple[float | None, int | None]:
    """(utilisation in percent, averaged; memory used in MiB, summed) over this process's own GPUs:
    those $CUDA_VISIBLE_DEVICES names (indices or UUIDs; the local executor and SLURM set it), else
    every GPU. Read through NVML (`nvidia-ml-py`, the `gpu-stats` extra); without it, without a
    GPU or on any NVML error: (None, None), never an exception."""
    global _nvml_ready
    import os

    try:
        import pynvml
    except ImportError:
        return None, None
    try:
        if _nvml_ready is None:
            pynvml.nvmlInit()
            _nvml_ready = True
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is None:
            handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        else:
            names = [v.strip() for v in visible.split(",") if v.strip() and v.strip() != "-1"]
            handles = [pynvml.nvmlDeviceGetHandleByUUID(v) if not v.isdigit() else
                       pynvml.nvmlDeviceGetHandleByIndex(int(v)) for v in names]
        if not handles:
            return None, None
        util = [float(pynvml.nvmlDeviceGetUtilizationRates(h).gpu) for h in handles]
        mem = [int(pynvml.nvmlDeviceGetMemoryInfo(h).used) for h in handles]
    except Exception:  # NVML missing its library, no driver, a GPU gone: no sample, the job goes on
        return None, None
    return round(sum(util) / len(util), 1), sum(mem) // (1024 * 1024)
