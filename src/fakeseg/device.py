"""Where tensors run: ``auto`` picks CUDA when there is one."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

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


#: glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_BYTES = 1 << 30
_kept = False


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed blocks of up to 1 GiB for reuse instead of handing them
    back to the OS. CPU inference allocates the same large activations on every pass; by
    default glibc maps each block over 32 MiB afresh and unmaps it when freed, so every pass
    page-faults them in again (at 512², batch 4: ~86,000 faults per image, which made batch 4
    slower per image than batch 1; benchmarks/results/predict_speed_cause.md). Process-wide,
    set once; a no-op (False) where the C library is not glibc."""
    global _kept
    if _kept:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    _kept = bool(mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES))
    return _kept
