"""The segmenter contract every localisation model follows (FakeSegment and the baselines).

A :class:`Segmenter` maps an RGB image ``(B, 3, H, W)`` in [0, 1] to logits ``(B, 1, H, W)`` at
full resolution. The trainer, the localizer, ``evaluate`` and ``benchmark`` use only this
class's members; optional capabilities are declared as class attributes, never probed:

* ``feature_extractor``: the frozen backbone the model embeds images with, or None;
* ``has_auxiliary_loss``: :meth:`auxiliary_loss` adds terms to the pixel BCE;
* ``has_own_adversary``: the model brings discriminators, stepped by a second optimiser
  over :meth:`discriminator_parameters` with :meth:`discriminator_loss`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from fakeseg.features.backbones import FeaturePyramid

LossTerms = tuple[torch.Tensor, dict[str, float]]


class Segmenter(nn.Module, ABC):
    """image (B, 3, H, W) in [0, 1] → logits (B, 1, H, W); H, W multiples of ``multiple``."""

    multiple: int = 1
    has_auxiliary_loss: ClassVar[bool] = False
    has_own_adversary: ClassVar[bool] = False

    @abstractmethod
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Logits for an image whose sides are multiples of :attr:`multiple`."""

    @property
    def feature_extractor(self) -> FeaturePyramid | None:
        """The frozen backbone this model embeds images with (None: it has none)."""
        return None

    def forward_any_size(self, image: torch.Tensor) -> torch.Tensor:
        """Pad (replicate) to the stride multiple, run, crop back."""
        return pad_and_run(self, image, self.multiple)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What the main optimiser updates (never a frozen backbone or a discriminator)."""
        return [p for p in self.parameters() if p.requires_grad]

    def check_size(self, image: torch.Tensor) -> None:
        height, width = image.shape[-2:]
        if height % self.multiple or width % self.multiple:
            raise ValueError(f"input {height}x{width} must be a multiple of {self.multiple}; "
                             "use forward_any_size")

    def auxiliary_loss(self, image: torch.Tensor, label: torch.Tensor,
                       logits: torch.Tensor) -> LossTerms:
        """Extra generator-side terms (only when ``has_auxiliary_loss``)."""
        raise NotImplementedError(f"{type(self).__name__} declares no auxiliary loss")

    def discriminator_parameters(self) -> list[nn.Parameter]:
        """The model's own discriminators' weights (only when ``has_own_adversary``)."""
        return []

    def discriminator_loss(self, image: torch.Tensor, label: torch.Tensor,
                           logits: torch.Tensor) -> LossTerms:
        """The own discriminators' loss (only when ``has_own_adversary``)."""
        raise NotImplementedError(f"{type(self).__name__} declares no discriminator")


def pad_and_run(model: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor,
                multiple: int) -> torch.Tensor:
    """Run ``model`` on ``image`` padded (replicate) to ``multiple``; crop the output back."""
    height, width = image.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if pad_h or pad_w:
        image = F.pad(image, (0, pad_w, 0, pad_h), mode="replicate")
    output: torch.Tensor = model(image)
    return output[..., :height, :width]


#: the largest smoothing σ, as a share of a map's shorter side: on small images a fixed σ
#: would blur away whole regions (the 192-px demo images lose Dice at σ 8)
MAX_SMOOTH_FRACTION = 1 / 32


def smooth_probabilities(probs: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian smoothing of probability maps ``(B, 1, H, W)``, ``sigma`` in pixels (0: as
    they are), at most :data:`MAX_SMOOTH_FRACTION` of the shorter side; differentiable. The
    blur runs on a grid ``sigma // 4`` times coarser (it hides finer detail anyway), then is
    resized back: a few ms at 512², where a full-size blur of σ 16 takes half a second."""
    sigma = min(sigma, MAX_SMOOTH_FRACTION * min(probs.shape[-2:]))
    if sigma <= 0:
        return probs
    step = max(1, int(sigma // 4))
    small = F.avg_pool2d(probs, step, ceil_mode=True) if step > 1 else probs
    scaled = sigma / step
    radius = min(math.ceil(3 * scaled), min(small.shape[-2:]) - 1)
    if radius >= 1:  # reflect padding needs a radius below the side
        # one map at a time: a map must not depend on the batch it came in (to the last bit)
        small = torch.cat([gaussian_blur(one[None], [2 * radius + 1] * 2, [scaled, scaled])
                           for one in small])
    if step == 1:
        return small
    return F.interpolate(small, size=probs.shape[-2:], mode="bilinear", align_corners=False)
