"""Baseline segmenters behind one contract, and their registry (``build_baseline``).

Every baseline maps an RGB image (B, 3, H, W) in [0, 1] to logits (B, 1, H, W) at full
resolution, exactly like :class:`~fakeseg.models.fakesegment.FakeSegmentNet`:

* ``multiple``: H and W must be multiples of it for ``forward``;
* ``forward_any_size``: pads (replicate) to the multiple, runs, crops back;
* ``trainable_parameters``: what the main optimizer updates (never discriminator weights).

Adversarial baselines (``mag``) add ``auxiliary_loss`` (added to the main BCE),
``discriminator_parameters`` and ``discriminator_loss`` (stepped by a second optimizer).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from fakeseg.errors import FakesegError
from fakeseg.models.fakesegment import pad_and_run


class Baseline(nn.Module):
    """Shared plumbing of the contract; subclasses set ``multiple`` and define ``forward``."""

    multiple: int = 1

    def forward_any_size(self, image: torch.Tensor) -> torch.Tensor:
        """Pad (replicate) to the stride multiple, run, crop back."""
        return pad_and_run(self, image, self.multiple)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def check_size(self, image: torch.Tensor) -> None:
        height, width = image.shape[-2:]
        if height % self.multiple or width % self.multiple:
            raise ValueError(f"input {height}x{width} must be a multiple of {self.multiple}; "
                             "use forward_any_size")


@dataclass(frozen=True)
class BaselineSpec:
    builder: Callable[..., nn.Module]
    description: str
    trainable: bool = True
    needs_pair: bool = False


def _unet_rgb(**kwargs: Any) -> nn.Module:
    from fakeseg.models.baselines.unet_rgb import UNetRGB

    return UNetRGB(**kwargs)


def _mantranet(**kwargs: Any) -> nn.Module:
    from fakeseg.models.baselines.mantranet import ManTraNet

    return ManTraNet(**kwargs)


def _mag(**kwargs: Any) -> nn.Module:
    from fakeseg.models.baselines.mag import MAG

    return MAG(**kwargs)


def _catnet(**kwargs: Any) -> nn.Module:
    from fakeseg.models.baselines.catnet import CATNet

    return CATNet(**kwargs)


def _featdiff_oracle(**kwargs: Any) -> nn.Module:
    raise FakesegError("featdiff_oracle is not a network: the evaluator computes it from each "
                       "(real, synthetic) pair's feature differences; score it with the "
                       "evaluator instead of building it")


BASELINES: dict[str, BaselineSpec] = {
    "unet_rgb": BaselineSpec(
        _unet_rgb, "smp U-Net (ResNet-18 encoder) on RGB, trained directly on composite masks"),
    "mantranet": BaselineSpec(
        _mantranet, "ManTraNet (Wu et al., CVPR 2019): SRM/Bayar/conv trace features, Z-score "
        "pooling and a ConvLSTM anomaly detector, trained from scratch"),
    "mag": BaselineSpec(
        _mag, "Mixed Adversarial Generators (Kniaz et al., NeurIPS 2019): annotation generator "
        "trained against a retouching generator and two PatchGAN discriminators"),
    "catnet": BaselineSpec(
        _catnet, "CAT-Net (Kwon et al., WACV 2021), reduced: RGB stream plus a DCT stream on "
        "one-hot 8x8 block-DCT magnitudes of Y (recomputed from pixels, no quantisation "
        "table), fused at 1/8; trained from scratch"),
    "featdiff_oracle": BaselineSpec(
        _featdiff_oracle, "oracle upper bound: the feature difference between the synthetic "
        "image and its real pair (needs the pair; not a network)",
        trainable=False, needs_pair=True),
}


def list_baselines() -> list[str]:
    return sorted(BASELINES)


def baseline_spec(name: str) -> BaselineSpec:
    """The registry entry ``name``, or a one-line error with the closest name."""
    spec = BASELINES.get(name)
    if spec is None:
        close = difflib.get_close_matches(name, list(BASELINES), n=1)
        hint = f"did you mean '{close[0]}'?" if close else \
            f"choose from {', '.join(list_baselines())}"
        raise FakesegError(f"unknown baseline '{name}'; {hint}")
    return spec


def build_baseline(name: str, **kwargs: Any) -> nn.Module:
    """The untrained baseline ``name``; ``kwargs`` go to its constructor."""
    return baseline_spec(name).builder(**kwargs)


__all__ = ["BASELINES", "Baseline", "BaselineSpec", "baseline_spec", "build_baseline",
           "list_baselines"]
