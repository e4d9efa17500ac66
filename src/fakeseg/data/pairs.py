"""Paired datasets: ``ROOT/real``, ``ROOT/synthetic`` and optional ``labels``/``masks``.

Files pair by stem whatever the extension (``01316.jpg`` pairs with ``01316.png``).
Splits are deterministic for a seed and are saved to JSON so that evaluation never sees
training pairs.
"""

from __future__ import annotations

import json
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar, cast

import numpy as np

from fakeseg.errors import DataError, FakesegError, ImageReadError, printable
from fakeseg.io import (
    IMAGE_EXTENSIONS,
    pixels_to_float,
    read_image,
    read_label_map,
    read_mask,
    read_pixels,
    write_json,
)
from fakeseg.progress import progress_bar

REAL_DIR, SYNTHETIC_DIR, LABELS_DIR, MASKS_DIR = "real", "synthetic", "labels", "masks"
T = TypeVar("T")
CLASSES_JSON = "classes.json"  # optional, in labels/: {"0": "road", "1": "sky", ...}


def class_names(root: str | Path) -> dict[int, str]:
    """Names of the label ids from ``labels/classes.json``; empty when there is none."""
    path = Path(root) / LABELS_DIR / CLASSES_JSON
    if not path.exists():
        return {}
    try:
        return {int(k): str(v) for k, v in json.loads(path.read_text()).items()}
    except (ValueError, AttributeError) as exc:
        raise DataError(f"{path}: expected a JSON object of id: name ({exc}); fix or remove "
                        "it") from exc


@dataclass(frozen=True)
class Pair:
    stem: str
    real: Path
    synthetic: Path
    label: Path | None = None
    mask: Path | None = None


@dataclass(frozen=True)
class Problem:
    path: Path
    message: str
    ambiguous: bool = False  # two files claim one stem: which one pairs is a guess

    def __str__(self) -> str:
        return f"{printable(self.path)}: {self.message}"


@dataclass
class PairIndex:
    """What a dataset root holds, before any pixel is read."""

    root: Path
    pairs: list[Pair]
    problems: list[Problem] = field(default_factory=list)

    @property
    def stems(self) -> list[str]:
        return [pair.stem for pair in self.pairs]

    def require_unambiguous(self) -> None:
        """Refuse a dataset where two files share a stem (``x.png`` and ``x.jpg``): training
        on whichever was listed first would be a silent guess."""
        clashes = [p for p in self.problems if p.ambiguous]
        if clashes:
            more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
            raise DataError(f"{clashes[0]}{more}; 'fakeseg data check {printable(self.root)}' "
                            "lists them all")

    def subset(self, stems: list[str]) -> list[Pair]:
        by_stem = {pair.stem: pair for pair in self.pairs}
        missing = [stem for stem in stems if stem not in by_stem]
        if missing:
            raise DataError(
                f"{self.root}: split names pairs that are not here ({', '.join(missing[:5])}); "
                "use the dataset the split was made for, or make a new split"
            )
        return [by_stem[stem] for stem in stems]


def _files_by_stem(folder: Path, problems: list[Problem]) -> dict[str, Path]:
    by_stem: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.is_dir() or path.name == CLASSES_JSON:
            continue
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            problems.append(Problem(path, f"unknown extension '{path.suffix}'; "
                                          f"use one of {', '.join(sorted(IMAGE_EXTENSIONS))}"))
            continue
        if path.stem in by_stem:
            problems.append(Problem(path, f"stem '{path.stem}' appears twice "
                                          f"(also {by_stem[path.stem].name}); keep one",
                                    ambiguous=True))
            continue
        by_stem[path.stem] = path
    return by_stem


