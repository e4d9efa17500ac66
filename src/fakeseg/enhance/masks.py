"""The soft edit mask h(x): the critic's flagged pixels, feathered inward only.

A pixel is *flagged* when the critic's probability reaches its threshold. h is
``flagged · clamp(2·blur(flagged) − 1, 0, 1)`` with a Gaussian blur of ``feather_sigma``
pixels (kernel cut at 3σ): about 0 on a flagged region's border, rising to 1 some 2σ inside
it, and **exactly 0 on every unflagged pixel** by construction (nothing is dilated outward).
So ``x + h·Δ`` and the blend leave the unflagged pixels exactly as they are. Flagged specks
narrower than about σ get a weak h: they are edited little. ``feather_sigma=0`` gives the
hard mask h = flagged.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchvision.transforms.functional import gaussian_blur

from fakeseg.numbers import float32_cut


def soft_mask(probability: torch.Tensor, threshold: float, *,
              feather_sigma: float) -> torch.Tensor:
    """(B, 1, H, W) critic probabilities → (B, 1, H, W) soft mask in [0, 1], 0 where unflagged."""
    exact = float32_cut(threshold) if probability.dtype == torch.float32 else threshold
    flagged = (probability >= exact).to(probability.dtype)  # as HeatMap.mask flags
    if feather_sigma <= 0:
        return flagged
    # torchvision pads by reflection (the pad must be shorter than the side), so a flagged
    # region is not feathered where it touches the frame's edge
    radius = max(1, min(math.ceil(3 * feather_sigma), min(probability.shape[-2:]) - 1))
    blurred = gaussian_blur(flagged, kernel_size=[2 * radius + 1] * 2,
                            sigma=[feather_sigma, feather_sigma])
    return flagged * (2.0 * blurred - 1.0).clamp(0.0, 1.0)


def soft_mask_array(probability: np.ndarray, threshold: float, *,
                    feather_sigma: float) -> np.ndarray:
    """(H, W) probabilities → (H, W) float32 soft mask (see :func:`soft_mask`)."""
    tensor = torch.from_numpy(np.ascontiguousarray(probability, dtype=np.float32))[None, None]
    return soft_mask(tensor, threshold, feather_sigma=feather_sigma)[0, 0].numpy()
