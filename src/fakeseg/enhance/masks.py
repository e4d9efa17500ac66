"""The soft edit mask h(x): where the critic flags, ramped, dilated and smoothed.

h is 1 where the critic's probability reaches its threshold, falls linearly to 0 at half the
threshold, is dilated by ``dilate_px`` and blurred by a Gaussian of ``smooth_sigma`` (kernel cut
at 3σ). Values below :data:`ZERO_BELOW` are set to exactly 0, so pixels far from any flag are
left exactly as they are by ``x + h·Δ`` and by the blend.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.functional import gaussian_blur

#: mask values below this become exactly 0 (they could not change an 8-bit pixel)
ZERO_BELOW = 1e-3


def soft_mask(probability: torch.Tensor, threshold: float, *, dilate_px: int,
              smooth_sigma: float) -> torch.Tensor:
    """(B, 1, H, W) critic probabilities → (B, 1, H, W) soft mask in [0, 1]."""
    low = 0.5 * threshold
    mask = ((probability - low) / max(threshold - low, 1e-6)).clamp(0.0, 1.0)
    if dilate_px > 0:
        mask = F.max_pool2d(mask, kernel_size=2 * dilate_px + 1, stride=1, padding=dilate_px)
    if smooth_sigma > 0:
        radius = max(1, math.ceil(3 * smooth_sigma))
        mask = gaussian_blur(mask, kernel_size=[2 * radius + 1] * 2,
                             sigma=[smooth_sigma, smooth_sigma])
    return torch.where(mask < ZERO_BELOW, torch.zeros_like(mask), mask.clamp(0.0, 1.0))


def soft_mask_array(probability: np.ndarray, threshold: float, *, dilate_px: int,
                    smooth_sigma: float) -> np.ndarray:
    """(H, W) probabilities → (H, W) float32 soft mask (see :func:`soft_mask`)."""
    tensor = torch.from_numpy(np.ascontiguousarray(probability, dtype=np.float32))[None, None]
    return soft_mask(tensor, threshold, dilate_px=dilate_px,
                     smooth_sigma=smooth_sigma)[0, 0].numpy()
