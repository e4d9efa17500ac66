"""FakeSegment: the segmentation net S over frozen SSD features, and its user-facing API.

S sees the (synthetic or composite) image's features only. Each tapped layer is reduced to a
few channels by a 1×1 conv, resampled to the working stride, concatenated with the image's
RGB folded to that stride (pixel-unshuffle keeps every pixel), and fed to an smp U-Net with a
ResNet encoder. Its logits are upsampled to full size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn

from fakeseg.errors import FakesegError
from fakeseg.models.checkpoint import (
    check_threshold,
    load_checkpoint,
    load_into,
    save_checkpoint,
    segmenter_config,
)

MIN_SIDE = 8
#: Image-level decision from a heat map (the MediaEval seed's Task B rule): an image is called
#: synthetic when at least this share of its pixels is flagged. A documented guess, not fitted.
DECISION_COVERAGE = 0.05
ENCODER_DEPTH = 4


class FakeSegmentNet(nn.Module):
    """image (B, 3, H, W) in [0, 1] → logits (B, 1, H, W); H, W multiples of ``multiple``."""

    def __init__(self, extractor: nn.Module, *, encoder: str = "resnet18",
                 encoder_weights: str | None = None, reduce_channels: int = 32,
                 use_rgb: bool = True, work_stride: int = 4) -> None:
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
                             encoder_depth=ENCODER_DEPTH, decoder_channels=(128, 64, 32, 16),
                             in_channels=in_channels, classes=1)
        if hasattr(self.unet.encoder, "layer4"):  # unused at depth 4: drop its dead weights
            self.unet.encoder.layer4 = nn.Identity()
        self.multiple = work_stride * 2**ENCODER_DEPTH

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        if height % self.multiple or width % self.multiple:
            raise ValueError(f"input {height}x{width} must be a multiple of {self.multiple}; "
                             "use forward_any_size")
        size = (height // self.work_stride, width // self.work_stride)
        with torch.no_grad():
            features = self.extractor(image)
        parts = [F.interpolate(self.reducers[name](features[name]), size=size, mode="bilinear",
                               align_corners=False) for name in self.layers]
        if self.use_rgb:
            parts.append(F.pixel_unshuffle(image - 0.5, self.work_stride))
        logits = self.unet(torch.cat(parts, dim=1))
        return F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)

    def forward_any_size(self, image: torch.Tensor) -> torch.Tensor:
        """Pad (replicate) to the stride multiple, run, crop back."""
        return pad_and_run(self, image, self.multiple)


def pad_and_run(model: nn.Module, image: torch.Tensor, multiple: int) -> torch.Tensor:
    height, width = image.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if pad_h or pad_w:
        image = F.pad(image, (0, pad_w, 0, pad_h), mode="replicate")
    return model(image)[..., :height, :width]


def tile_windows(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of overlapping windows that cover ``length``."""
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = [*range(0, length - tile, step), length - tile]
    return sorted(set(starts))


@dataclass
class HeatMap:
    """A per-pixel probability of being unreal, plus image-level summaries.

    ``score`` is the fraction of pixels whose probability is ≥ ``threshold`` (the share of the
    image that looks unreal); ``max`` is the highest pixel probability and ``topk_mean`` the mean
    of the top 1 % of pixels.
    """

    probability: np.ndarray  # float32 (H, W) in [0, 1]
    threshold: float

    @property
    def mask(self) -> np.ndarray:
        return self.probability >= self.threshold

    @property
    def score(self) -> float:
        return float(self.mask.mean())

    @property
    def max(self) -> float:
        return float(self.probability.max())

    @property
    def topk_mean(self) -> float:
        flat = self.probability.ravel()
        k = max(1, round(0.01 * flat.size))
        return float(np.partition(flat, flat.size - k)[flat.size - k:].mean())

    def summary(self) -> dict[str, float]:
        return {"score": self.score, "max": self.max, "topk_mean": self.topk_mean,
                "threshold": self.threshold}


