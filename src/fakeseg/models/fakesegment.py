"""FakeSegment, the method: the segmentation net S over frozen SSD features.

S sees the (synthetic or composite) image's features only. Each tapped layer is reduced to a
few channels by a 1×1 conv, resampled to the working stride, concatenated with the image's
RGB folded to that stride (pixel-unshuffle keeps every pixel), and fed to an smp U-Net with a
ResNet encoder. Its logits are upsampled to full size.
"""

from __future__ import annotations

from collections.abc import Sequence

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn

from fakeseg.features.backbones import FeaturePyramid
from fakeseg.models.base import Segmenter

ENCODER_DEPTH = 4
DEFAULT_DECODER = (128, 64, 32, 16)


class FakeSegment(Segmenter):
    """image (B, 3, H, W) in [0, 1] → logits (B, 1, H, W); H, W multiples of ``multiple``.

    ``decoder_channels`` sets the U-Net's width (four levels; default (128, 64, 32, 16)):
    tests build a tiny one.
    """

    def __init__(self, extractor: FeaturePyramid, *, encoder: str = "resnet18",
                 encoder_weights: str | None = None, reduce_channels: int = 32,
                 use_rgb: bool = True, work_stride: int = 4,
                 decoder_channels: Sequence[int] | None = None) -> None:
        super().__init__()
        self.extractor = extractor
        self.layers: tuple[str, ...] = tuple(extractor.layers)
        self.work_stride = work_stride
        self.use_rgb = use_rgb
        self.reducers = nn.ModuleDict({
            name: nn.Sequential(nn.Conv2d(extractor.channels[name], reduce_channels, 1,
                                          bias=False),
                                nn.BatchNorm2d(reduce_channels), nn.ReLU(inplace=True))
            for name in self.layers
        })
        in_channels = reduce_channels * len(self.layers) + (3 * work_stride**2 if use_rgb else 0)
        self.unet = smp.Unet(encoder_name=encoder, encoder_weights=encoder_weights,
                             encoder_depth=ENCODER_DEPTH,
                             decoder_channels=tuple(decoder_channels or DEFAULT_DECODER),
                             in_channels=in_channels, classes=1)
        if hasattr(self.unet.encoder, "layer4"):  # unused at depth 4: drop its dead weights
            self.unet.encoder.layer4 = nn.Identity()
        self.multiple = work_stride * 2**ENCODER_DEPTH

    @property
    def feature_extractor(self) -> FeaturePyramid:
        return self.extractor

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        self.check_size(image)
        height, width = image.shape[-2:]
        size = (height // self.work_stride, width // self.work_stride)
        # frozen features; gradients reach the image only when it asks (a refiner's critic)
        with torch.set_grad_enabled(torch.is_grad_enabled() and image.requires_grad):
            features = self.extractor(image)
        parts = [F.interpolate(self.reducers[name](features[name]), size=size, mode="bilinear",
                               align_corners=False) for name in self.layers]
        if self.use_rgb:
            parts.append(F.pixel_unshuffle(image - 0.5, self.work_stride))
        logits = self.unet(torch.cat(parts, dim=1))
        return F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
