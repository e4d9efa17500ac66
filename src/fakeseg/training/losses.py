"""Per-pixel BCE (the paper's NLL, Eq. 2), an optional soft Dice term and the adversarial
terms (Eq. 3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from segmentation_models_pytorch.losses import DiceLoss

from fakeseg.models.discriminator import PatchDiscriminator

_SOFT_DICE = DiceLoss("binary", from_logits=True)


def pixel_bce(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits.float(), label.float())


def pixel_loss(logits: torch.Tensor, label: torch.Tensor, mask: torch.Tensor, *,
               real_weight: float = 1.0, hard_negative_fraction: float = 0.0) -> torch.Tensor:
    """Pixel BCE with two false-alarm measures on real pixels (``mask`` == 0).

    ``real_weight`` scales the BCE of real pixels; ``hard_negative_fraction`` adds the mean BCE
    of that share of real pixels with the highest loss (online hard-negative mining). With the
    defaults (1, 0) this is :func:`pixel_bce`.
    """
    if real_weight == 1.0 and hard_negative_fraction == 0.0:
        return pixel_bce(logits, label)
    per_pixel = F.binary_cross_entropy_with_logits(logits.float(), label.float(),
                                                   reduction="none")
    real = mask < 0.5
    loss = torch.where(real, real_weight * per_pixel, per_pixel).mean()
    if hard_negative_fraction > 0 and bool(real.any()):
        real_losses = per_pixel[real]
        hardest = max(1, int(hard_negative_fraction * real_losses.numel()))
        loss = loss + real_losses.topk(hardest).values.mean()
    return loss


def soft_dice(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """1 − the soft Dice of the probabilities and the labels, pooled over the batch
    (segmentation-models-pytorch's binary ``DiceLoss``)."""
    return _SOFT_DICE(logits.float(), label.float())


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
