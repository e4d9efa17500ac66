"""PatchGAN discriminator on probability maps (the paper's Eq. 3)."""

from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    """Scores overlapping patches of a probability map (optionally with the image) as real/fake.

    "Real" here means a label map, "fake" a map predicted by S.
    """

    def __init__(self, with_image: bool = True, width: int = 32, depth: int = 3) -> None:
        super().__init__()
        self.with_image = with_image
        channels = 1 + (3 if with_image else 0)
        layers: list[nn.Module] = []
        for i in range(depth):
            out = width * 2**i
            layers += [nn.Conv2d(channels, out, 4, stride=2, padding=1)]
            if i > 0:
                layers += [nn.InstanceNorm2d(out, affine=True)]
            layers += [nn.LeakyReLU(0.2, inplace=True)]
            channels = out
        layers += [nn.Conv2d(channels, 1, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, probability: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        if self.with_image:
            if image is None:
                raise ValueError("this discriminator was built with_image=True; pass the image")
            probability = torch.cat([probability, image], dim=1)
        return self.net(probability)
