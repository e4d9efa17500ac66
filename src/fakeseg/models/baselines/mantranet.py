"""``mantranet``: ManTraNet (Wu, AbdAlmageed & Natarajan, CVPR 2019), written from the paper.

Faithful to the paper:

* the manipulation-trace feature extractor's first layer has three branches, concatenated:
  fixed SRM high-pass filters (the 3 classic 5×5 kernels applied to each colour channel,
  9 maps), a BayarConv2D (constrained conv: each 5×5 kernel's centre is −1 and its other
  taps sum to 1, enforced on every forward) and a plain 5×5 conv; input scaled to [−1, 1];
* a VGG-style 3×3 conv stack after it, at full resolution by default;
* the local anomaly detection network: a 1×1 adaptation layer with batch norm, deviation
  features at several scales — one from the global mean, and Z-scores against local means
  over 7, 15 and 31-pixel windows — fed as a sequence (coarse to fine) to a ConvLSTM2D whose
  last hidden state a conv turns into one logit channel. Everything keeps the input's size.

Reduced or changed:

* widths: a few blocks of width 32 (default) instead of the paper's VGG-16-sized extractor
  with 256 output features; ConvLSTM with 8 hidden channels and 5×5 kernels (paper 7×7);
* no pre-training on the paper's 385 manipulation types: trained from scratch on our
  composites with the shared trainer; batch norm in the stack for training from scratch;
* the Z-score denominator is the local standard deviation over the same window
  (``sqrt(avgpool(x²) − avgpool(x)²) + eps``), not the paper's global std with a learned floor;
* optional ``stride`` > 1 runs the stack and detector at 1/stride resolution and upsamples
  the logits (``multiple`` = stride); the default ``stride=1`` keeps full resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fakeseg.models.base import Segmenter

SRM_KERNELS = (
    (1 / 4, ((0, 0, 0, 0, 0), (0, -1, 2, -1, 0), (0, 2, -4, 2, 0), (0, -1, 2, -1, 0),
             (0, 0, 0, 0, 0))),
    (1 / 12, ((-1, 2, -2, 2, -1), (2, -6, 8, -6, 2), (-2, 8, -12, 8, -2), (2, -6, 8, -6, 2),
              (-1, 2, -2, 2, -1))),
    (1 / 2, ((0, 0, 0, 0, 0), (0, 0, 0, 0, 0), (0, 1, -2, 1, 0), (0, 0, 0, 0, 0),
             (0, 0, 0, 0, 0))),
)


def srm_kernels() -> torch.Tensor:
    """The 3 classic SRM high-pass kernels, (3, 1, 5, 5)."""
    return torch.stack([scale * torch.tensor(k, dtype=torch.float32)
                        for scale, k in SRM_KERNELS])[:, None]


class SRMConv2d(nn.Module):
    """Fixed SRM filters applied to each input channel: (B, C, H, W) → (B, 3C, H, W)."""

    weight: torch.Tensor

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.register_buffer("weight", srm_kernels().repeat(in_channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight.to(x.dtype), padding=2, groups=self.in_channels)


class BayarConv2d(nn.Module):
    """Constrained conv (Bayar & Stamm): per kernel, centre −1 and the other taps sum to 1."""

    centre: torch.Tensor

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError("BayarConv2d needs an odd kernel size")
        self.weight = nn.Parameter(torch.rand(out_channels, in_channels, kernel_size,
                                              kernel_size))
        centre = torch.zeros(1, 1, kernel_size, kernel_size)
        centre[..., kernel_size // 2, kernel_size // 2] = 1
        self.register_buffer("centre", centre)

    def constrained_weight(self) -> torch.Tensor:
        off = self.weight * (1 - self.centre)
        total = off.sum(dim=(2, 3), keepdim=True)
        total = torch.where(total.abs() < 1e-6, torch.full_like(total, 1e-6), total)
        return off / total - self.centre

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.constrained_weight(), padding=self.weight.shape[-1] // 2)


def _box_sum(x: torch.Tensor, window: int) -> torch.Tensor:
    """Sum over a window×window box (zero outside), same size out; separable depthwise convs."""
    channels, half = x.shape[1], window // 2
    rows = x.new_ones(channels, 1, window, 1)
    x = F.conv2d(x, rows, padding=(half, 0), groups=channels)
    return F.conv2d(x, rows.transpose(2, 3), padding=(0, half), groups=channels)


def box_mean(x: torch.Tensor, window: int) -> torch.Tensor:
    """Mean over a window×window box, same size out; borders average only inside the image."""
    return _box_sum(x, window) / _box_sum(x.new_ones(1, 1, *x.shape[-2:]), window)


def zscore_pool(x: torch.Tensor, window: int, eps: float = 1e-2) -> torch.Tensor:
    """(x − local mean) / (local std + eps) over a window×window box."""
    mean = box_mean(x, window)
    var = (box_mean(x * x, window) - mean * mean).clamp_min(0)
    return (x - mean) / (var.sqrt() + eps)


def global_zscore(x: torch.Tensor, eps: float = 1e-2) -> torch.Tensor:
    """Deviation from the per-image, per-channel global mean, in global stds."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    std = x.std(dim=(2, 3), keepdim=True, unbiased=False)
    return (x - mean) / (std + eps)


