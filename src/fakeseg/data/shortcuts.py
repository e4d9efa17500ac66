"""Labels that can be read off something other than the picture: a shortcut check.

A detector learns whatever separates the classes most easily. When every synthetic image has a
coloured frame and every real one a grey frame (as in the CNNDetection ranking-page sample), or
the two classes come at different sizes, it learns the frame or the size, and every score it
gives is meaningless. :func:`find_shortcuts` fits a small cross-validated classifier on two
cues that carry no picture content, the colour of the outer edge (:data:`EDGE_PX` pixels) and
the image size, and reports each cue that alone predicts the label. :func:`unframe` writes a
copy of a folder with each image's uniform frame cropped off (``fakeseg data unframe``).
"""

from __future__ import annotations

import filecmp
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fakeseg.data.labeled import LabeledImage
from fakeseg.errors import DataError, FakesegError, Skipped
from fakeseg.io import (
    atomic_path,
    check_output_dir,
    folder_lock,
    list_images,
    pixels_to_float,
    read_image,
    read_pixels,
    write_image,
)
from fakeseg.progress import progress_bar, warn

EDGE_PX = 4  # the outer ring whose colour is a cue
FRAME_TOLERANCE = 0.2  # frame pixels stay this close to the corner colour (JPEG rings)
SHORTCUT_ACCURACY = 0.9  # cross-validated balanced accuracy from which a cue is a shortcut
SAMPLE_PER_CLASS = 200  # images read per class (seeded sample)
MIN_PER_CLASS = 5
JPEG_BLOCK = 16  # a JPEG's colour blocks (4:2:0): a frame's colour smears into the first ones
JPEG_SUFFIXES = (".jpg", ".jpeg")


@dataclass(frozen=True)
class Shortcut:
    """One cue that alone predicts the label."""

    cue: str  # "edge colour" or "image size"
    balanced_accuracy: float  # cross-validated, from the cue alone
    detail: str  # what differs, e.g. the median edge colour and frame width per class

    def message(self, data: object, names: Sequence[str] = ("real", "synthetic")) -> str:
        if self.cue == "edge colour":
            risk = "a detector that sees whole images will learn it instead of the pictures"
            fix = "crop the frame off every image before training or evaluating"
        else:
            risk = "a detector can learn it, or the resizing behind it, instead of the pictures"
            fix = "bring both classes to the same sizes (crop, not resize)"
        return (f"{data}: the {self.cue} alone tells {names[0]} from {names[1]} images "
                f"(balanced accuracy {self.balanced_accuracy:.2f}; {self.detail}): {risk}, "
                f"and its scores would mean nothing; {fix}")


