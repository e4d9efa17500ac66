"""Keyed, resumable stores of ``.npy`` arrays that load memory-mapped.

:class:`ArrayStore` holds entries of named arrays: ``ROOT/NAME.ARRAY.npy`` for each array and
``ROOT/NAME.json`` (written last, atomically) with the key of what the entry was made from.
An entry is done exactly when its JSON exists with the expected key, so a killed writer redoes
only the entry it was writing, and an entry made from other files (a key that differs) is made
again. :class:`PixelStore` is the one for decoded training pairs: each side at its stored
depth (uint8 / uint16), read back as memory maps so that a reader touches only the pages of
the window it takes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fakeseg.data.pairs import LoadedPair, Pair
from fakeseg.errors import DataError
from fakeseg.io import write_json, write_npy

#: bump when the stored form of a pair changes, so old stores are re-decoded
PIXEL_FORMAT = "1"
PAIR_ARRAYS = ("real", "synthetic", "label", "mask")


def files_key(paths: Sequence[Path], *parts: str) -> str:
    """A short key of files (resolved path, size, modification time) and other ``parts``:
    it changes when any of the files is replaced or edited."""
    items = list(parts)
    for path in paths:
        stat = path.stat()
        items += [str(path.resolve()), str(stat.st_size), str(stat.st_mtime_ns)]
    return hashlib.sha256("|".join(items).encode()).hexdigest()[:24]


class ArrayStore:
    """Entries of named arrays, each entry marked done by a JSON file with its key."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def marker(self, name: str) -> Path:
        return self.root / f"{name}.json"

    def array_path(self, name: str, array: str) -> Path:
        return self.root / f"{name}.{array}.npy"

    def meta(self, name: str) -> dict[str, Any] | None:
        """The entry's JSON marker, or None when the entry is missing or unreadable."""
        try:
            payload = json.loads(self.marker(name).read_text())
        except (OSError, ValueError):
            return None
        return payload if isinstance(payload, dict) else None

    def is_done(self, name: str, key: str) -> bool:
        meta = self.meta(name)
        return meta is not None and meta.get("key") == key

    def put(self, name: str, key: str, arrays: Mapping[str, np.ndarray],
            **meta: Any) -> None:
        """Write the arrays (each atomically), then the marker: the entry is done."""
        self.root.mkdir(parents=True, exist_ok=True)
        for array_name, array in arrays.items():
            write_npy(self.array_path(name, array_name), np.ascontiguousarray(array))
        write_json(self.marker(name), {"key": key, "arrays": list(arrays), **meta})

    def open(self, name: str, arrays: Sequence[str]) -> dict[str, np.ndarray]:
        """The entry's arrays as read-only memory maps (nothing is read until indexed)."""
        opened = {}
        for array_name in arrays:
            path = self.array_path(name, array_name)
            try:
                opened[array_name] = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise DataError(f"{path}: missing or damaged in the store ({exc}); delete "
                                f"{self.marker(name).name} and rerun to rebuild it") from exc
        return opened


class PixelStore(ArrayStore):
    """Decoded pairs: ``STEM.real.npy`` and ``STEM.synthetic.npy`` (H, W, 3) at their stored
    depth (the real side resampled when ``allow_resize`` asked for it), ``STEM.label.npy`` in
    the smallest integer type that holds its ids, ``STEM.mask.npy`` (bool). A full-HD 8-bit
    pair takes 12.4 MB (+2 MB for a mask, +2 MB for a label map of < 256 classes)."""

    @staticmethod
    def key(pair: Pair, allow_resize: bool) -> str:
        files = [p for p in (pair.real, pair.synthetic, pair.label, pair.mask) if p is not None]
        roles = ",".join(r for r in PAIR_ARRAYS if getattr(pair, r) is not None)
        return files_key(files, PIXEL_FORMAT, roles, f"resize={allow_resize}")

    def put_pair(self, loaded: LoadedPair, key: str) -> None:
        arrays = {"real": loaded.real, "synthetic": loaded.synthetic}
        if loaded.label is not None:
            arrays["label"] = compact_labels(loaded.label)
        if loaded.mask is not None:
            arrays["mask"] = loaded.mask
        self.put(loaded.stem, key, arrays)

    def open_pair(self, stem: str) -> LoadedPair:
        """A stored pair whose arrays are memory maps: a crop reads only its own rows."""
        meta = self.meta(stem)
        if meta is None:
            raise DataError(f"{self.marker(stem)}: pair '{stem}' is not in the pixel store; "
                            "rerun the command that builds it (train does)")
        arrays = self.open(stem, meta["arrays"])
        return LoadedPair(stem, arrays["real"], arrays["synthetic"], arrays.get("label"),
                          arrays.get("mask"))


def compact_labels(label: np.ndarray) -> np.ndarray:
    """Class ids in the smallest unsigned type that holds them (ids < 0 stay int64)."""
    if label.size == 0 or label.min() < 0:
        return label
    top = int(label.max())
    for dtype in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dtype).max:
            return label.astype(dtype)
    return label
