"""Training batches of composites, and the fixed composite sets used for validation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np
import torch

from fakeseg.config import TrainConfig
from fakeseg.data.composites import JPEG_BLOCK, Composite, label_from, make_composite
from fakeseg.data.pairs import LoadedPair


@dataclass
class Batch:
    image: torch.Tensor  # (B, 3, h, w)
    label: torch.Tensor  # (B, 1, h, w) in [0, 1]
    mask: torch.Tensor  # (B, 1, h, w) binary ground truth (synthetic regions)


def _pad_to(array: np.ndarray, size: int) -> np.ndarray:
    pad_h, pad_w = max(size - array.shape[0], 0), max(size - array.shape[1], 0)
    if not pad_h and not pad_w:
        return array
    widths = [(0, pad_h), (0, pad_w)] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, widths, mode="reflect" if array.dtype.kind == "f" else "edge")


@overload
def _crop(array: np.ndarray, top: int, left: int, size: int) -> np.ndarray: ...
@overload
def _crop(array: None, top: int, left: int, size: int) -> None: ...
@overload
def _crop(array: np.ndarray | None, top: int, left: int, size: int) -> np.ndarray | None: ...
def _crop(array: np.ndarray | None, top: int, left: int, size: int) -> np.ndarray | None:
    if array is None:
        return None
    return _pad_to(array, size)[top:top + size, left:left + size]


def choose_kind(rng: np.random.Generator, config: TrainConfig, has_labels: bool) -> str:
    draw = rng.random()
    if draw < config.p_pure_real:
        return "pure_real"
    if draw < config.p_pure_real + config.p_pure_synthetic:
        return "pure_synthetic"
    kinds = [k for k in config.mask_kinds if k != "classwise" or has_labels] or ["blobs"]
    return kinds[int(rng.integers(len(kinds)))]


class CompositeSampler:
    """Random crops of random pairs, mixed into composites, with their labels."""

    def __init__(self, pairs: Sequence[LoadedPair], heats: Sequence[np.ndarray | None],
                 config: TrainConfig) -> None:
        self.pairs, self.heats, self.config = list(pairs), list(heats), config

    def sample(self, rng: np.random.Generator) -> tuple[Composite, np.ndarray]:
        cfg, size = self.config, self.config.crop_size
        index = int(rng.integers(len(self.pairs)))
        pair, heat = self.pairs[index], self.heats[index]
        height, width = pair.synthetic.shape[:2]
        # offsets on the 8-pixel grid keep a JPEG file's block grid aligned with the crop's
        top = JPEG_BLOCK * int(rng.integers(0, max(height - size, 0) // JPEG_BLOCK + 1))
        left = JPEG_BLOCK * int(rng.integers(0, max(width - size, 0) // JPEG_BLOCK + 1))
        real = _crop(pair.real, top, left, size)
        synthetic = _crop(pair.synthetic, top, left, size)
        label_map = _crop(pair.label, top, left, size)
        heat_crop = _crop(heat, top, left, size)
        pair_mask = _crop(pair.mask, top, left, size)
        if rng.random() < 0.5:  # horizontal flip
            real, synthetic = real[:, ::-1], synthetic[:, ::-1]
            label_map, heat_crop, pair_mask = (None if a is None else a[:, ::-1]
                                               for a in (label_map, heat_crop, pair_mask))
        quality = int(rng.integers(60, 96)) if rng.random() < cfg.p_reencode else None
        kind = choose_kind(rng, cfg, label_map is not None)
        comp = make_composite(real, synthetic, rng, kind=kind, label_map=label_map,
                              coverage=cfg.coverage, blend_sigma=cfg.blend_sigma,
                              reencode_quality=quality, pair_mask=pair_mask)
        return comp, label_from(comp.mask, heat_crop, cfg.target_mode)

    def batch(self, rng: np.random.Generator) -> Batch:
        images, labels, masks = [], [], []
        for _ in range(self.config.batch_size):
            comp, label = self.sample(rng)
            images.append(np.ascontiguousarray(comp.image.transpose(2, 0, 1)))
            labels.append(label[None])
            masks.append(comp.mask[None].astype(np.float32))
        return Batch(torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(labels)),
                     torch.from_numpy(np.stack(masks)))
