"""Streaming training data: lazy pairs, bounded cache, reproducible whatever the workers."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fakeseg.config import TrainConfig
from fakeseg.data.pairs import Pair, PairCache, index_pairs, load_pair
from fakeseg.errors import DataError
from fakeseg.faults import ENV_VAR
from fakeseg.features.target import TargetStore
from fakeseg.io import read_image, read_pixels
from fakeseg.training.streaming import (
    CompositeStream,
    StepBatches,
    Targets,
    build_stream_store,
    composite_loader,
)
from tests.conftest import make_pairs

CONFIG = TrainConfig(crop_size=32, batch_size=3, seed=5, p_reencode=0.5)


def batches(stream: CompositeStream, start: int, end: int, **options: int) -> list[torch.Tensor]:
    return [torch.cat([b.image.flatten(), b.label.flatten(), b.mask.flatten()])
            for b in composite_loader(stream, start, end, **options)]


def test_workers_do_not_change_the_batches_and_resume_continues_the_stream(
        tiny_pairs: Path) -> None:
    pairs = index_pairs(tiny_pairs).pairs
    stream = CompositeStream(pairs, CONFIG, cache_bytes=1 << 20)
    in_process = batches(stream, 0, 5, workers=0)
    with_workers = batches(CompositeStream(pairs, CONFIG, cache_bytes=1 << 20, workers=2),
                           0, 5, workers=2)
    assert all(torch.equal(a, b) for a, b in zip(in_process, with_workers, strict=True))
    resumed = batches(stream, 3, 5, workers=0)  # a run resumed at step 3
    assert all(torch.equal(a, b) for a, b in zip(in_process[3:], resumed, strict=True))
    assert not torch.equal(in_process[0], in_process[1])  # the stream does move on
    other_seed = CompositeStream(pairs, TrainConfig(**{**CONFIG.__dict__, "seed": 6}))
    assert not torch.equal(in_process[0], batches(other_seed, 0, 1)[0])


def test_ranks_share_the_global_stream() -> None:
    one = list(StepBatches(2, 4, batch_size=4))
    two = [list(StepBatches(2, 4, batch_size=2, rank=r, world=2)) for r in (0, 1)]
    assert one == [two[0][i] + two[1][i] for i in range(2)] == [[8, 9, 10, 11],
                                                                [12, 13, 14, 15]]


def test_native_pairs_stay_compact_and_match_the_float_reader(tiny_pairs: Path,
                                                              tmp_path: Path) -> None:
    pair = index_pairs(tiny_pairs).pairs[0]
    native = load_pair(pair, native=True)
    assert native.real.dtype == np.uint8 and native.synthetic.dtype == np.uint8
    assert np.array_equal(native.real.astype(np.float32) / 255, load_pair(pair).real)
    gray16 = np.linspace(0, 65535, 4 * 5).reshape(4, 5).round().astype(np.uint16)
    Image.fromarray(gray16).save(tmp_path / "gray16.png")
    assert read_pixels(tmp_path / "gray16.png").dtype == np.uint16
    assert np.allclose(read_image(tmp_path / "gray16.png")[..., 0], gray16 / 65535)


def test_pair_cache_is_bounded_and_least_recently_used() -> None:
    cache = PairCache(max_bytes=250)
    loads: list[str] = []

    def loader(key: str) -> bytes:
        loads.append(key)
        return b"x" * 100

    for key in ["a", "b", "a", "c", "a", "b"]:
        cache.get(key, lambda k=key: loader(k), len)  # type: ignore[misc]
        assert cache.used_bytes <= 250
    # a stays (recently used), b was evicted by c and must be read again
    assert loads == ["a", "b", "c", "b"]
    nothing = PairCache(0)
    nothing.get("a", lambda: b"x", len)
    assert len(nothing) == 0


@pytest.mark.parametrize("cache_bytes", [0, 10 << 20])
def test_stream_reads_only_what_its_cache_allows(tiny_pairs: Path, cache_bytes: int) -> None:
    stream = CompositeStream(index_pairs(tiny_pairs).pairs, CONFIG, cache_bytes=cache_bytes)
    for index in range(20):
        stream[index]
    assert stream.cache.used_bytes <= cache_bytes
    assert stream.cache.hits + stream.cache.misses == 20
    assert (stream.cache.hits > 0) == (cache_bytes > 0)


# ----------------------------------------------------------------------------- the pixel store

def _with_masks(root: Path) -> Path:
    """Masks for two of the pairs (the stream must handle pairs with and without)."""
    for stem in ("p0", "p2"):
        mask = np.zeros((64, 64), np.uint8)
        mask[8:40, 16:48] = 255
        Image.fromarray(mask).save(root / "masks" / f"{stem}.png")
    return root


def _fake_targets(pairs: list[Pair], root: Path) -> Targets:
    """Layer maps at strides 8 and 16 (random, not a backbone's: only their reading matters)."""
    rng = np.random.default_rng(0)
    store, keys = TargetStore(root), {}
    for pair in pairs:
        keys[pair.stem] = f"key-{pair.stem}"
        store.put_maps(pair.stem, keys[pair.stem], {
            "a": torch.from_numpy(rng.random((1, 1, 8, 8), dtype=np.float32)),
            "b": torch.from_numpy(rng.random((1, 1, 4, 4), dtype=np.float32))})
    return Targets(root, {"a": 0.9, "b": 0.7}, None, keys)


def test_store_gives_the_batches_of_the_decode_path(tmp_path: Path) -> None:
    data = make_pairs(tmp_path / "pairs", labels=True)
    (data / "masks").mkdir()
    pairs = index_pairs(_with_masks(data)).pairs
    config = TrainConfig(**{**CONFIG.__dict__, "target_mode": "hybrid",
                            "mask_kinds": ["classwise", "blobs"]})
    targets = _fake_targets(pairs, tmp_path / "targets")
    build = build_stream_store(pairs, tmp_path / "pixels", targets=targets, workers=2,
                               progress=False)
    assert (build.n_pairs, build.n_built) == (4, 4)
    stored = build.store.open("p0")
    assert isinstance(stored.pair.real, np.memmap) and stored.pair.real.dtype == np.uint8
    assert stored.pair.label is not None and stored.pair.label.dtype == np.uint8
    assert stored.pair.mask is not None and stored.pair.mask.dtype == bool
    assert stored.heat is not None and stored.heat.dtype == np.float16
    assert build.store.open("p1").pair.mask is None
    decoded = CompositeStream(pairs, config, targets=targets)
    from_store = CompositeStream(pairs, config, store=build.store)
    expected = batches(decoded, 0, 6, workers=0)
    assert all(torch.equal(a, b) for a, b in zip(
        expected, batches(from_store, 0, 6, workers=2), strict=True))
    heat_labels = [b.label for b in composite_loader(from_store, 0, 6)]
    assert any(0 < float(label.max()) < 1 for label in heat_labels)  # the heat maps are read
    again = build_stream_store(pairs, tmp_path / "pixels", targets=targets, progress=False)
    assert again.n_built == 0


def _build_child(data: Path, root: Path, kill_at: str) -> None:
    os.environ[ENV_VAR] = kill_at
    build_stream_store(index_pairs(data).pairs, root, progress=False)


@pytest.mark.slow
def test_a_killed_store_build_resumes(tmp_path: Path) -> None:
    data = make_pairs(tmp_path / "pairs", n=5)
    pairs = index_pairs(data).pairs
    child = multiprocessing.get_context("spawn").Process(
        target=_build_child, args=(data, tmp_path / "killed", "pixel_pair:2"))
    child.start()
    child.join(120)
    assert child.exitcode == -signal.SIGKILL
    assert len(list((tmp_path / "killed").glob("*.json"))) == 2  # two pairs finished
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "killed").glob("*.npy")}
    resumed = build_stream_store(pairs, tmp_path / "killed", progress=False)
    assert resumed.n_built == 3
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())  # not redone
    whole = build_stream_store(pairs, tmp_path / "whole", progress=False)
    for pair in pairs:
        a, b = resumed.store.open(pair.stem).pair, whole.store.open(pair.stem).pair
        assert np.array_equal(a.real, b.real) and np.array_equal(a.synthetic, b.synthetic)


