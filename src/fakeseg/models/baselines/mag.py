"""``mag``: Mixed Adversarial Generators (Kniaz, Knyaz & Remondino, NeurIPS 2019), reduced.

The paper trains an annotation generator GA (image → splice mask) together with a retouching
generator GR (spliced image + mask → retouched image that hides the splice) and two
discriminators: D_A judges (image, mask) pairs (ground truth vs GA's) and D_R judges whether
an image looks authentic. GR keeps producing harder examples, so GA must learn traces that
survive retouching. Here:

* ``forward`` is GA, a small U-Net (image → mask logits) — all that inference uses;
* GR is the same kind of U-Net on (image, ground-truth mask); its output is a bounded
  residual added inside the mask only: ``clamp(image + mask · tanh(GR(image, mask)), 0, 1)``;
* D_A is :class:`~fakeseg.models.discriminator.PatchDiscriminator` on (mask, image);
* D_R is the same PatchGAN on (high-pass residual of the luminance, image). Our data has no
  separate authentic images, so D_R's "authentic" examples are the patches of each input
  that the mask leaves untouched, and its "fake" examples are the masked patches of GR's
  retouched image (weighted by mask coverage);
* ``auxiliary_loss`` (added to GA's BCE, updates GA and GR only) = GA's adversarial term
  against D_A + GA's BCE on the retouched image (GR's output detached) + GR's terms: fool D_R
  on the masked patches, make GA (weights frozen for this term) miss the splice, and an L1
  term keeping the retouched image close to the input;
* ``discriminator_loss`` = D_A's + D_R's BCE, with GA's logits and GR's output detached.

Reduced vs the paper: widths and depths (pix2pix-sized 8-level U-Nets there), no separate
authentic-image stream for D_R (patch targets from the mask instead), fixed loss weights,
and training with our shared trainer on our composites.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from fakeseg.models.base import Segmenter
from fakeseg.models.baselines.mantranet import srm_kernels
from fakeseg.models.discriminator import PatchDiscriminator


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallUNet(nn.Module):
    """A plain U-Net: ``depth`` max-pool levels, widths doubling from ``width``."""

    def __init__(self, in_channels: int, out_channels: int, width: int = 16,
                 depth: int = 3) -> None:
        super().__init__()
        widths = [width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([_double_conv(in_channels, widths[0])]
                                  + [_double_conv(a, b) for a, b in pairwise(widths)])
        self.up = nn.ModuleList([_double_conv(b + a, a)
                                 for a, b in pairwise(widths)][::-1])
        self.head = nn.Conv2d(widths[0], out_channels, 1)
        self.multiple = 2**depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(F.max_pool2d(x, 2) if i else x)
            skips.append(x)
        for block, skip in zip(self.up, skips[-2::-1], strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([skip, x], dim=1))
        return self.head(x)


def _frozen(module: nn.Module, *args: torch.Tensor) -> torch.Tensor:
    """Run ``module`` with detached weights: gradients reach the inputs, not the module."""
    params = {name: p.detach() for name, p in module.named_parameters()}
    return functional_call(module, params, args)


def _bce(scores: torch.Tensor, target: float, weight: torch.Tensor | None = None
         ) -> torch.Tensor:
    """BCE-with-logits against a constant target, optionally a weighted mean."""
    losses = F.binary_cross_entropy_with_logits(scores.float(),
                                                torch.full_like(scores.float(), target),
                                                reduction="none")
    if weight is None:
        return losses.mean()
    return (losses * weight).sum() / weight.sum().clamp_min(1e-6)


class MAG(Segmenter):
    """GA (``forward``) plus GR, D_A and D_R for training; H, W multiples of 2**depth."""

    has_auxiliary_loss = True
    has_own_adversary = True
    high_pass: torch.Tensor

    def __init__(self, *, width: int = 16, depth: int = 3, disc_width: int = 16,
                 disc_depth: int = 3, adv_weight: float = 0.05, retouched_weight: float = 0.5,
                 fool_weight: float = 0.1, l1_weight: float = 10.0) -> None:
        super().__init__()
        self.annotator = SmallUNet(3, 1, width, depth)        # GA
        self.retoucher = SmallUNet(4, 3, width, depth)        # GR
        self.annotation_disc = PatchDiscriminator(with_image=True, width=disc_width,
                                                  depth=disc_depth)  # D_A
        self.retouch_disc = PatchDiscriminator(with_image=True, width=disc_width,
                                               depth=disc_depth)     # D_R
        self.register_buffer("high_pass", srm_kernels()[:1])
        self.multiple = self.annotator.multiple
        self.weights = {"ga_adv": adv_weight, "ga_retouched": retouched_weight,
                        "gr_adv": adv_weight, "gr_fool": fool_weight, "gr_l1": l1_weight}

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        self.check_size(image)
        return self.annotate(image)

    def annotate(self, image: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        """GA's logits; ``frozen`` runs it with detached weights (for GR's loss)."""
        x = image * 2 - 1
        return _frozen(self.annotator, x) if frozen else self.annotator(x)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [*self.annotator.parameters(), *self.retoucher.parameters()]

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return [*self.annotation_disc.parameters(), *self.retouch_disc.parameters()]

    def retouch(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """GR: change the image inside ``mask`` only, to hide the splice."""
        residual = torch.tanh(self.retoucher(torch.cat([image * 2 - 1, mask * 2 - 1], dim=1)))
        return (image + mask * residual).clamp(0, 1)

    def _retouch_scores(self, image: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        """D_R's patch scores (1 = looks authentic) for an image."""
        gray = image.mean(dim=1, keepdim=True)
        residual = 4 * F.conv2d(gray, self.high_pass.to(gray.dtype), padding=2)
        if frozen:
            return _frozen(self.retouch_disc, residual, image)
        return self.retouch_disc(residual, image)

    @staticmethod
    def _coverage(mask: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Fraction of each discriminator patch the mask covers."""
        height, width = scores.shape[-2:]
        return F.adaptive_avg_pool2d(mask, (int(height), int(width)))

    def auxiliary_loss(self, image: torch.Tensor, label: torch.Tensor, logits: torch.Tensor
                       ) -> tuple[torch.Tensor, dict[str, float]]:
        """GA's adversarial and retouched-image terms plus GR's losses (see module doc)."""
        image, label = image.float(), label.float()
        terms: dict[str, torch.Tensor] = {}
        terms["ga_adv"] = _bce(_frozen(self.annotation_disc, torch.sigmoid(logits.float()),
                                       image), 1.0)
        retouched = self.retouch(image, label)
        terms["ga_retouched"] = F.binary_cross_entropy_with_logits(
            self.annotate(retouched.detach()).float(), label)
        scores = self._retouch_scores(retouched, frozen=True)
        terms["gr_adv"] = _bce(scores, 1.0, self._coverage(label, scores))
        terms["gr_fool"] = _bce(self.annotate(retouched, frozen=True), 0.0, label)
        terms["gr_l1"] = (retouched - image).abs().mean()
        total = sum((self.weights[k] * v for k, v in terms.items()), image.new_zeros(()))
        return total, {k: float(v.detach()) for k, v in terms.items()}

    def discriminator_loss(self, image: torch.Tensor, label: torch.Tensor, logits: torch.Tensor
                           ) -> tuple[torch.Tensor, dict[str, float]]:
        """D_A: ground truth (1) vs GA's maps (0); D_R: untouched patches (1) vs retouched (0)."""
        image, label = image.float(), label.float()
        real = self.annotation_disc(label, image)
        fake = self.annotation_disc(torch.sigmoid(logits.detach().float()), image)
        d_a = 0.5 * (_bce(real, 1.0) + _bce(fake, 0.0))
        with torch.no_grad():
            retouched = self.retouch(image, label)
        authentic = self._retouch_scores(image)
        touched = self._retouch_scores(retouched)
        d_r = 0.5 * (_bce(authentic, 1.0, (self._coverage(label, authentic) == 0).float())
                     + _bce(touched, 0.0, self._coverage(label, touched)))
        return d_a + d_r, {"d_a": float(d_a.detach()), "d_r": float(d_r.detach())}
