"""Streaming training data: lazy pairs, bounded cache, reproducible whatever the workers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fakeseg.config import TrainConfig
from fakeseg.data.pairs import PairCache, index_pairs, load_pair
from fakeseg.io import read_image, read_pixels
from fakeseg.training.streaming import CompositeStream, StepBatches, composite_loader

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
