"""Composites of a real image and its synthetic partner (OASIS-style mixing).

``composite = α·S + (1−α)·R`` where α is a mask M, optionally feathered at its edges so that
seams do not give the answer away. Labels are 0 wherever M = 0.
"""

from __future__ import annotations

import io as _io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np
from PIL import Image
from scipy import ndimage

from fakeseg.data.pairs import LoadedPair
from fakeseg.errors import FakesegError

MASK_KINDS = ("rectangles", "blobs", "classwise")
JPEG_BLOCK = 8  # crops start on multiples of it, keeping JPEG block grids aligned


def rectangle_mask(height: int, width: int, rng: np.random.Generator,
                   coverage: tuple[float, float] = (0.2, 0.6)) -> np.ndarray:
    """CutMix-style: one to three axis-aligned rectangles until the coverage is reached."""
    target = rng.uniform(*coverage)
    mask = np.zeros((height, width), dtype=bool)
    for _ in range(int(rng.integers(1, 4))):
        if mask.mean() >= target:
            break
        side = np.sqrt(max(target - mask.mean(), 0.02))
        h = int(np.clip(round(height * side * rng.uniform(0.7, 1.4)), 2, height))
        w = int(np.clip(round(width * side * rng.uniform(0.7, 1.4)), 2, width))
        top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
        mask[top:top + h, left:left + w] = True
    return mask


def blob_mask(height: int, width: int, rng: np.random.Generator,
              coverage: tuple[float, float] = (0.2, 0.6)) -> np.ndarray:
    """Free-form blobs: smoothed noise thresholded at the quantile of the drawn coverage."""
    sigma = max(min(height, width) / rng.uniform(6.0, 12.0), 1.0)
    noise = ndimage.gaussian_filter(rng.standard_normal((height, width)), sigma, mode="wrap")
    target = rng.uniform(*coverage)
    return noise > np.quantile(noise, 1.0 - target)


