"""``unet_rgb``: an smp U-Net on RGB trained directly on composite masks.

The MediaEval 2025 seed's localisation approach (ImageNet-normalised RGB → U-Net → mask),
with a ResNet-18 encoder trained from scratch (``encoder_weights=None`` by default).
"""

from __future__ import annotations

from collections.abc import Sequence

import segmentation_models_pytorch as smp
import torch
from torch import nn

from fakeseg.features.backbones import Normalize
from fakeseg.models.base import Segmenter

DEFAULT_DECODER = (256, 128, 64, 32, 16)


class UNetRGB(Segmenter):
    """image (B, 3, H, W) in [0, 1] → logits (B, 1, H, W); H, W multiples of 2**encoder_depth."""

    def __init__(self, *, encoder_name: str = "resnet18", encoder_weights: str | None = None,
                 encoder_depth: int = 5,
                 decoder_channels: Sequence[int] | None = None) -> None:
        super().__init__()
        decoder = tuple(decoder_channels or DEFAULT_DECODER[:encoder_depth])
        if len(decoder) != encoder_depth:
            raise ValueError(f"decoder_channels needs {encoder_depth} entries, got {decoder}")
        self.unet = smp.Unet(encoder_name=encoder_name, encoder_weights=encoder_weights,
                             encoder_depth=encoder_depth, decoder_channels=decoder,
                             in_channels=3, classes=1)
        _drop_unused_stages(self.unet.encoder, encoder_depth)
        self.multiple = 2**encoder_depth
        self.normalize = Normalize()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        self.check_size(image)
        return self.unet(self.normalize(image))


def _drop_unused_stages(encoder: nn.Module, depth: int) -> None:
    """A ResNet encoder of depth d < 5 never runs ``layer{d}``..``layer4``: drop their weights."""
    for index in range(max(depth, 1), 5):
        if isinstance(getattr(encoder, f"layer{index}", None), nn.Module):
            setattr(encoder, f"layer{index}", nn.Identity())