def edge_features(image: np.ndarray, edge: int = EDGE_PX) -> np.ndarray:
    """Mean and std per channel of an (H, W, 3) image's outer ``edge``-pixel ring."""
    edge = max(1, min(edge, min(image.shape[:2]) // 4))
    ring = np.concatenate([image[:edge].reshape(-1, 3), image[-edge:].reshape(-1, 3),
                           image[edge:-edge, :edge].reshape(-1, 3),
                           image[edge:-edge, -edge:].reshape(-1, 3)])
    return np.concatenate([ring.mean(0), ring.std(0)])


def frame_width(image: np.ndarray, tolerance: float = FRAME_TOLERANCE) -> int:
    """Pixels of uniform frame (the corner's colour) on the image's thinnest side; 0: none."""
    corner = image[0, 0]
    off = np.abs(image - corner).max(axis=2) > tolerance
    widths = []
    for side in (off, off[::-1], off.T, off.T[::-1]):  # top, bottom, left, right
        busy = np.flatnonzero(side.any(axis=1))
        widths.append(int(busy[0]) if busy.size else side.shape[0])
    return min(widths)


def _accuracy(features: np.ndarray, labels: np.ndarray, seed: int) -> float:
    if np.ptp(features, axis=0).max() == 0:
        return 0.5  # constant cue: carries nothing
    folds = min(5, int(np.bincount(labels).min()))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    scores = cross_val_score(model, features, labels, scoring="balanced_accuracy",
                             cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    return float(np.mean(scores))


def find_shortcuts(items: Sequence[LabeledImage], *, seed: int = 0,
                   sample: int = SAMPLE_PER_CLASS,
                   threshold: float = SHORTCUT_ACCURACY) -> list[Shortcut]:
    """Cues (edge colour, image size) that predict the label at ``threshold`` balanced
    accuracy or more, cross-validated on up to ``sample`` images per class. Unreadable images
    are left out (the loaders report them); fewer than :data:`MIN_PER_CLASS` per class: []."""
    rng = np.random.default_rng(seed)
    chosen: list[LabeledImage] = []
    for label in (0, 1):
        group = [i for i in items if i.label == label]
        picks = rng.choice(len(group), size=min(sample, len(group)), replace=False)
        chosen += [group[k] for k in sorted(picks)]
    edges, sizes, frames, labels = [], [], [], []
    for item in chosen:
        try:
            image = read_image(item.path)
        except (FakesegError, OSError):  # a bad file is the loaders' to report
            continue
        edges.append(edge_features(image))
        sizes.append(image.shape[:2])
        frames.append(frame_width(image))
        labels.append(item.label)
    y = np.array(labels, dtype=np.int64)
    if y.size == 0 or np.bincount(y, minlength=2).min() < MIN_PER_CLASS:
        return []
    found = []
    edge_x, size_x, frame_x = np.array(edges), np.array(sizes, dtype=np.float64), np.array(frames)
    accuracy = _accuracy(edge_x, y, seed)
    if accuracy >= threshold:
        colours = [tuple(round(255 * float(c)) for c in np.median(edge_x[y == k, :3], axis=0))
                   for k in (0, 1)]
        found.append(Shortcut("edge colour", accuracy, (
            f"median edge colour {colours[0]} against {colours[1]}, uniform frame "
            f"{int(np.median(frame_x[y == 0]))} against {int(np.median(frame_x[y == 1]))} px")))
    accuracy = _accuracy(size_x, y, seed)
    if accuracy >= threshold:
        typical = ["×".join(str(int(v)) for v in np.median(size_x[y == k], axis=0)[::-1])
                   for k in (0, 1)]
        found.append(Shortcut("image size", accuracy,
                              f"median size {typical[0]} against {typical[1]}"))
    return found


def warn_shortcuts(items: Sequence[LabeledImage], data: object,
                   names: Sequence[str] = ("real", "synthetic"), *, seed: int = 0) -> list[str]:
    """:func:`find_shortcuts` as the commands use it: each cue's message, warned in one line
    and returned for the result files. ``data`` names the set (a path; anything else reads
    "the given images")."""
    where = data if isinstance(data, str | Path) else "the given images"
    messages = [s.message(where, names) for s in find_shortcuts(items, seed=seed)]
    for message in messages:
        warn(message)
    return messages


@dataclass
class Unframed:
    """What :func:`unframe` did."""

    out: Path
    cropped: dict[str, int] = field(default_factory=dict)  # relative path → pixels cut per side
    copied: list[str] = field(default_factory=list)  # no frame found: copied unchanged
    skipped: list[Skipped] = field(default_factory=list)
    shortcuts: list[Shortcut] | None = None  # the check of the copy (None: not a labelled set)

    def summary(self) -> str:
        widths = sorted(set(self.cropped.values()))
        cut = (f"{widths[0]}" if len(widths) == 1 else f"{widths[0]}–{widths[-1]}") \
            if widths else "0"
        check = ("not a real/ + synthetic/ folder, shortcut check skipped"
                 if self.shortcuts is None else
                 "shortcut check of the copy: " + ("none left" if not self.shortcuts else
                                                   f"{len(self.shortcuts)} left (see above)"))
        return (f"{len(self.cropped)} image(s) cropped ({cut} px off each side), "
                f"{len(self.copied)} without a frame copied, {len(self.skipped)} unreadable "
                f"skipped, into {self.out}; {check}")


def crop_for_frame(width: int, jpeg: bool) -> int:
    """Pixels to cut per side for a frame of ``width``: just the frame in a lossless file; in
    a JPEG up to the first 16-px block boundary past it, plus 4 px of chroma smoothing."""
    if width <= 0 or not jpeg:
        return max(width, 0)
    return math.ceil((width + 2) / JPEG_BLOCK) * JPEG_BLOCK + 4


def _size(path: Path) -> tuple[int, int] | None:
    """A finished output's (width, height) (None: none there, or unreadable)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError):
        return None


def _same_names(paths: Sequence[Path], data: Path) -> None:
    """One line naming two inputs whose outputs would share a name (``x.jpg`` and ``x.png``
    both make ``x.png``), before anything is written."""
    seen: dict[Path, Path] = {}
    for path in paths:
        key = path.relative_to(data).with_suffix("") if path != data else Path(path.stem)
        if key in seen:
            raise DataError(f"{seen[key]} and {path}: both would be written as "
                            f"{key.with_suffix('.png')}; rename one of them")
        seen[key] = path


def unframe(data: str | Path, out: str | Path, *, border: int | None = None,
            progress: bool = True) -> Unframed:
    """Copy every image under ``data`` to ``out`` (same relative paths) with its uniform frame
    cropped off, as a lossless 8-bit PNG of the pixels every fakeseg reader sees (EXIF
    orientation applied); an image without a frame is copied unchanged. ``border`` cuts that
    many pixels off every image instead of measuring. Images stored at more than 8 bits are
    skipped (no lossless writer here), as are unreadable ones, each with a line. A rerun keeps
    the files that already hold what it would write (a crop of the same size, an identical
    copy), rewrites the others and removes an earlier run's other form of the same image
    (its crop, or its copy); each file is written atomically. The copy of a labelled folder is
    checked with :func:`find_shortcuts`."""
    data, out = Path(data), Path(out)
    if border is not None and border < 0:
        raise FakesegError(f"--border {border}: must be 0 or more")
    if out.resolve() == data.resolve() or data.resolve() in out.resolve().parents:
        raise FakesegError(f"{out}: --out must lie outside {data}")
    paths = list_images(data, recursive=True)
    _same_names(paths, data)
    check_output_dir(out)
    result = Unframed(out)
    with folder_lock(out, "data unframe") as temp_dir:
        for path in progress_bar(paths, desc="unframe", unit="img", enabled=progress):
            relative = path.relative_to(data) if path != data else Path(path.name)
            copy, crop = out / relative, (out / relative).with_suffix(".png")
            try:
                pixels = read_pixels(path)  # oriented, at its stored depth: one decode
                cut = border if border is not None else crop_for_frame(
                    frame_width(pixels_to_float(pixels)), path.suffix.lower() in JPEG_SUFFIXES)
                if cut == 0:
                    if not (copy.exists() and filecmp.cmp(path, copy, shallow=False)):
                        with atomic_path(copy, temp_dir=temp_dir) as tmp:
                            shutil.copyfile(path, tmp)
                    if crop != copy:
                        crop.unlink(missing_ok=True)
                    result.copied.append(str(relative))
                    continue
                height, width = pixels.shape[:2]
                if 2 * cut >= min(height, width):
                    raise DataError(f"{path}: a {cut}-px crop per side leaves nothing of its "
                                    f"{width}×{height} pixels")
                if pixels.dtype != np.uint8:
                    raise DataError(f"{path}: stored at more than 8 bits per sample; unframe "
                                    "writes 8-bit PNGs only, so crop it with a 16-bit tool")
                if _size(crop) != (width - 2 * cut, height - 2 * cut):  # else done: kept
                    write_image(crop, pixels[cut:height - cut, cut:width - cut],
                                temp_dir=temp_dir)
                if copy != crop:
                    copy.unlink(missing_ok=True)
                result.cropped[str(relative)] = cut
            except (FakesegError, OSError, ValueError) as exc:
                skipped = Skipped(str(path), str(exc))
                warn(f"skipped {skipped}")
                result.skipped.append(skipped)
    try:
        from fakeseg.data.labeled import load_labeled

        result.shortcuts = find_shortcuts(load_labeled(out, source_pattern=None))
    except DataError:
        result.shortcuts = None
    return result
