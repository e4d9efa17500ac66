"""The refiner G: output = x + h(x)·Δ(x), Δ = max_delta·tanh(U-Net(x)), clamped to [0, 1].

Where the soft mask h is 0 the output is x itself, so regions the critic did not flag are
left as they are; the residual is bounded, so no pixel moves by more than ``max_delta``. The
U-Net's last convolution starts at zero, so an untrained G is the identity (it does not start
from random noise that the critic then has to be argued out of).
"""

from __future__ import annotations

import segmentation_models_pytorch as smp
import torch
from torch import nn

from fakeseg.config import EnhanceConfig
from fakeseg.models.base import pad_and_run


class Refiner(nn.Module):
    """``forward(x, h)``: x (B, 3, H, W) in [0, 1], h (B, 1, H, W) in [0, 1] → (B, 3, H, W)."""

    def __init__(self, config: EnhanceConfig) -> None:
        super().__init__()
        self.max_delta = float(config.max_delta)
        # the mask is an input too: G may edit differently where the critic is surer
        self.unet = smp.Unet(encoder_name=config.encoder, encoder_weights=None,
                             encoder_depth=config.encoder_depth,
                             decoder_channels=tuple(config.decoder_channels),
                             in_channels=4, classes=3)
        self.multiple = 2 ** config.encoder_depth
        head = self.unet.segmentation_head[0]
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)

    def residual(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Δ(x), bounded by ``max_delta``."""
        raw = pad_and_run(self.unet, torch.cat([x - 0.5, h], dim=1), self.multiple)
        return self.max_delta * torch.tanh(raw)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return (x + h * self.residual(x, h)).clamp(0.0, 1.0)
