"""Per-pixel BCE (the paper's NLL, Eq. 2) and the adversarial terms (Eq. 3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fakeseg.models.discriminator import PatchDiscriminator


def pixel_bce(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits.float(), label.float())


def generator_adversarial(disc: PatchDiscriminator, probability: torch.Tensor,
                          image: torch.Tensor) -> torch.Tensor:
    """S wants D to take its maps for label maps."""
    scores = disc(probability, image)
    return F.binary_cross_entropy_with_logits(scores, torch.ones_like(scores))


def discriminator_loss(disc: PatchDiscriminator, label: torch.Tensor,
                       probability: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """D tells label maps (1) from predicted maps (0)."""
    real_scores = disc(label, image)
    fake_scores = disc(probability.detach(), image)
    return 0.5 * (F.binary_cross_entropy_with_logits(real_scores, torch.ones_like(real_scores))
                  + F.binary_cross_entropy_with_logits(fake_scores,
                                                       torch.zeros_like(fake_scores)))
