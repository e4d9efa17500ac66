"""What every detection family shares: native-resolution tiles, the scorer contract, a
logistic-regression head stored as plain arrays, and option checking.

Native resolution (the rule every family follows at evaluation): an image is never resized.
An image whose sides are both at most ``tile`` (default 512) is scored whole; a larger one
is cut into a grid of ``tile`` × ``tile`` windows that covers it (neighbours overlap when the
side is not a multiple of ``tile``; offsets are multiples of 8, so JPEG blocks and 2× upsampling
phases stay aligned). At most ``max_tiles`` (default 16) windows, evenly spread, are scored;
the image's score is the sigmoid of the mean of the per-window logits (feature families
average the per-window features instead, which for globally pooled features is the same
average taken one step earlier).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from fakeseg.config import versions
from fakeseg.errors import FakesegError
from fakeseg.io import read_image
from fakeseg.models.checkpoint import save_checkpoint
from fakeseg.registry import did_you_mean

#: ``kind`` in a fitted scorer's model.json
DETECTOR_KIND = "detector"

NATIVE_TILE = 512
MAX_TILES = 16
TILE_ALIGN = 8


def _starts(length: int, window: int) -> list[int]:
    if length <= window:
        return [0]
    count = math.ceil(length / window)
    last = (length - window) // TILE_ALIGN * TILE_ALIGN
    return sorted({round(i * last / (count - 1)) // TILE_ALIGN * TILE_ALIGN
                   for i in range(count)})


def native_tiles(image: np.ndarray, tile: int = NATIVE_TILE,
                 max_tiles: int = MAX_TILES) -> list[np.ndarray]:
    """Windows of an (H, W, C) image at native resolution (see the module docstring)."""
    height, width = image.shape[:2]
    windows = [(top, left) for top in _starts(height, tile) for left in _starts(width, tile)]
    if len(windows) > max_tiles:
        keep = np.linspace(0, len(windows) - 1, max_tiles).round().astype(int)
        windows = [windows[i] for i in keep]
    return [image[top:top + tile, left:left + tile] for top, left in windows]


def read_rgb(path: str | Path, min_side: int = 8) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1]; an image smaller than ``min_side`` is a one-line error."""
    image = read_image(path).astype(np.float32)
    if min(image.shape[:2]) < min_side:
        raise FakesegError(f"{path}: image is {image.shape[1]}x{image.shape[0]}, smaller than "
                           f"{min_side} px on a side; this scorer cannot read it, remove it")
    return image


def to_batch(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) array → (1, 3, H, W) float tensor."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).unsqueeze(0).float()


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(logits, np.float64), -60, 60)))


