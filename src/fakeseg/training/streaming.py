"""Streaming training data: composites made on the fly from pairs read lazily from disk.

Sample ``i`` of a run (counted over the whole run, all ranks together) draws everything from
``np.random.default_rng([seed, i])``: which pair, the crop, the flip, the composite. So a
batch is a pure function of (seed, step, rank, world): the same whatever the number of
DataLoader workers, and a resumed run continues at the exact sample. Step ``s`` of a run with
``world`` ranks of ``b`` samples each uses samples ``s·world·b … (s+1)·world·b − 1``; rank
r takes the r-th slice of ``b``, so ``world`` ranks × ``b`` see the samples of one rank ×
``world·b``.

Training reads pairs from a :class:`StreamStore` that :func:`build_stream_store` fills once:
each pair decoded to memory-mappable ``.npy`` files at its stored depth (uint8/uint16), and,
when the targets need them, its fused heat map (float16). A sample then reads only the pages
of its crop, so its cost follows the crop, not the frame. Without a store (tests, the
benchmark's baseline) a sample decodes its pair, kept in a bounded least-recently-used cache;
both give the same samples.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader, Dataset, Sampler

from fakeseg.config import TrainConfig
from fakeseg.data.composites import Composite
from fakeseg.data.pairs import LoadedPair, Pair, PairCache, load_pair
from fakeseg.data.store import ArrayStore, PixelStore
from fakeseg.errors import DataError, FakesegError
from fakeseg.faults import kill_point
from fakeseg.features.target import TargetStore, heat_map
from fakeseg.progress import progress_bar
from fakeseg.training.sampler import collate_batch, sample_composite

HEAT_DIR = "heat"  # fused heat maps, inside the pixel store's folder


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of global sample ``index`` of a run seeded ``seed``."""
    return np.random.default_rng([seed, index])


def default_workers(local_world: int = 1) -> int:
    """DataLoader workers per process: the cores left after the trainers, shared between the
    processes of this machine (0 reads in the training process itself)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)
    return max(0, (cores - local_world) // max(1, local_world))


@dataclass(frozen=True)
class Targets:
    """Where a run's heat maps come from: the stored layer maps (``keys``: stem → the key
    they were made with), their scales and weights."""

    root: Path
    scales: dict[str, float]
    weights: dict[str, float] | None
    keys: dict[str, str]

    def heat_key(self, stem: str) -> str:
        """What a pair's fused heat map depends on: its layer maps, the scales, the weights."""
        parts = json.dumps([self.keys[stem], self.scales, self.weights], sort_keys=True)
        return hashlib.sha256(parts.encode()).hexdigest()[:24]

    def fused(self, stem: str, size: tuple[int, int]) -> np.ndarray:
        """The pair's heat map (float16, ``size``) from its stored layer maps."""
        return heat_map(TargetStore(self.root).get(stem), size, scales=self.scales,
                        weights=self.weights).astype(np.float16)


@dataclass
class SourcePair:
    """What one sample is drawn from: a pair (arrays in memory or memory maps) and its heat."""

    pair: LoadedPair
    heat: np.ndarray | None  # float16 (H, W)

    @property
    def nbytes(self) -> int:
        return self.pair.nbytes + (self.heat.nbytes if self.heat is not None else 0)


@dataclass(frozen=True)
class StreamStore:
    """A built store: pairs in ``root`` (:class:`PixelStore`), heat maps in ``root/heat``."""

    root: Path
    with_heat: bool

    def open(self, stem: str) -> SourcePair:
        heat = (ArrayStore(self.root / HEAT_DIR).open(stem, ["heat"])["heat"]
                if self.with_heat else None)
        return SourcePair(PixelStore(self.root).open_pair(stem), heat)


@dataclass
class StoreBuild:
    """What :func:`build_stream_store` did."""

    store: StreamStore
    n_pairs: int
    n_built: int  # pairs decoded (or heat maps fused) now; the others were already stored
    seconds: float

    @property
    def pairs_per_s(self) -> float | None:
        return self.n_built / self.seconds if self.n_built and self.seconds > 0 else None


class _StoreFiller(Dataset[tuple[str, str | None]]):
    """Decodes and stores one pair (and fuses its heat map) per item, in DataLoader workers;
    returns the stem and the one-line error of an unreadable pair, if any."""

    def __init__(self, pairs: Sequence[Pair], root: Path, allow_resize: bool,
                 targets: Targets | None) -> None:
        self.pairs, self.root, self.allow_resize = list(pairs), root, allow_resize
        self.targets = targets

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[str, str | None]:
        pair, pixels = self.pairs[index], PixelStore(self.root)
        try:
            key = pixels.key(pair, self.allow_resize)
            if not pixels.is_done(pair.stem, key):
                pixels.put_pair(load_pair(pair, allow_resize=self.allow_resize, native=True),
                                key)
            if self.targets is not None:
                heat_store, heat_key = (ArrayStore(self.root / HEAT_DIR),
                                        self.targets.heat_key(pair.stem))
                if not heat_store.is_done(pair.stem, heat_key):
                    size = pixels.open_pair(pair.stem).synthetic.shape[:2]
                    heat_store.put(pair.stem, heat_key,
                                   {"heat": self.targets.fused(pair.stem, size)})
        except FakesegError as exc:  # crosses the worker boundary as one line
            return pair.stem, str(exc)
        except OSError as exc:
            return pair.stem, f"{exc.filename or pair.stem}: {exc.strerror or exc}"
        kill_point("pixel_pair")
        return pair.stem, None


