"""A phase's numeric precision: autocast dtype and, for fp16, a loss scaler.

bf16 has fp32's exponent range, so its gradients need no scaling; fp16 does (a GradScaler whose
state is saved in every checkpoint's "scaler" slot, so a resumed run scales exactly as before).
The setting `auto` is resolved where the phase runs (divrob.devices.resolve_precision) and
logged; the run id keeps what the recipe asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


@dataclass(frozen=True)
class Precision:
    name: str  # bf16 | fp16 | fp32, resolved

    @classmethod
    def resolve(cls, want: str, device) -> "Precision":
        from divrob.devices import resolve_precision

        return cls(resolve_precision(want, device.type))

    def autocast(self, device):
        import torch

        dtype = getattr(torch, _DTYPES.get(self.name, "float32"))
        return torch.autocast(device.type, dtype=dtype, enabled=self.name in _DTYPES)

    def grad_scaler(self, device):
        """A GradScaler, enabled for fp16 only (disabled, it passes the loss and step through)."""
        import torch

        return torch.amp.GradScaler(device.type, enabled=self.name == "fp16")

    def describe(self, asked: str) -> str:
        return self.name if asked == self.name else f"{self.name} ({asked})"
