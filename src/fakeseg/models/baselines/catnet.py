"""``catnet``: CAT-Net's two streams (Kwon et al., WACV 2021 / IJCV 2022), reduced.

CAT-Net localises splicing from JPEG compression artifacts. An RGB stream sees the pixels; a
DCT stream sees the Y channel's 8×8 block-DCT coefficients, clipped (|c| ≤ T) and one-hot
encoded, so it can read the comb-shaped coefficient histograms that (double) JPEG
quantisation leaves. A dilated convolution (dilation 8) relates the same frequency in
neighbouring blocks; a block-wise rearrangement puts the 64 frequencies into channels; the two
streams are fused at 1/8 resolution.

Reductions, all forced by our contract (RGB in, logits out): the DCT is recomputed from the
decoded pixels on the grid anchored at the image's top-left corner (JPEG's own grid for
uncropped files and for 8-aligned crops), so the stream sees dequantised coefficients and no
quantisation table; a ResNet-18 encoder replaces HRNet; the decoder is a small U-Net.
"""

from __future__ import annotations

import math

import numpy as np
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn

from fakeseg.features.backbones import Normalize
from fakeseg.io import LUMA_WEIGHTS
from fakeseg.models.base import Segmenter


def dct_basis(size: int = 8) -> torch.Tensor:
    """(size², 1, size, size) orthonormal DCT-II basis; filter u*size+v is frequency (u, v)."""
    n = np.arange(size)
    scale = np.where(n == 0, math.sqrt(1 / size), math.sqrt(2 / size))
    one_d = scale[:, None] * np.cos(np.pi * (2 * n[None, :] + 1) * n[:, None] / (2 * size))
    basis = np.einsum("ux,vy->uvxy", one_d, one_d).reshape(size * size, 1, size, size)
    return torch.from_numpy(basis.astype(np.float32))


class BlockDCT(nn.Module):
    """RGB in [0, 1] → the Y channel's 8×8 block DCT (B, 64, H/8, W/8), JPEG's level shift."""

    basis: torch.Tensor
    luma: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("basis", dct_basis(8))
        self.register_buffer("luma", torch.tensor(LUMA_WEIGHTS).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        y = (image.float() * self.luma).sum(1, keepdim=True) * 255.0 - 128.0
        return F.conv2d(y, self.basis, stride=8)


def one_hot_magnitudes(coefficients: torch.Tensor, clip: int) -> torch.Tensor:
    """(B, 64, h, w) coefficients → (B, clip+1, 8h, 8w) one-hot of round(|c|) clipped to clip.

    Each coefficient keeps its place in its block (the spatial layout of a JPEG's DCT plane).
    """
    plane = F.pixel_shuffle(coefficients, 8)  # (B, 1, 8h, 8w)
    index = plane.abs().round().clamp(max=clip).long()[:, 0]
    return F.one_hot(index, clip + 1).permute(0, 3, 1, 2).float()


def conv_bn(cin: int, cout: int, kernel: int = 3, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=dilation * (kernel // 2),
                                   dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DCTStream(nn.Module):
    """One-hot DCT plane → dilated conv → frequencies-as-channels → features at 1/8."""

    def __init__(self, clip: int = 20, plane_channels: int = 16, out_channels: int = 128,
                 ) -> None:
        super().__init__()
        self.clip = clip
        self.dct = BlockDCT()
        self.plane = conv_bn(clip + 1, plane_channels, 3, dilation=8)
        self.frequencies = conv_bn(plane_channels * 64, out_channels, 1)
        self.refine = nn.Sequential(conv_bn(out_channels, out_channels),
                                    conv_bn(out_channels, out_channels))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            planes = one_hot_magnitudes(self.dct(image), self.clip)
        features = F.pixel_unshuffle(self.plane(planes.to(image.dtype)), 8)
        return self.refine(self.frequencies(features))


class UpBlock(nn.Module):
    def __init__(self, cin: int, skip: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(conv_bn(cin + skip, cout), conv_bn(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
        return self.conv(torch.cat([x, skip], 1))


class CATNet(Segmenter):
    """image (B, 3, H, W) in [0, 1] → logits (B, 1, H, W); H, W multiples of 16."""

    multiple = 16

    def __init__(self, *, encoder_name: str = "resnet18", clip: int = 20,
                 dct_channels: int = 128, plane_channels: int = 16,
                 decoder_channels: tuple[int, int, int] = (128, 64, 32)) -> None:
        super().__init__()
        self.encoder = smp.encoders.get_encoder(encoder_name, in_channels=3, depth=4,
                                                weights=None)
        if hasattr(self.encoder, "layer4"):
            self.encoder.layer4 = nn.Identity()  # depth 4 never runs it
        s2, s4, s8, s16 = self.encoder.out_channels[-4:]  # strides 2, 4, 8, 16
        self.dct_stream = DCTStream(clip, plane_channels, dct_channels)
        self.fuse = conv_bn(s8 + dct_channels, s8, 1)
        d8, d4, d2 = decoder_channels
        self.up8 = UpBlock(s16, s8, d8)
        self.up4 = UpBlock(d8, s4, d4)
        self.up2 = UpBlock(d4, s2, d2)
        self.head = nn.Conv2d(d2, 1, 1)
        self.normalize = Normalize()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        self.check_size(image)
        features = self.encoder(self.normalize(image))
        s2, s4, s8, s16 = features[-4:]
        fused = self.fuse(torch.cat([s8, self.dct_stream(image)], 1))
        x = self.up2(self.up4(self.up8(s16, fused), s4), s2)
        return F.interpolate(self.head(x), size=image.shape[-2:], mode="bilinear",
                             align_corners=False)