def _stored(pair: Pair, root: Path, allow_resize: bool, targets: Targets | None) -> bool:
    if not PixelStore(root).is_done(pair.stem, PixelStore.key(pair, allow_resize)):
        return False
    return targets is None or ArrayStore(root / HEAT_DIR).is_done(
        pair.stem, targets.heat_key(pair.stem))


def build_stream_store(pairs: Sequence[Pair], root: str | Path, *, allow_resize: bool = False,
                       targets: Targets | None = None, workers: int = 0,
                       progress: bool = True) -> StoreBuild:
    """Decode every pair not stored yet (or stored from files that changed since) into
    ``root``, ``workers`` processes at a time; with ``targets``, also each pair's fused heat
    map. Resumable: what a killed build finished is kept. An unreadable pair does not stop
    the others; the first is then raised as one line."""
    started, root = time.perf_counter(), Path(root)
    todo = [p for p in pairs if not _stored(p, root, allow_resize, targets)]
    errors: list[str] = []
    if todo:
        loader = DataLoader(_StoreFiller(todo, root, allow_resize, targets), batch_size=None,
                            num_workers=workers)
        with progress_bar(total=len(pairs), initial=len(pairs) - len(todo),
                          desc="pixel store", unit="pair", enabled=progress) as bar:
            for _, error in loader:
                if error is not None:
                    errors.append(error)
                bar.update()
    if errors:
        more = f" (and {len(errors) - 1} more unreadable pairs)" if len(errors) > 1 else ""
        raise DataError(f"{errors[0]}{more}")
    return StoreBuild(StreamStore(root, targets is not None), len(pairs), len(todo),
                      time.perf_counter() - started)


class CompositeStream(Dataset[tuple[Composite, np.ndarray]]):
    """Global sample index → one training composite and its label (see the module doc).

    With ``store`` a sample reads its crop from the built store; without, it decodes its
    pair (kept in an LRU cache of ``cache_bytes``, split between the ``workers``).
    """

    def __init__(self, pairs: Sequence[Pair], config: TrainConfig, *,
                 store: StreamStore | None = None, targets: Targets | None = None,
                 cache_bytes: int = 0, workers: int = 0) -> None:
        if not pairs:
            raise ValueError("a composite stream needs at least one pair")
        self.pairs, self.config, self.targets, self.store = list(pairs), config, targets, store
        self.cache = PairCache(cache_bytes // max(1, workers))  # each worker holds its own

    def __getitem__(self, index: int) -> tuple[Composite, np.ndarray]:
        rng = sample_rng(self.config.seed, index)
        pair = self.pairs[int(rng.integers(len(self.pairs)))]
        if self.store is not None:
            source = self.store.open(pair.stem)
        else:
            source = self.cache.get(pair.stem, lambda: self._decode(pair), lambda s: s.nbytes)
        return sample_composite(source.pair, source.heat, rng, self.config)

    def _decode(self, pair: Pair) -> SourcePair:
        loaded = load_pair(pair, allow_resize=self.config.allow_resize, native=True)
        heat = (self.targets.fused(pair.stem, loaded.synthetic.shape[:2])
                if self.targets is not None else None)
        return SourcePair(loaded, heat)


class StepBatches(Sampler[list[int]]):
    """The global sample indices of this rank's batch at each step in [start, end)."""

    def __init__(self, start: int, end: int, batch_size: int, rank: int = 0,
                 world: int = 1) -> None:
        self.start, self.end, self.batch_size = start, end, batch_size
        self.rank, self.world = rank, world

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.end):
            first = (step * self.world + self.rank) * self.batch_size
            yield list(range(first, first + self.batch_size))

    def __len__(self) -> int:
        return max(0, self.end - self.start)


def composite_loader(stream: CompositeStream, start: int, end: int, *, rank: int = 0,
                     world: int = 1, workers: int = 0, pin_memory: bool = False
                     ) -> DataLoader[tuple[Composite, np.ndarray]]:
    """Batches of steps [start, end) for one rank, decoded and composited in ``workers``
    processes (persistent across the run; pinned memory for a CUDA device)."""
    return DataLoader(stream, batch_sampler=StepBatches(start, end, stream.config.batch_size,
                                                        rank, world),
                      num_workers=workers, persistent_workers=workers > 0,
                      pin_memory=pin_memory, collate_fn=collate_batch,
                      prefetch_factor=4 if workers > 0 else None)
