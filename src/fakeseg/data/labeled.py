"""Labelled images for image-level detection: a ``real/`` + ``synthetic/`` (or ``fake/``)
folder or a CSV, their split, decoding cache, class-balanced sampling and transforms.

Data is a folder with ``real/`` and ``synthetic/`` (or ``fake/``) subfolders (searched
recursively), or a CSV of ``path,label[,source]`` (label 0/1 or real/synthetic/fake; relative
paths are relative to the CSV). The *source* of an image (its generator) comes from the CSV's
source column, else from ``source_pattern`` applied to the file stem (default: the shared
CNNDetection naming ``N_GENERATOR_{real,fake}``), and drives the per-source tables.

Images are fitted to ``size`` by a crop (random when training, central otherwise; default,
because resizing erases the high-frequency generator traces the fingerprints show — Wang et al.
crop too), by a resize (``fit="resize"``), or not at all (``fit="original"``: every image at its
own size, batched with images of the same size; rotation, which needs a crop to leave no empty
corners, is then left out). Augmentations follow the MediaEval team
(horizontal flips, rotations, colour jitter; ``torchvision.transforms.v2``), plus optional blur
and JPEG re-compression (CNNDetection's recipe).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, WeightedRandomSampler

from fakeseg.data.sources import check_source_pattern, source_of
from fakeseg.errors import DataError, FakesegError
from fakeseg.io import list_images, read_image, to_uint8, write_csv

#: ``N_GENERATOR_{real,fake}`` → GENERATOR (the shared CNNDetection sample's naming).
DEFAULT_SOURCE_PATTERN = r"^\d+_(.+)_(?:real|fake)$"
SYNTHETIC_FOLDERS = ("synthetic", "fake")
AUGMENTATIONS = ("flip", "rotate", "jitter", "blur", "jpeg")
DEFAULT_AUGMENT: tuple[str, ...] = ("flip", "rotate", "jitter")
FITS = ("crop", "resize", "original")
ROTATE_DEGREES = 15.0
JPEG_QUALITY = (40, 95)
#: Window side / crop side that a ±15° rotation needs to leave no empty corners (cos + sin).
ROTATE_MARGIN = math.cos(math.radians(ROTATE_DEGREES)) + math.sin(math.radians(ROTATE_DEGREES))
CACHE_BYTES = 1 << 30  # decoded uint8 images kept in memory per run
_LABEL_WORDS = {"0": 0, "1": 1, "real": 0, "synthetic": 1, "fake": 1}


@dataclass(frozen=True)
class LabeledImage:
    """One image with its label (1 = synthetic, or class B in a two-class task) and source."""

    path: Path
    label: int
    source: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "label": self.label, "source": self.source}


def parse_label(text: str, where: str) -> int:
    """0/1 or real/synthetic/fake (any case) → 0/1; anything else is a one-line DataError."""
    value = _LABEL_WORDS.get(str(text).strip().lower())
    if value is None:
        raise DataError(f"{where}: label '{text}' is not 0/1 or real/synthetic/fake; fix "
                        "that row")
    return value


def _read_csv(path: Path, pattern: str | None) -> list[LabeledImage]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the CSV ({exc}); check the file") from exc
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"{path}: the CSV is empty; add rows of path,label[,source]")
    columns = {"path": 0, "label": 1, "source": 2}
    start = 1
    header = [c.strip().lower() for c in rows[0]]
    if "path" in header and "label" in header:
        columns = {name: header.index(name) for name in ("path", "label", "source")
                   if name in header}
    else:
        start = 0
    items: list[LabeledImage] = []
    for number, row in enumerate(rows[start:], start=start + 1):
        where = f"{path}:{number}"
        if len(row) <= max(columns["path"], columns["label"]):
            raise DataError(f"{where}: expected path,label[,source], got {row}; fix that row")
        file = Path(row[columns["path"]].strip()).expanduser()
        if not file.is_absolute():
            file = path.parent / file
        if not file.is_file():
            raise DataError(f"{where}: no such image '{file}'; fix the path (relative paths "
                            "are relative to the CSV)")
        label = parse_label(row[columns["label"]], where)
        column = columns.get("source")
        source = row[column].strip() if column is not None and column < len(row) else ""
        items.append(LabeledImage(file, label, source or source_of(file, pattern)))
    if not items:
        raise DataError(f"{path}: the CSV has a header but no rows; add rows of "
                        "path,label[,source]")
    return items


def load_labeled(data: str | Path | Sequence[LabeledImage], *,
                 source_pattern: str | None = DEFAULT_SOURCE_PATTERN) -> list[LabeledImage]:
    """Labelled images from a real/ + synthetic/ (or fake/) folder, a CSV, or a list."""
    if not isinstance(data, str | Path):
        items = list(data)
        if not items:
            raise DataError("no labelled images given")
        return items
    pattern = check_source_pattern(source_pattern)
    root = Path(data)
    if root.is_file():
        if root.suffix.lower() != ".csv":
            raise DataError(f"{root}: expected a folder with real/ and synthetic/ (or fake/), or "
                            "a .csv of path,label[,source]")
        return _read_csv(root, pattern)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder or CSV; check the path")
    real_dir = root / "real"
    found = [root / name for name in SYNTHETIC_FOLDERS if (root / name).is_dir()]
    if not real_dir.is_dir():
        raise DataError(f"{root}: no real/ folder; put real images in {real_dir} (and "
                        "synthetic ones in synthetic/ or fake/), or pass a CSV")
    if not found:
        raise DataError(f"{root}: no synthetic/ or fake/ folder; put the synthetic images in "
                        f"{root / 'synthetic'}")
    if len(found) > 1:
        raise DataError(f"{root}: has both synthetic/ and fake/; keep one of them")
    items = [LabeledImage(p, 0, source_of(p, pattern)) for p in list_images(real_dir,
                                                                            recursive=True)]
    items += [LabeledImage(p, 1, source_of(p, pattern)) for p in list_images(found[0],
                                                                            recursive=True)]
    return items


def check_classes(items: Sequence[LabeledImage], data: Any, names: Sequence[str]) -> None:
    for label, name in enumerate(names):
        if not any(item.label == label for item in items):
            raise DataError(f"{data}: no {name} images (label {label}); both classes are needed")


def write_labeled_csv(path: str | Path, items: Iterable[LabeledImage]) -> Path:
    """Write ``path,label,source`` rows (absolute paths) that :func:`load_labeled` reads."""
    return write_csv(path, ["path", "label", "source"],
                     ([str(Path(i.path).resolve()), i.label, i.source or ""] for i in items))




class ImageCache:
    """Decoded images as uint8 (3, H, W) tensors, kept in memory up to ``max_bytes``."""

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._store: dict[Path, torch.Tensor] = {}

    def get(self, path: Path) -> torch.Tensor:
        cached = self._store.get(path)
        if cached is not None:
            return cached
        image = torch.from_numpy(to_uint8(read_image(path))).permute(2, 0, 1).contiguous()
        if self.bytes + image.numel() <= self.max_bytes:
            self._store[path] = image
            self.bytes += image.numel()
        return image


def _ensure_min_side(size: int) -> Callable[[torch.Tensor], torch.Tensor]:
    from torchvision.transforms.v2 import functional as TF

    def fit(image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        if min(height, width) >= size:
            return image
        scale = size / min(height, width)
        return TF.resize(image, [max(size, math.ceil(height * scale)),
                                 max(size, math.ceil(width * scale))], antialias=True)

    return fit


class RandomJPEG:
    """Re-encode a uint8 (3, H, W) image as JPEG at a random quality, with probability ``p``.

    Pillow does the coding (torchvision's own JPEG codec is deprecated); the draws come from
    torch's RNG, so seeded runs repeat.
    """

    def __init__(self, quality: tuple[int, int] = (40, 95), p: float = 0.5) -> None:
        self.quality = quality
        self.p = p

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        from PIL import Image

        if float(torch.rand(())) >= self.p:
            return image
        quality = int(torch.randint(self.quality[0], self.quality[1] + 1, ()))
        buffer = io.BytesIO()
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(buffer, format="JPEG",
                                                             quality=quality)
        buffer.seek(0)
        decoded = np.asarray(Image.open(buffer).convert("RGB"))
        return torch.from_numpy(decoded.copy()).permute(2, 0, 1).contiguous()


def check_augment(augment: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(a.strip().lower() for a in augment if a.strip()))
    unknown = [a for a in chosen if a not in AUGMENTATIONS and a != "none"]
    if unknown:
        raise FakesegError(f"unknown augmentation '{unknown[0]}'; use any of "
                           + ", ".join(AUGMENTATIONS) + " (or none)")
    return tuple(a for a in chosen if a != "none")


def build_transform(size: int, *, train: bool, augment: Iterable[str] = (),
                    fit: str = "crop") -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 (3, H, W) → float (3, size, size) in [0, 1]: augmentations (train only) + fit.

    ``fit="original"`` keeps each image's own size (``size`` is unused) and leaves out the
    rotation (it needs a crop)."""
    from torchvision.transforms import v2

    if fit not in FITS:
        raise FakesegError(f"unknown fit '{fit}'; use {', '.join(FITS)}")
    chosen = check_augment(augment) if train else ()
    ops: list[Callable[[Any], Any]] = []
    if fit == "original":
        pass
    elif fit == "resize":
        ops.append(v2.Resize((size, size), antialias=True))
        if "rotate" in chosen:
            ops.append(v2.RandomRotation(ROTATE_DEGREES))
    elif "rotate" in chosen:
        # crop a margin, rotate, crop the centre: no black corners, and the (slow) rotation
        # only touches a small window of a large image
        margin = math.ceil(size * ROTATE_MARGIN)
        ops += [_ensure_min_side(margin), v2.RandomCrop(margin),
                v2.RandomRotation(ROTATE_DEGREES), v2.CenterCrop(size)]
    else:
        ops.append(_ensure_min_side(size))
        ops.append(v2.RandomCrop(size) if train else v2.CenterCrop(size))
    if "flip" in chosen:
        ops.append(v2.RandomHorizontalFlip())
    if "jitter" in chosen:
        ops.append(v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02))
    if "blur" in chosen:
        ops.append(v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 2.0))], p=0.5))
    if "jpeg" in chosen:
        ops.append(RandomJPEG(JPEG_QUALITY, p=0.5))
    ops.append(v2.ToDtype(torch.float32, scale=True))
    return v2.Compose(ops)


