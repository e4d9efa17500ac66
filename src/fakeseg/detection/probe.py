"""Frozen-feature probe (UnivFD-style, Ojha et al. 2023): globally pooled features of frozen
ImageNet trunks (``features/trunks.py``; several trunks are concatenated), a standardised
logistic regression on top. Nothing in the trunk is trained, so fitting takes seconds once the
features are extracted.

Images go through the trunk at native resolution (``detection.common``): whole when both sides
are ≤ ``tile``, else the pooled features of the tiles are averaged. Extracted features are kept
in memory per (trunk, weights, tile, file), so the folds of a benchmark extract each image once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from fakeseg.detection.common import (
    MAX_TILES,
    NATIVE_TILE,
    FeatureScorer,
    LinearHead,
    native_tiles,
    read_rgb,
    to_batch,
)
from fakeseg.errors import FakesegError
from fakeseg.features.trunks import Trunk, build_trunk
from fakeseg.progress import progress_bar

_FEATURES: dict[tuple[str, str, int, str, float], np.ndarray] = {}
_TRUNKS: dict[tuple[str, str], Trunk] = {}


def clear_feature_cache() -> None:
    """Forget extracted features (the benchmark does this per method, so that each method's
    first fit is timed cold)."""
    _FEATURES.clear()


def _trunk(name: str, weights: str) -> Trunk:
    key = (name, weights)
    if key not in _TRUNKS:
        _TRUNKS[key] = build_trunk(name, weights).eval()
    return _TRUNKS[key]


def trunk_names(option: str | Sequence[str]) -> list[str]:
    names = option.split("+") if isinstance(option, str) else list(option)
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise FakesegError("probe: no trunk given; use e.g. trunks=mobilenet_v2 or "
                           "mobilenet_v2+efficientnet_lite0")
    return names


@torch.no_grad()
def pooled_features(paths: Sequence[str | Path], trunks: Sequence[str], weights: str = "auto",
                    *, tile: int = NATIVE_TILE, progress: bool = False) -> np.ndarray:
    """(N, sum of trunk dims) pooled features at native resolution, cached in memory."""
    models = [_trunk(name, weights) for name in trunks]
    rows = []
    for path in progress_bar(paths, desc="features", unit="img", enabled=progress):
        resolved = Path(path).resolve()
        stamp = resolved.stat().st_mtime if resolved.exists() else 0.0
        keys = [(m.name, m.weights_tag, tile, str(resolved), stamp) for m in models]
        if any(k not in _FEATURES for k in keys):
            image = read_rgb(path, max(m.min_size for m in models))
            windows = native_tiles(image, tile, MAX_TILES)
            for model, key in zip(models, keys, strict=True):
                feats = [model(to_batch(w)).double().numpy()[0] for w in windows]
                _FEATURES[key] = np.mean(feats, axis=0)
        rows.append(np.concatenate([_FEATURES[k] for k in keys]))
    return np.stack(rows) if rows else np.zeros((0, sum(m.dims for m in models)))


class ProbeScorer(FeatureScorer):
    family = "probe"
    defaults: ClassVar[dict[str, Any]] = {"trunks": "mobilenet_v2", "weights": "auto", "C": 0.1,
                                          "tile": NATIVE_TILE, "seed": 0}

    def __init__(self, method: str, options: dict[str, Any], head: LinearHead) -> None:
        super().__init__(method, options, head)
        self.trunks = trunk_names(options["trunks"])
        self.extra = {"weights_tags": [_trunk(n, options["weights"]).weights_tag
                                       for n in self.trunks]}

    @classmethod
    def features(cls, paths: Sequence[str | Path], options: Mapping[str, Any], *,
                 progress: bool = False) -> np.ndarray:
        return pooled_features(paths, trunk_names(options["trunks"]), options["weights"],
                               tile=int(options["tile"]), progress=progress)

    def describe(self) -> str:
        return (f"{self.method}: logistic probe on frozen {'+'.join(self.trunks)} "
                f"({', '.join(self.extra['weights_tags'])}) pooled features")
