"""Configuration dataclasses, YAML load/save, ``key=value`` overrides and provenance."""

from __future__ import annotations

import dataclasses
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from fakeseg.errors import FakesegError

T = TypeVar("T")


@dataclass
class TrainConfig:
    """Everything that defines a FakeSegment training run. Saved into every run."""

    # which network: "fakesegment" or a baseline name (see fakeseg.models.baselines)
    model: str = "fakesegment"
    model_options: dict[str, Any] = field(default_factory=dict)
    # features
    backbone: str = "ssdlite_mobilenet_v2"
    backbone_weights: str = "auto"
    layers: list[str] | None = None  # None: the backbone's default taps
    layer_weights: list[float] | None = None  # None: equal weights
    target_percentile: float = 99.0
    # segmentation net S
    encoder: str = "resnet18"
    encoder_weights: str | None = None
    reduce_channels: int = 32
    use_rgb: bool = True
    work_stride: int = 4
    # targets and composites
    target_mode: str = "mask"  # heatmap | mask | hybrid
    mask_kinds: list[str] = field(default_factory=lambda: ["rectangles", "blobs", "classwise"])
    coverage: tuple[float, float] = (0.2, 0.6)
    p_pure_real: float = 0.3  # benchmarks: halves false positives on pure-real images
    p_pure_synthetic: float = 0.15
    blend_sigma: float = 2.0
    p_reencode: float = 0.5
    # optimisation
    crop_size: int = 128
    batch_size: int = 8
    steps: int = 300
    steps_per_epoch: int = 50
    lr: float = 1e-3
    weight_decay: float = 1e-4
    adv_weight: float = 0.0
    early_stopping: int = 4  # epochs without val improvement; 0 disables
    # split and bookkeeping
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    seed: int = 0
    allow_resize: bool = False
    device: str = "auto"
    amp: bool = True
    threads: int = 0  # 0: torch default

    def validate(self) -> TrainConfig:
        if self.target_mode not in ("heatmap", "mask", "hybrid"):
            raise FakesegError(f"target_mode '{self.target_mode}' is unknown; "
                               "use heatmap, mask or hybrid")
        for kind in self.mask_kinds:
            if kind not in ("rectangles", "blobs", "classwise"):
                raise FakesegError(f"mask kind '{kind}' is unknown; "
                                   "use rectangles, blobs or classwise")
        if self.crop_size < 32 or self.crop_size % 32:
            raise FakesegError(f"crop_size {self.crop_size} must be a multiple of 32 (≥ 32)")
        if self.work_stride not in (1, 2, 4, 8):
            raise FakesegError(f"work_stride {self.work_stride} must be 1, 2, 4 or 8")
        if self.steps < 1 or self.batch_size < 1 or self.steps_per_epoch < 1:
            raise FakesegError("steps, batch_size and steps_per_epoch must be ≥ 1")
        lo, hi = self.coverage
        if not 0 < lo <= hi < 1:
            raise FakesegError(f"coverage {self.coverage} must satisfy 0 < low ≤ high < 1")
        return self


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def from_dict(cls: type[T], payload: dict[str, Any], *, source: str = "config") -> T:
    names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(payload) - set(names))
    if unknown:
        import difflib

        hints = [difflib.get_close_matches(key, list(names), n=1) for key in unknown]
        detail = ", ".join(
            f"'{key}'" + (f" (did you mean '{hint[0]}'?)" if hint else "")
            for key, hint in zip(unknown, hints, strict=True)
        )
        raise FakesegError(f"{source}: unknown option {detail}")
    values = dict(payload)
    if "coverage" in values and values["coverage"] is not None:
        values["coverage"] = tuple(values["coverage"])
    return cls(**values)


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        payload = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise FakesegError(f"{path}: config file not found; check the path") from exc
    except yaml.YAMLError as exc:
        raise FakesegError(f"{path}: not valid YAML ({exc.__class__.__name__}); fix the syntax")\
            from exc
    if not isinstance(payload, dict):
        raise FakesegError(f"{path}: expected a mapping of option: value at the top level")
    return payload


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["lr=0.01", "layers=[a, b]"]`` → ``{"lr": 0.01, "layers": ["a", "b"]}`` (YAML values)."""
    result: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise FakesegError(f"override '{item}' must look like key=value (e.g. steps=200)")
        key, raw = item.split("=", 1)
        result[key.strip().replace("-", "_")] = yaml.safe_load(raw)
    return result


def versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape results."""
    import numpy
    import torch
    import torchvision

    from fakeseg import __version__

    found = {
        "fakeseg": __version__, "python": sys.version.split()[0],
        "platform": platform.platform(), "torch": torch.__version__,
        "torchvision": torchvision.__version__, "numpy": numpy.__version__,
    }
    try:
        import segmentation_models_pytorch as smp

        found["segmentation_models_pytorch"] = smp.__version__
    except Exception:  # pragma: no cover - smp is a dependency
        pass
    return found
