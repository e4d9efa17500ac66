"""Localisation sets: images with binary ground-truth masks (MediaEval Task B style).

``IMAGES/x.jpg`` is paired with ``MASKS/x.png`` by file stem. A mask is 0/1 or 0/255 and marks
the synthetic (manipulated) pixels; ``invert`` reads masks that mark the real pixels instead,
``resize`` resamples a mask of another size to its image. The one home of reading such a set,
for training (``fakeseg train --images --masks``) and for ``fakeseg evaluate`` in mask mode.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from fakeseg.errors import DataError, FakesegError
from fakeseg.io import list_images, read_image, read_mask

MissingMask = Literal["error", "real"]
MISSING_MASK_CHOICES: tuple[str, ...] = ("error", "real")


@dataclass(frozen=True)
class MaskOptions:
    """How a set's masks are read; recorded in every run trained on it."""

    invert: bool = False  # masks mark the real pixels
    resize: bool = False  # resample masks whose size differs from their image
    missing: MissingMask = "error"  # an image without a mask: an error, or all real

    def __post_init__(self) -> None:
        if self.missing not in MISSING_MASK_CHOICES:
            raise FakesegError(f"missing-mask rule '{self.missing}' is unknown; use "
                               f"{' or '.join(MISSING_MASK_CHOICES)}")


@dataclass(frozen=True)
class MaskedImage:
    stem: str
    image: Path
    mask: Path | None  # None: no mask file, the image counts as all real


@dataclass(frozen=True)
class MaskedSet:
    images: Path
    masks: Path
    items: tuple[MaskedImage, ...]
    options: MaskOptions

    @property
    def stems(self) -> list[str]:
        return [item.stem for item in self.items]

    def subset(self, stems: list[str]) -> list[MaskedImage]:
        by_stem = {item.stem: item for item in self.items}
        missing = [s for s in stems if s not in by_stem]
        if missing:
            raise DataError(f"{self.images}: the split names {len(missing)} image(s) that are "
                            f"not there (e.g. '{missing[0]}'); restore them or use a new --out")
        return [by_stem[s] for s in stems]


@dataclass
class LoadedMasked:
    stem: str
    image: np.ndarray  # float32 (H, W, 3) in [0, 1]
    mask: np.ndarray  # bool (H, W): the synthetic pixels


def _unique_by_stem(files: list[Path], folder: Path) -> dict[str, Path]:
    counts = Counter(p.stem for p in files)
    clashes = sorted(stem for stem, n in counts.items() if n > 1)
    if clashes:
        raise DataError(f"{folder}: several files share the stem(s) {', '.join(clashes[:5])}; "
                        "keep one file per name")
    return {p.stem: p for p in files}


def _names(stems: list[str], limit: int = 5) -> str:
    shown = ", ".join(stems[:limit])
    return shown + (f" and {len(stems) - limit} more" if len(stems) > limit else "")


def index_masked(images: str | Path, masks: str | Path,
                 options: MaskOptions | None = None) -> MaskedSet:
    """Pair every image of ``images`` with the mask of the same stem in ``masks``.

    Images without a mask are all real when ``options.missing`` is ``"real"``; otherwise the
    error names them. A mask without an image is ignored.
    """
    options = options or MaskOptions()
    images, masks = Path(images), Path(masks)
    for folder, option in ((images, "--images"), (masks, "--masks")):
        if not folder.is_dir():
            raise DataError(f"{folder}: not a folder; give an existing folder to {option}")
    image_files = _unique_by_stem(list_images(images), images)
    if not image_files:
        raise DataError(f"{images}: no images found (PNG, JPEG, TIFF, WebP or BMP)")
    mask_files = _unique_by_stem(list_images(masks), masks)
    without = sorted(stem for stem in image_files if stem not in mask_files)
    if without and options.missing != "real":
        raise DataError(f"{images}: {len(without)} image(s) without a mask of the same stem in "
                        f"{masks}: {_names(without)}; add their masks, remove them, or pass "
                        "--missing-mask real if they are all real")
    items = tuple(MaskedImage(stem, path, mask_files.get(stem))
                  for stem, path in sorted(image_files.items()))
    return MaskedSet(images, masks, items, options)


def read_ground_truth(path: Path, shape: tuple[int, int], options: MaskOptions) -> np.ndarray:
    """The mask at ``path`` as bool of ``shape`` (H, W); a differing size is resampled only
    with ``options.resize``."""
    from skimage.transform import resize

    mask = read_mask(path, invert=options.invert)
    if mask.shape != shape:
        if not options.resize:
            raise DataError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
                            f"{shape[1]}x{shape[0]}; pass --resize-masks to resample it")
        mask = resize(mask.astype(np.float32), shape, order=0) > 0.5
    return np.asarray(mask, dtype=bool)


def load_masked(item: MaskedImage, options: MaskOptions) -> LoadedMasked:
    """One image and its ground truth (all False when it has no mask file)."""
    image = read_image(item.image)
    shape = (int(image.shape[0]), int(image.shape[1]))
    mask = (np.zeros(shape, dtype=bool) if item.mask is None
            else read_ground_truth(item.mask, shape, options))
    return LoadedMasked(item.stem, image, mask)