def classwise_mask(label_map: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """OASIS: a coin flip per class present; at least one class each way when possible."""
    classes = np.unique(label_map)
    flips = rng.random(classes.size) < 0.5
    if classes.size > 1 and (flips.all() or not flips.any()):
        flips[int(rng.integers(classes.size))] ^= True
    return np.isin(label_map, classes[flips])


def draw_mask(kind: str, height: int, width: int, rng: np.random.Generator, *,
              label_map: np.ndarray | None = None,
              coverage: tuple[float, float] = (0.2, 0.6)) -> np.ndarray:
    if kind == "rectangles":
        return rectangle_mask(height, width, rng, coverage)
    if kind == "blobs":
        return blob_mask(height, width, rng, coverage)
    if kind == "classwise":
        if label_map is None:
            return blob_mask(height, width, rng, coverage)
        return classwise_mask(label_map, rng)
    raise FakesegError(f"mask kind '{kind}' is unknown; use one of {', '.join(MASK_KINDS)}")


def feather(mask: np.ndarray, sigma: float) -> np.ndarray:
    """Soft blending weights α in [0, 1]; sigma 0 keeps the hard mask."""
    alpha = mask.astype(np.float32)
    if sigma > 0:
        alpha = ndimage.gaussian_filter(alpha, sigma).astype(np.float32)
    return alpha


def blend(real: np.ndarray, synthetic: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return alpha[..., None] * synthetic + (1.0 - alpha[..., None]) * real


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Re-encode an RGB float image through JPEG at ``quality`` (shortcut control)."""
    buffer = _io.BytesIO()
    Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)).save(
        buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32) / 255.0


def label_from(mask: np.ndarray, heat: np.ndarray | None, mode: str) -> np.ndarray:
    """Per-pixel training label: 0 where ``mask`` is 0; inside, by ``mode``."""
    inside = mask.astype(np.float32)
    if mode == "mask":
        return inside
    if heat is None:
        raise FakesegError(f"target mode '{mode}' needs heat maps; use target_mode=mask")
    if mode == "heatmap":
        return inside * heat
    if mode == "hybrid":
        return inside * (0.5 + 0.5 * heat)
    raise FakesegError(f"target mode '{mode}' is unknown; use heatmap, mask or hybrid")


@dataclass
class Composite:
    image: np.ndarray  # float32 (H, W, 3)
    mask: np.ndarray  # bool (H, W): where the synthetic image was used
    kind: str  # rectangles | blobs | classwise | pure_real | pure_synthetic


def make_composite(real: np.ndarray, synthetic: np.ndarray, rng: np.random.Generator, *,
                   kind: str, label_map: np.ndarray | None = None,
                   coverage: tuple[float, float] = (0.2, 0.6), blend_sigma: float = 2.0,
                   reencode_quality: int | None = None,
                   pair_mask: np.ndarray | None = None) -> Composite:
    """One composite of a pair. ``kind`` may also be ``pure_real`` or ``pure_synthetic``.

    With ``reencode_quality`` both sources go through the same JPEG re-encoding first, so a
    difference in compression between the real and synthetic files cannot give the answer away.
    ``pair_mask`` marks where the pair's synthetic image differs at all (a dataset's
    ``masks/``); the ground truth is then the mixing mask intersected with it.
    """
    if real.shape != synthetic.shape:
        raise FakesegError(f"composite needs equal sizes, got {real.shape} and {synthetic.shape}")
    if reencode_quality is not None:
        real, synthetic = jpeg_roundtrip(real, reencode_quality), jpeg_roundtrip(
            synthetic, reencode_quality)
    height, width = real.shape[:2]
    differs = np.ones((height, width), bool) if pair_mask is None else pair_mask.astype(bool)
    if kind == "pure_real":
        return Composite(real.astype(np.float32), np.zeros((height, width), bool), kind)
    if kind == "pure_synthetic":
        return Composite(synthetic.astype(np.float32), differs.copy(), kind)
    mask = draw_mask(kind, height, width, rng, label_map=label_map, coverage=coverage)
    image = blend(real, synthetic, feather(mask, blend_sigma)).astype(np.float32)
    return Composite(image, mask & differs, kind)


@dataclass
class CompositeItem:
    """One evaluation image: a composite of a pair, with everything cropped alike."""

    name: str
    stem: str
    kind: str
    image: np.ndarray  # float32 (H, W, 3)
    mask: np.ndarray  # bool (H, W): ground truth, the synthetic regions
    real: np.ndarray  # the real image under it (for the pair oracle)
    label: np.ndarray | None  # class ids, when the dataset has labels/


@overload
def _center(array: np.ndarray, side: int | None) -> np.ndarray: ...
@overload
def _center(array: None, side: int | None) -> None: ...
@overload
def _center(array: np.ndarray | None, side: int | None) -> np.ndarray | None: ...
def _center(array: np.ndarray | None, side: int | None) -> np.ndarray | None:
    if array is None or side is None:
        return array
    height, width = array.shape[:2]
    top, left = (max((n - side) // 2, 0) // JPEG_BLOCK * JPEG_BLOCK for n in (height, width))
    return array[top:top + side, left:left + side]


def composite_set(pairs: Sequence[LoadedPair], *, seed: int | Sequence[int], kinds: Sequence[str],
                  per_pair: int = 2, coverage: tuple[float, float] = (0.2, 0.6),
                  blend_sigma: float = 2.0, reencode_quality: int | None = None,
                  include_pure: bool = True, max_side: int | None = 512) -> list[CompositeItem]:
    """A deterministic set of composites for validation or evaluation.

    Each pair gives ``per_pair`` composites (cycling through ``kinds``) plus, with
    ``include_pure``, its pure-real and pure-synthetic images. Images larger than ``max_side``
    are centre-cropped to keep evaluation cheap. Same seed → same composites.
    """
    rng = np.random.default_rng(seed)
    items: list[CompositeItem] = []
    for pair in pairs:
        real, synthetic = _center(pair.real, max_side), _center(pair.synthetic, max_side)
        label_map, pair_mask = _center(pair.label, max_side), _center(pair.mask, max_side)
        names = [kinds[i % len(kinds)] for i in range(per_pair)]
        if include_pure:
            names += ["pure_real", "pure_synthetic"]
        for index, kind in enumerate(names):
            if kind == "classwise" and label_map is None:
                kind = "blobs"
            comp = make_composite(real, synthetic, rng, kind=kind, label_map=label_map,
                                  coverage=coverage, blend_sigma=blend_sigma,
                                  reencode_quality=reencode_quality, pair_mask=pair_mask)
            shown_real = real if reencode_quality is None else jpeg_roundtrip(
                real, reencode_quality)
            items.append(CompositeItem(f"{pair.stem}__{index}_{kind}", pair.stem, kind,
                                       comp.image, comp.mask, shown_real, label_map))
    return items
