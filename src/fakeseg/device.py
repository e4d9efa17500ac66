"""Where tensors run: ``auto`` picks CUDA when there is one."""

from __future__ import annotations

import torch

from fakeseg.errors import FakesegError


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise FakesegError(f"unknown device '{device}'; use auto, cpu or cuda") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise FakesegError("CUDA was asked for but is not available; use --device cpu")
    return resolved


def amp_dtype(device: torch.device) -> torch.dtype:
    """Mixed precision's dtype: bfloat16 where the device computes it natively (CPU, recent
    GPUs), else float16 (which the trainer pairs with a gradient scaler)."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16
