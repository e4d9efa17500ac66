"""Training batches of composites, and the fixed composite sets used for validation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np
import torch
import torch.nn.functional as F

from fakeseg.config import TrainConfig
from fakeseg.data.composites import JPEG_BLOCK, Composite, label_from, make_composite
from fakeseg.data.pairs import LoadedPair
from fakeseg.io import LUMA_WEIGHTS, pixels_to_float


@dataclass
class Batch:
    image: torch.Tensor  # (B, 3, h, w)
    label: torch.Tensor  # (B, 1, h, w) in [0, 1]
    mask: torch.Tensor  # (B, 1, h, w) binary ground truth (synthetic regions)

    def pin_memory(self) -> Batch:
        """Page-locked copies (the DataLoader calls this for a CUDA run)."""
        return Batch(self.image.pin_memory(), self.label.pin_memory(), self.mask.pin_memory())


def _pad_to(array: np.ndarray, size: int) -> np.ndarray:
    pad_h, pad_w = max(size - array.shape[0], 0), max(size - array.shape[1], 0)
    if not pad_h and not pad_w:
        return array
    widths = [(0, pad_h), (0, pad_w)] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, widths, mode="reflect" if array.dtype.kind == "f" else "edge")


@overload
def _crop(array: np.ndarray, top: int, left: int, size: int, *,
          as_float: bool = False) -> np.ndarray: ...
@overload
def _crop(array: None, top: int, left: int, size: int, *, as_float: bool = False) -> None: ...
@overload
def _crop(array: np.ndarray | None, top: int, left: int, size: int, *,
          as_float: bool = False) -> np.ndarray | None: ...
def _crop(array: np.ndarray | None, top: int, left: int, size: int, *,
          as_float: bool = False) -> np.ndarray | None:
    """The ``size`` square at (top, left), padded where the array is smaller, copied out of
    ``array`` (a memory map reads only these rows); ``as_float`` converts only the crop
    (uint8/uint16 images stay compact until here)."""
    if array is None:
        return None
    crop = np.array(array[top:top + size, left:left + size])
    return _pad_to(pixels_to_float(crop) if as_float else crop, size)


LUMA = np.array(LUMA_WEIGHTS, np.float32)


def _window_side(rng: np.random.Generator, config: TrainConfig) -> int:
    """Side of the window a crop is taken from: ``crop_size``, or with ``scale_jitter`` a
    random multiple of it (log-uniform), later resized to ``crop_size``."""
    if not config.scale_jitter:
        return config.crop_size
    bound = math.log1p(config.scale_jitter)
    return max(JPEG_BLOCK, round(config.crop_size * math.exp(rng.uniform(-bound, bound))))


@overload
def _resized(array: np.ndarray, size: int) -> np.ndarray: ...
@overload
def _resized(array: None, size: int) -> None: ...
def _resized(array: np.ndarray | None, size: int) -> np.ndarray | None:
    """``array`` (h, w[, c]) as a ``size`` square: float maps bilinear (antialiased when
    shrinking), class ids and masks nearest."""
    if array is None or array.shape[0] == size:
        return array
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    tensor = tensor.permute(2, 0, 1)[None] if array.ndim == 3 else tensor[None, None]
    if array.dtype.kind == "f":  # positive weights: no overshoot past the input's range
        out = F.interpolate(tensor.float(), size=(size, size), mode="bilinear",
                            align_corners=False, antialias=True)
    else:
        out = F.interpolate(tensor.float(), size=(size, size), mode="nearest")
    result = (out[0].permute(1, 2, 0) if array.ndim == 3 else out[0, 0]).numpy()
    return result.astype(array.dtype)


def _jitter_colors(images: Sequence[np.ndarray], rng: np.random.Generator,
                   strength: float) -> list[np.ndarray]:
    """The same random brightness, contrast (about mid-grey) and saturation change applied to
    every image of ``images`` (float RGB in [0, 1]), so a pair's two sides stay comparable."""
    brightness, contrast, saturation = rng.uniform(1 - strength, 1 + strength, size=3)
    jittered = []
    for image in images:
        image = (image * brightness - 0.5) * contrast + 0.5
        grey = (image @ LUMA)[..., None]
        jittered.append(np.clip(grey + saturation * (image - grey), 0, 1).astype(np.float32))
    return jittered


def choose_kind(rng: np.random.Generator, config: TrainConfig, has_labels: bool) -> str:
    draw = rng.random()
    if draw < config.p_pure_real:
        return "pure_real"
    if draw < config.p_pure_real + config.p_pure_synthetic:
        return "pure_synthetic"
    kinds = [k for k in config.mask_kinds if k != "classwise" or has_labels] or ["blobs"]
    return kinds[int(rng.integers(len(kinds)))]


def sample_composite(pair: LoadedPair, heat: np.ndarray | None, rng: np.random.Generator,
                     config: TrainConfig) -> tuple[Composite, np.ndarray]:
    """One training sample of one pair: a random crop (on the 8-pixel grid; with
    ``scale_jitter`` of a random size, resized), a random flip, with ``color_jitter`` one
    colour change of both sides, an optional JPEG re-encoding, a composite of a random kind,
    and its label map.

    ``pair`` may hold float or native (uint8/uint16) images and ``heat`` any float dtype;
    every draw comes from ``rng``, so a sample is a function of the pair and the rng's seed.
    """
    side = _window_side(rng, config)
    height, width = pair.synthetic.shape[:2]
    # offsets on the 8-pixel grid keep a JPEG file's block grid aligned with the crop's
    top = JPEG_BLOCK * int(rng.integers(0, max(height - side, 0) // JPEG_BLOCK + 1))
    left = JPEG_BLOCK * int(rng.integers(0, max(width - side, 0) // JPEG_BLOCK + 1))
    size = config.crop_size
    real = _resized(_crop(pair.real, top, left, side, as_float=True), size)
    synthetic = _resized(_crop(pair.synthetic, top, left, side, as_float=True), size)
    label_map = _resized(_crop(pair.label, top, left, side), size)
    heat_crop = _resized(_crop(heat, top, left, side, as_float=True), size)
    pair_mask = _resized(_crop(pair.mask, top, left, side), size)
    if rng.random() < 0.5:  # horizontal flip
        real, synthetic = real[:, ::-1], synthetic[:, ::-1]
        label_map, heat_crop, pair_mask = (None if a is None else a[:, ::-1]
                                           for a in (label_map, heat_crop, pair_mask))
    if config.color_jitter:
        real, synthetic = _jitter_colors((real, synthetic), rng, config.color_jitter)
    quality = int(rng.integers(60, 96)) if rng.random() < config.p_reencode else None
    kind = choose_kind(rng, config, label_map is not None)
    comp = make_composite(real, synthetic, rng, kind=kind, label_map=label_map,
                          coverage=config.coverage, blend_sigma=config.blend_sigma,
                          reencode_quality=quality, pair_mask=pair_mask)
    return comp, label_from(comp.mask, heat_crop, config.target_mode)


def collate_batch(samples: Sequence[tuple[Composite, np.ndarray]]) -> Batch:
    """Samples of :func:`sample_composite` as one :class:`Batch` of (B, C, h, w) tensors."""
    images = [np.ascontiguousarray(comp.image.transpose(2, 0, 1)) for comp, _ in samples]
    labels = [label[None] for _, label in samples]
    masks = [comp.mask[None].astype(np.float32) for comp, _ in samples]
    return Batch(torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(labels)),
                 torch.from_numpy(np.stack(masks)))