class ConvLSTMCell(nn.Module):
    """One ConvLSTM step: gates from conv([x, h]); returns the new (h, c)."""

    def __init__(self, in_channels: int, hidden: int, kernel_size: int = 5) -> None:
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(in_channels + hidden, 4 * hidden, kernel_size,
                               padding=kernel_size // 2)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden, *x.shape[-2:])
            state = (zeros, zeros)
        h, c = state
        i, f, g, o = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


def _conv_bn_relu(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class ManTraNet(Segmenter):
    """image (B, 3, H, W) in [0, 1] → logits (B, 1, H, W); H, W multiples of ``stride``."""

    def __init__(self, *, width: int = 32, blocks: int = 3, plain_channels: int = 10,
                 bayar_channels: int = 3, feature_channels: int = 64,
                 adapt_channels: int = 32, windows: Sequence[int] = (7, 15, 31),
                 lstm_hidden: int = 8, lstm_kernel: int = 5, stride: int = 1) -> None:
        super().__init__()
        self.windows = tuple(sorted(windows, reverse=True))  # coarse → fine after the global one
        self.multiple = stride
        self.srm = SRMConv2d(3)
        self.bayar = BayarConv2d(3, bayar_channels)
        self.plain = nn.Conv2d(3, plain_channels, 5, padding=2)
        first = 9 + bayar_channels + plain_channels
        layers: list[nn.Module] = [nn.BatchNorm2d(first)]
        channels = first
        for i in range(blocks):
            out = width * 2 ** min(i, 1)
            layers += _conv_bn_relu(channels, out, stride if i == 0 else 1)
            layers += _conv_bn_relu(out, out)
            channels = out
        layers.append(nn.Conv2d(channels, feature_channels, 3, padding=1))
        self.features = nn.Sequential(*layers)
        self.adapt = nn.Sequential(nn.Conv2d(feature_channels, adapt_channels, 1, bias=False),
                                   nn.BatchNorm2d(adapt_channels))
        self.lstm = ConvLSTMCell(adapt_channels, lstm_hidden, lstm_kernel)
        self.decision = nn.Conv2d(lstm_hidden, 1, lstm_kernel, padding=lstm_kernel // 2)

    def trace_features(self, image: torch.Tensor) -> torch.Tensor:
        """The manipulation-trace feature extractor (SRM | Bayar | conv, then the stack)."""
        x = image * 2 - 1
        first = torch.cat([self.srm(x), self.bayar(x), self.plain(x)], dim=1)
        return self.features(first)

    def zscore_sequence(self, features: torch.Tensor) -> list[torch.Tensor]:
        """Deviation maps: global, then each window from coarse to fine."""
        return [global_zscore(features), *(zscore_pool(features, w) for w in self.windows)]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        self.check_size(image)
        adapted = self.adapt(self.trace_features(image))
        # local variances cancel catastrophically in half precision: keep this part in fp32
        with torch.autocast(adapted.device.type, enabled=False):
            sequence = self.zscore_sequence(adapted.float())
        state = None
        for z in sequence:
            state = self.lstm(z, state)
        assert state is not None
        logits = self.decision(state[0])
        if logits.shape[-2:] != image.shape[-2:]:
            logits = F.interpolate(logits, size=image.shape[-2:], mode="bilinear",
                                   align_corners=False)
        return logits