def test_a_changed_source_file_is_decoded_again(tiny_pairs: Path, tmp_path: Path) -> None:
    pairs = index_pairs(tiny_pairs).pairs
    build_stream_store(pairs, tmp_path / "pixels", progress=False)
    changed = pairs[1].synthetic
    Image.open(changed).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(changed, quality=95)
    later = changed.stat().st_mtime_ns + 10**9
    os.utime(changed, ns=(later, later))
    again = build_stream_store(pairs, tmp_path / "pixels", progress=False)
    assert again.n_built == 1
    stored = again.store.open(pairs[1].stem).pair.synthetic
    assert np.array_equal(stored, read_pixels(changed))
    assert np.array_equal(again.store.open(pairs[0].stem).pair.synthetic,
                          read_pixels(pairs[0].synthetic))


def test_an_unreadable_pair_is_one_line_and_the_others_are_stored(tiny_pairs: Path,
                                                                   tmp_path: Path) -> None:
    (tiny_pairs / "synthetic" / "p2.jpg").write_bytes(b"not an image")
    pairs = index_pairs(tiny_pairs).pairs
    with pytest.raises(DataError) as caught:
        build_stream_store(pairs, tmp_path / "pixels", workers=1, progress=False)
    message = str(caught.value)
    assert message.startswith(str(tiny_pairs / "synthetic" / "p2.jpg")) and "\n" not in message
    assert sorted(p.name for p in (tmp_path / "pixels").glob("*.json")) == [
        "p0.json", "p1.json", "p3.json"]
