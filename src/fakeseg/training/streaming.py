"""Streaming training data: composites made on the fly from pairs read lazily from disk.

Sample ``i`` of a run (counted over the whole run, all ranks together) draws everything from
``np.random.default_rng([seed, i])``: which pair, the crop, the flip, the composite. So a
batch is a pure function of (seed, step, rank, world): the same whatever the number of
DataLoader workers, and a resumed run continues at the exact sample. Step ``s`` of a run with
``world`` ranks of ``b`` samples each uses samples ``s·world·b … (s+1)·world·b − 1``; rank
r takes the r-th slice of ``b``, so ``world`` ranks × ``b`` see the samples of one rank ×
``world·b``.

Pairs are decoded only when a sample needs them and kept at their stored depth (uint8/uint16)
in a bounded least-recently-used cache (``cache_mb``, split between the workers); the crop is
converted to float. Heat maps are fused from the memory-mapped per-layer target files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader, Dataset, Sampler

from fakeseg.config import TrainConfig
from fakeseg.data.composites import Composite
from fakeseg.data.pairs import LoadedPair, Pair, PairCache, load_pair
from fakeseg.features.target import TargetStore, heat_map
from fakeseg.training.sampler import collate_batch, sample_composite


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
    """Where a run's heat maps come from: the stored layer maps, their scales and weights."""

    root: Path
    scales: dict[str, float]
    weights: dict[str, float] | None


@dataclass
class CachedPair:
    pair: LoadedPair
    heat: np.ndarray | None  # float16 (H, W)

    @property
    def nbytes(self) -> int:
        return self.pair.nbytes + (self.heat.nbytes if self.heat is not None else 0)


class CompositeStream(Dataset[tuple[Composite, np.ndarray]]):
    """Global sample index → one training composite and its label (see the module doc)."""

    def __init__(self, pairs: Sequence[Pair], config: TrainConfig, *,
                 targets: Targets | None = None, cache_bytes: int = 0,
                 workers: int = 0) -> None:
        if not pairs:
            raise ValueError("a composite stream needs at least one pair")
        self.pairs, self.config, self.targets = list(pairs), config, targets
        self.cache = PairCache(cache_bytes // max(1, workers))  # each worker holds its own

    def __getitem__(self, index: int) -> tuple[Composite, np.ndarray]:
        rng = sample_rng(self.config.seed, index)
        pair = self.pairs[int(rng.integers(len(self.pairs)))]
        cached = self.cache.get(pair.stem, lambda: self._load(pair), lambda c: c.nbytes)
        return sample_composite(cached.pair, cached.heat, rng, self.config)

    def _load(self, pair: Pair) -> CachedPair:
        loaded = load_pair(pair, allow_resize=self.config.allow_resize, native=True)
        heat = None
        if self.targets is not None:
            maps = TargetStore(self.targets.root).get(pair.stem)
            heat = heat_map(maps, loaded.synthetic.shape[:2], scales=self.targets.scales,
                            weights=self.targets.weights).astype(np.float16)
        return CachedPair(loaded, heat)


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