def index_pairs(root: str | Path) -> PairIndex:
    """Pair ``real/`` and ``synthetic/`` by stem; collect layout problems without reading pixels."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder; point at a folder with real/ and synthetic/")
    for name in (REAL_DIR, SYNTHETIC_DIR):
        if not (root / name).is_dir():
            raise DataError(
                f"{root}: missing '{name}/' folder; a paired dataset holds "
                f"{REAL_DIR}/ and {SYNTHETIC_DIR}/ (optional {LABELS_DIR}/, {MASKS_DIR}/)"
            )
    optional = {name: root / name if (root / name).is_dir() else None
                for name in (LABELS_DIR, MASKS_DIR)}
    return pair_folders(root / REAL_DIR, root / SYNTHETIC_DIR, labels_dir=optional[LABELS_DIR],
                        masks_dir=optional[MASKS_DIR], root=root)


def pair_folders(real_dir: Path, synthetic_dir: Path, *, labels_dir: Path | None = None,
                 masks_dir: Path | None = None, root: Path | None = None) -> PairIndex:
    """Pair the files of two folders by stem (any extensions); unpaired, duplicate and
    unknown files become problems. No shared stem at all is an error naming both folders."""
    problems: list[Problem] = []
    real = _files_by_stem(real_dir, problems)
    synthetic = _files_by_stem(synthetic_dir, problems)
    labels = _files_by_stem(labels_dir, problems) if labels_dir is not None else {}
    masks = _files_by_stem(masks_dir, problems) if masks_dir is not None else {}
    for stem in sorted(set(real) - set(synthetic)):
        problems.append(Problem(real[stem], f"no synthetic partner (expected "
                                            f"{synthetic_dir.name}/{stem}.*); add it or remove "
                                            "this"))
    for stem in sorted(set(synthetic) - set(real)):
        problems.append(Problem(synthetic[stem], f"no real partner (expected "
                                                 f"{real_dir.name}/{stem}.*); add it or remove "
                                                 "this"))
    pairs = [
        Pair(stem, real[stem], synthetic[stem], labels.get(stem), masks.get(stem))
        for stem in sorted(set(real) & set(synthetic))
    ]
    if not pairs:
        raise DataError(f"{real_dir} and {synthetic_dir}: no pairs found (they share no file "
                        "stems); name each pair's files with the same stem")
    return PairIndex(root or real_dir.parent, pairs, problems)


@dataclass
class DataReport:
    root: Path
    n_pairs: int
    n_labels: int
    n_masks: int
    sizes: Counter[tuple[int, int]]
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        sizes = ", ".join(f"{w}x{h} ({n})" for (w, h), n in self.sizes.most_common(5))
        more = "" if len(self.sizes) <= 5 else f", … {len(self.sizes) - 5} more"
        lines = [
            f"dataset: {self.root}",
            f"pairs: {self.n_pairs}   labels: {self.n_labels}   masks: {self.n_masks}",
            f"sizes (synthetic): {sizes}{more}",
            f"problems: {len(self.problems)}",
        ]
        return "\n".join(lines)


def check_dataset(root: str | Path, *, allow_resize: bool = False,
                  progress: bool = True) -> DataReport:
    """Read every file of a paired dataset and report what is wrong, one problem per file."""
    index = index_pairs(root)
    problems = list(index.problems)
    sizes: Counter[tuple[int, int]] = Counter()
    for pair in progress_bar(index.pairs, desc="checking pairs", enabled=progress):
        shapes: dict[str, tuple[int, int]] = {}
        readers = (("real", pair.real, read_image), ("synthetic", pair.synthetic, read_image),
                   ("label", pair.label, read_label_map), ("mask", pair.mask, read_mask))
        for role, path, reader in readers:
            if path is None:
                continue
            try:
                shapes[role] = reader(path).shape[:2]
            except ImageReadError as exc:
                problems.append(Problem(path, exc.detail))
            except FakesegError as exc:
                problems.append(Problem(path, str(exc).split(": ", 1)[-1]))
        if "synthetic" in shapes:
            height, width = shapes["synthetic"]
            sizes[(width, height)] += 1
            for role in ("real", "label", "mask"):
                if role in shapes and shapes[role] != shapes["synthetic"] and not (
                    allow_resize and role == "real"
                ):
                    h, w = shapes[role]
                    problems.append(Problem(
                        getattr(pair, role),
                        f"size {w}x{h} differs from its synthetic partner {width}x{height}; "
                        + ("pass --resize to resample real images" if role == "real"
                           else f"make the {role} match the synthetic image"),
                    ))
    return DataReport(
        root=index.root, n_pairs=len(index.pairs),
        n_labels=sum(p.label is not None for p in index.pairs),
        n_masks=sum(p.mask is not None for p in index.pairs), sizes=sizes, problems=problems,
    )


@dataclass
class LoadedPair:
    stem: str
    real: np.ndarray  # (H, W, 3): float32 in [0, 1], or uint8/uint16 samples (native=True)
    synthetic: np.ndarray  # same form as real
    label: np.ndarray | None  # int64 (H, W)
    mask: np.ndarray | None  # bool (H, W)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.real, self.synthetic, self.label, self.mask)
                   if a is not None)


def load_pair(pair: Pair, *, allow_resize: bool = False, native: bool = False) -> LoadedPair:
    """Read one pair; the real image is resampled to the synthetic size only if allowed.

    ``native`` keeps the images at their stored depth (uint8 / uint16, see
    :func:`fakeseg.io.read_pixels`) instead of float32: a quarter of the memory for 8-bit
    files, for readers that convert only the crop they take.
    """
    from skimage.transform import resize

    real, synthetic = read_pixels(pair.real), read_pixels(pair.synthetic)
    if real.shape != synthetic.shape:
        if not allow_resize:
            raise DataError(
                f"{pair.real}: size {real.shape[1]}x{real.shape[0]} differs from "
                f"{pair.synthetic.name} {synthetic.shape[1]}x{synthetic.shape[0]}; "
                "pass --resize to resample real images"
            )
        resized = resize(pixels_to_float(real), synthetic.shape, order=1,
                         anti_aliasing=True).astype(np.float32)
        real = resized if real.dtype.kind == "f" else np.round(
            resized * np.iinfo(real.dtype).max).astype(real.dtype)
    if not native:
        real, synthetic = pixels_to_float(real), pixels_to_float(synthetic)
    label = read_label_map(pair.label) if pair.label else None
    mask = read_mask(pair.mask) if pair.mask else None
    for extra, path in ((label, pair.label), (mask, pair.mask)):
        if extra is not None and extra.shape != synthetic.shape[:2]:
            raise DataError(f"{path}: size {extra.shape[1]}x{extra.shape[0]} differs from "
                            f"{pair.synthetic.name}; make it match the synthetic image")
    return LoadedPair(pair.stem, real, synthetic, label, mask)


class PairCache:
    """Decoded pairs (native depth) in a least-recently-used cache bounded by bytes.

    ``max_bytes`` 0 caches nothing. Each process (each DataLoader worker) holds its own.
    Values are whatever :meth:`get`'s ``load`` returns, with its ``nbytes``.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self._items: OrderedDict[str, tuple[object, int]] = OrderedDict()
        self.used_bytes = 0
        self.hits = self.misses = 0

    def get(self, key: str, load: Callable[[], T], size: Callable[[T], int]) -> T:
        if key in self._items:
            self._items.move_to_end(key)
            self.hits += 1
            return cast(T, self._items[key][0])
        self.misses += 1
        value = load()
        nbytes = size(value)
        if nbytes <= self.max_bytes:
            while self._items and self.used_bytes + nbytes > self.max_bytes:
                _, (_, freed) = self._items.popitem(last=False)
                self.used_bytes -= freed
            self._items[key] = (value, nbytes)
            self.used_bytes += nbytes
        return value

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class Split:
    train: list[str]
    val: list[str]
    test: list[str]
    seed: int

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def make_split(stems: list[str], *, val_fraction: float = 0.2, test_fraction: float = 0.2,
               seed: int = 0) -> Split:
    """A deterministic, seeded split of pair stems. Each part gets ≥ 1 pair when there are ≥ 3."""
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise FakesegError("split fractions must be in [0, 1) and sum to less than 1")
    ordered = sorted(stems)
    order = np.random.default_rng(seed).permutation(len(ordered))
    shuffled = [ordered[i] for i in order]
    n = len(shuffled)
    n_test = round(n * test_fraction)
    n_val = round(n * val_fraction)
    if n >= 3:
        n_test = max(n_test, 1 if test_fraction > 0 else 0)
        n_val = max(n_val, 1 if val_fraction > 0 else 0)
    test, val, train = shuffled[:n_test], shuffled[n_test:n_test + n_val], shuffled[n_test + n_val:]
    if not train:
        raise DataError(f"only {n} pair(s): too few to split; add pairs or lower the fractions")
    return Split(sorted(train), sorted(val), sorted(test), seed)


def save_split(split: Split, path: str | Path) -> Path:
    return write_json(path, split.to_json())


def load_split(path: str | Path) -> Split:
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
        parts = [payload[name] for name in ("train", "val", "test")]
        if not all(isinstance(p, list) and all(isinstance(s, str) for s in p) for p in parts):
            raise ValueError("train, val and test must be lists of pair names")
        return Split(parts[0], parts[1], parts[2], int(payload["seed"]))
    except FileNotFoundError as exc:
        raise DataError(f"{path}: split file not found; train a model first or pass --split")\
            from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a valid split file ({exc}); delete it and re-split") from exc

