"""The device a run uses (``auto``: CUDA when available) and its mixed precision (autocast and gradient scaler)."""
from __future__ import annotations

import torch

from egs.core.errors import EGSError


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise EGSError(f"device={name!r} is not a device; use auto, cpu, cuda or cuda:N.") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EGSError(f"device={name!r} asked for CUDA but none is available; use device=cpu or auto.")
    return device


class MixedPrecision:
    """Autocast (bf16 where the GPU supports it, else fp16 with a gradient scaler) on CUDA; off on CPU.

    ``scaler`` is a ``torch.amp.GradScaler`` that is a no-op unless fp16 is used, so a step is
    always ``scaler.scale(loss).backward(); scaler.unscale_(opt); clip; scaler.step(opt); scaler.update()``.
    """

    def __init__(self, device: torch.device, enabled: bool) -> None:
        cuda = device.type == "cuda"
        self.device_type = device.type
        self.dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda and enabled else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dtype == torch.float16)

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None)