def logit(probs: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(probs, np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def finite_scores(scores: np.ndarray, paths: Sequence[str | Path], what: str) -> np.ndarray:
    """The scores as float64; any non-finite value is a one-line error naming the image."""
    out = np.asarray(scores, np.float64)
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        raise FakesegError(f"{paths[int(bad[0])]}: {what} gave a non-finite score; check the "
                           "image (constant or corrupt?) or refit the scorer")
    return out


def check_options(family: str, defaults: Mapping[str, Any],
                  options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``defaults`` updated by ``options``; an unknown option is a one-line error."""
    merged = dict(defaults)
    for key, value in (options or {}).items():
        if key not in defaults:
            raise FakesegError(f"{family}: unknown option '{key}'{did_you_mean(key, defaults)}; "
                               "known: " + ", ".join(defaults))
        merged[key] = value
    return merged


class LinearHead:
    """Standardisation + L2 logistic regression (scikit-learn fit), kept as plain arrays."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray, coef: np.ndarray,
                 intercept: float) -> None:
        self.mean, self.scale, self.coef, self.intercept = mean, scale, coef, float(intercept)

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, *, C: float = 1.0,
            seed: int = 0) -> LinearHead:
        from sklearn.linear_model import LogisticRegression

        x = np.asarray(features, np.float64)
        y = np.asarray(labels, np.int64)
        if len(np.unique(y)) < 2:
            raise FakesegError("fitting needs real and synthetic training images; got one class")
        mean = x.mean(0)
        scale = x.std(0)
        scale[scale < 1e-12] = 1.0
        model = LogisticRegression(C=C, max_iter=5000, class_weight="balanced",
                                   random_state=seed).fit((x - mean) / scale, y)
        return cls(mean, scale, model.coef_[0].astype(np.float64), float(model.intercept_[0]))

    def logits(self, features: np.ndarray) -> np.ndarray:
        x = (np.asarray(features, np.float64) - self.mean) / self.scale
        return x @ self.coef + self.intercept

    def tensors(self, prefix: str = "head.") -> dict[str, torch.Tensor]:
        return {prefix + "mean": torch.from_numpy(self.mean),
                prefix + "scale": torch.from_numpy(self.scale),
                prefix + "coef": torch.from_numpy(self.coef),
                prefix + "intercept": torch.tensor([self.intercept], dtype=torch.float64)}

    @classmethod
    def from_tensors(cls, state: Mapping[str, torch.Tensor], prefix: str = "head.") -> LinearHead:
        mean, scale, coef = (state[prefix + k].double().numpy() for k in ("mean", "scale", "coef"))
        return cls(mean, scale, coef, float(state[prefix + "intercept"][0]))


class Scorer:
    """A fitted detection scorer: ``score(paths) -> P(synthetic)`` per image (float64).

    Subclasses set ``family``, implement ``fit`` (a classmethod: ``fit(train, val, options)``),
    ``score``, ``tensors`` (what ``save`` writes to ``model.safetensors``) and
    ``from_state`` (the inverse of ``save``). ``options`` are the family's effective options.
    """

    family: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, method: str, options: dict[str, Any]) -> None:
        self.method = method
        self.options = options
        self.extra: dict[str, Any] = {}  # anything worth recording in the metadata

    @classmethod
    def fit(cls, train: Sequence[Any], val: Sequence[Any], options: Mapping[str, Any] | None,
            *, method: str | None = None, progress: bool = False) -> Scorer:
        raise NotImplementedError

    def score(self, paths: Sequence[str | Path], *, progress: bool = False) -> np.ndarray:
        raise NotImplementedError

    def tensors(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], meta: dict[str, Any],
                   folder: Path) -> Scorer:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.method} ({self.family})"

    def save(self, folder: str | Path) -> Path:
        """``folder/model.safetensors`` + ``folder/model.json`` (fakeseg checkpoint format)."""
        meta = {"kind": DETECTOR_KIND, "method": self.method, "family": self.family,
                "options": self.options, "extra": self.extra, "threshold": 0.5,
                "versions": versions()}
        return save_checkpoint(folder, self.tensors(), meta)


class FeatureScorer(Scorer):
    """A scorer that is fixed per-image features + a :class:`LinearHead` (options ``C``, ``seed``);
    subclasses implement ``features(paths, options, progress)``."""

    def __init__(self, method: str, options: dict[str, Any], head: LinearHead) -> None:
        super().__init__(method, options)
        self.head = head

    @classmethod
    def features(cls, paths: Sequence[str | Path], options: Mapping[str, Any], *,
                 progress: bool = False) -> np.ndarray:
        raise NotImplementedError

    @classmethod
    def fit(cls, train: Sequence[Any], val: Sequence[Any], options: Mapping[str, Any] | None,
            *, method: str | None = None, progress: bool = False) -> Scorer:
        opts = check_options(cls.family, cls.defaults, options)
        head = LinearHead.fit(cls.features(paths_of(train), opts, progress=progress),
                              labels_of(train), C=float(opts["C"]), seed=int(opts["seed"]))
        return cls(method or cls.family, opts, head)

    def score(self, paths: Sequence[str | Path], *, progress: bool = False) -> np.ndarray:
        feats = self.features(paths, self.options, progress=progress)
        return finite_scores(sigmoid(self.head.logits(feats)), paths, self.method)

    def tensors(self) -> dict[str, torch.Tensor]:
        return self.head.tensors()

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], meta: dict[str, Any],
                   folder: Path) -> Scorer:
        return cls(meta["method"], meta["options"], LinearHead.from_tensors(state))


def labels_of(items: Sequence[Any]) -> np.ndarray:
    return np.array([int(i.label) for i in items], dtype=np.int64)


def paths_of(items: Sequence[Any]) -> list[Path]:
    return [Path(i.path) for i in items]