class FakeSegment:
    """A trained FakeSegment model: ``FakeSegment.load(path).predict(image) -> HeatMap``."""

    def __init__(self, net: nn.Module, meta: dict[str, Any],
                 device: torch.device | str = "cpu") -> None:
        self.net = net.eval().to(device)
        self.meta = meta
        self.device = torch.device(device)
        self.threshold = float(meta.get("threshold", 0.5))

    @classmethod
    def build(cls, config: dict[str, Any], *, weights: str | None = None) -> nn.Module:
        """The untrained network for a config: FakeSegment's S or a baseline.

        ``weights`` overrides backbone_weights.
        """
        from fakeseg.features import build_backbone

        if config.get("model", "fakesegment") != "fakesegment":
            from fakeseg.models.baselines import build_baseline

            return build_baseline(config["model"], **config.get("model_options", {}))
        extractor = build_backbone(config["backbone"],
                                   weights=weights or config["backbone_weights"],
                                   layers=config.get("layers"))
        return FakeSegmentNet(extractor, encoder=config["encoder"],
                              encoder_weights=config.get("encoder_weights"),
                              reduce_channels=config["reduce_channels"],
                              use_rgb=config["use_rgb"], work_stride=config["work_stride"])

    @classmethod
    def load(cls, path: str | Path, *, device: str = "auto") -> FakeSegment:
        """Load a checkpoint; its config, layers, scales and threshold are validated (types
        and ranges) and its weights must be finite, else a one-line CheckpointError."""
        state, meta, folder = load_checkpoint(path)
        source = folder / "model.json"
        if meta.get("kind") != "segmenter":
            raise FakesegError(f"{folder}: a '{meta.get('kind')}' checkpoint, not a "
                               "segmentation model; use the matching command")
        config = segmenter_config(meta, source)
        meta = {**meta, "config": config, "threshold": check_threshold(
            meta.get("threshold", 0.5), source)}
        # the checkpoint carries the extractor's weights, so no weight file is needed here
        net = cls.build(config, weights="random")
        load_into(net, state, folder / "model.safetensors")
        if hasattr(net, "extractor"):
            net.extractor.weights_tag = str(meta.get("weights_tag", "unknown"))
        return cls(net, meta, resolve_device(device))

    def save(self, folder: str | Path) -> Path:
        return save_checkpoint(folder, self.net.state_dict(), self.meta)

    @torch.no_grad()
    def predict_tensor(self, image: torch.Tensor, *, tile: int = 1024,
                       overlap: int = 128) -> torch.Tensor:
        """(B, 3, H, W) → probabilities (B, 1, H, W); images larger than ``tile`` are tiled."""
        height, width = image.shape[-2:]
        if min(height, width) < MIN_SIDE:
            raise FakesegError(f"image is {width}x{height}; FakeSegment needs at least "
                               f"{MIN_SIDE}x{MIN_SIDE} pixels")
        image = image.to(self.device)
        if max(height, width) <= tile:
            return torch.sigmoid(self.net.forward_any_size(image)).float().cpu()
        total = torch.zeros((image.shape[0], 1, height, width))
        count = torch.zeros((1, 1, height, width))
        ramp = _tile_weight(min(tile, height), min(tile, width), overlap)
        for top in tile_windows(height, tile, overlap):
            for left in tile_windows(width, tile, overlap):
                window = image[..., top:top + tile, left:left + tile]
                probs = torch.sigmoid(self.net.forward_any_size(window)).float().cpu()
                h, w = probs.shape[-2:]
                total[..., top:top + h, left:left + w] += probs * ramp[..., :h, :w]
                count[..., top:top + h, left:left + w] += ramp[..., :h, :w]
        return total / count.clamp_min(1e-6)

    def predict(self, image: np.ndarray | str | Path) -> HeatMap:
        """One image (array (H, W, 3) in [0, 1], or a path) → HeatMap."""
        from fakeseg.features.target import to_batch
        from fakeseg.io import read_image

        array = read_image(image) if isinstance(image, (str, Path)) else np.asarray(image)
        if array.ndim != 3 or array.shape[2] != 3:
            raise FakesegError(f"expected an (H, W, 3) RGB array, got shape {array.shape}")
        probs = self.predict_tensor(to_batch(array.astype(np.float32)))
        return HeatMap(probs[0, 0].numpy(), self.threshold)


def _tile_weight(height: int, width: int, overlap: int) -> torch.Tensor:
    """Blending weights that fall off linearly over ``overlap`` pixels at tile borders."""
    def ramp(n: int) -> torch.Tensor:
        pos = torch.arange(n, dtype=torch.float32)
        edge = torch.minimum(pos + 1, n - pos)
        return (edge / max(overlap, 1)).clamp(max=1.0)

    return (ramp(height)[:, None] * ramp(width)[None, :])[None, None]


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise FakesegError(f"unknown device '{device}'; use auto, cpu or cuda") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise FakesegError("CUDA was asked for but is not available; use --device cpu")
    return resolved
