"""Keyed .npy stores: done markers, keys of files, memory maps, compact label maps."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from fakeseg.data.pairs import index_pairs, load_pair
from fakeseg.data.store import ArrayStore, PixelStore, compact_labels, files_key
from fakeseg.errors import DataError
from tests.conftest import make_pairs


def test_an_entry_is_done_only_with_its_key_and_opens_memory_mapped(tmp_path: Path) -> None:
    store = ArrayStore(tmp_path / "store")
    assert not store.is_done("a", "k1")
    store.put("a", "k1", {"x": np.arange(6, dtype=np.uint16).reshape(2, 3)}, note=1)
    assert store.is_done("a", "k1") and not store.is_done("a", "k2")
    assert store.meta("a") == {"key": "k1", "arrays": ["x"], "note": 1}
    opened = store.open("a", ["x"])["x"]
    assert isinstance(opened, np.memmap) and opened.dtype == np.uint16
    assert np.array_equal(opened, np.arange(6).reshape(2, 3))
    store.array_path("a", "x").unlink()  # an array lost after its marker was written
    with pytest.raises(DataError, match=r"a\.x\.npy: missing or damaged.*delete a\.json"):
        store.open("a", ["x"])


def test_a_files_key_follows_the_files_and_the_parts(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"one")
    key = files_key([path], "x")
    assert files_key([path], "x") == key and files_key([path], "y") != key
    later = path.stat().st_mtime_ns + 10**9
    os.utime(path, ns=(later, later))  # touched: same bytes, but it may have been replaced
    assert files_key([path], "x") != key


def test_pixel_store_keeps_pairs_at_their_depth(tmp_path: Path) -> None:
    pair = index_pairs(make_pairs(tmp_path / "pairs", n=1, labels=True)).pairs[0]
    store = PixelStore(tmp_path / "pixels")
    loaded = load_pair(pair, native=True)
    store.put_pair(loaded, store.key(pair, allow_resize=False))
    assert store.is_done(pair.stem, store.key(pair, allow_resize=False))
    assert not store.is_done(pair.stem, store.key(pair, allow_resize=True))
    stored = store.open_pair(pair.stem)
    assert stored.real.dtype == np.uint8 and np.array_equal(stored.real, loaded.real)
    assert stored.label is not None and loaded.label is not None
    assert stored.label.dtype == np.uint8 and np.array_equal(stored.label, loaded.label)
    with pytest.raises(DataError, match="'p9' is not in the pixel store"):
        store.open_pair("p9")


def test_compact_labels() -> None:
    assert compact_labels(np.array([[0, 300]])).dtype == np.uint16
    assert compact_labels(np.array([[0, 7]])).dtype == np.uint8
    assert compact_labels(np.array([[-1, 7]])).dtype == np.int64
    assert compact_labels(np.array([[0, 2**40]])).dtype == np.int64