class LabeledDataset(Dataset):
    """(image tensor, label) pairs through a transform, decoding through an :class:`ImageCache`."""

    def __init__(self, items: Sequence[LabeledImage], transform: Callable[[torch.Tensor],
                 torch.Tensor], cache: ImageCache | None = None) -> None:
        self.items = list(items)
        self.transform = transform
        self.cache = cache or ImageCache(0)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        item = self.items[index]
        return (self.transform(self.cache.get(item.path)),
                torch.tensor(float(item.label), dtype=torch.float32))


def balanced_sampler(labels: Sequence[int], *, num_samples: int | None = None,
                     generator: torch.Generator | None = None) -> WeightedRandomSampler:
    """Draws each class with equal probability (weights 1 / class count), with replacement."""
    array = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(array, minlength=2).astype(np.float64)
    weights = 1.0 / counts[array]
    return WeightedRandomSampler(weights.tolist(), num_samples or len(array),
                                 replacement=True, generator=generator)


class SameSizeBatchSampler(Sampler[list[int]]):
    """Batches of the indices ``sampler`` draws, each of one image size (``sizes[i]``): a batch
    is yielded when its size's bucket holds ``batch_size`` indices, part-filled buckets at the
    end. Its length, ceil(n / batch_size), is a lower bound on the batches it yields, so an
    epoch of that many steps never runs dry."""

    def __init__(self, sampler: Sampler[int], sizes: Sequence[Hashable], batch_size: int
                 ) -> None:
        self.sampler, self.sizes, self.batch_size = sampler, list(sizes), batch_size

    def __iter__(self) -> Iterator[list[int]]:
        buckets: dict[Hashable, list[int]] = {}
        for index in self.sampler:
            bucket = buckets.setdefault(self.sizes[index], [])
            bucket.append(index)
            if len(bucket) == self.batch_size:
                yield bucket
                buckets[self.sizes[index]] = []
        yield from (bucket for bucket in buckets.values() if bucket)

    def __len__(self) -> int:
        return max(1, math.ceil(len(self.sizes) / self.batch_size))


def split_items(items: Sequence[LabeledImage], val_fraction: float,
                seed: int) -> tuple[list[LabeledImage], list[LabeledImage]]:
    """Seeded split stratified by label; each class keeps ≥ 1 training image (and gets ≥ 1
    validation image when it has two or more and ``val_fraction`` > 0)."""
    if not 0.0 <= val_fraction < 1.0:
        raise FakesegError(f"val_fraction must lie in [0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    train: list[LabeledImage] = []
    val: list[LabeledImage] = []
    for label in (0, 1):
        group = sorted((i for i in items if i.label == label), key=lambda i: str(i.path))
        order = rng.permutation(len(group))
        n_val = round(len(group) * val_fraction)
        if val_fraction > 0 and len(group) >= 2:
            n_val = max(n_val, 1)
        n_val = min(n_val, len(group) - 1)
        val += [group[i] for i in order[:n_val]]
        train += [group[i] for i in order[n_val:]]
    return train, val
