"""The fine-tuned image classifier as a detection family (``cnn``).

Fitting calls :func:`fakeseg.training.classification.train_classifier` (crops of ``size`` px for
training, as there); the saved folder is an ordinary classifier checkpoint, so ``classify
eval|predict`` and this family read the same files. Scoring follows the native-resolution rule
(``detection.common``): the trunk is globally pooled, so each window goes in at its own size.
``cnn_blurjpeg`` trains with CNNDetection's (Wang et al. 2020) augmentation: Gaussian blur
(σ 0.1–2) and JPEG re-compression (quality 40–95), each with probability 0.5, plus flips.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from fakeseg.detection.common import (
    MAX_TILES,
    NATIVE_TILE,
    Scorer,
    check_options,
    finite_scores,
    native_tiles,
    read_rgb,
    sigmoid,
    to_batch,
)
from fakeseg.models.checkpoint import save_checkpoint
from fakeseg.models.classifier import ImageClassifier
from fakeseg.progress import progress_bar


class CNNScorer(Scorer):
    family = "cnn"
    #: the CPU-sized settings of benchmarks/bench_detection.py (its committed table)
    defaults: ClassVar[dict[str, Any]] = {
        "backbone": "mobilenet_v2", "weights": "auto", "epochs": 6, "batch_size": 16,
        "lr": 3e-4, "size": 160, "augment": "flip,rotate,jitter", "tile": NATIVE_TILE,
        "seed": 0, "threads": None}

    def __init__(self, method: str, options: dict[str, Any], model: ImageClassifier,
                 meta: dict[str, Any]) -> None:
        super().__init__(method, options)
        self.model = model.eval()
        self.meta = meta

    @classmethod
    def fit(cls, train: Sequence[Any], val: Sequence[Any], options: Mapping[str, Any] | None,
            *, method: str | None = None, progress: bool = False,
            run_dir: str | Path | None = None) -> CNNScorer:
        from fakeseg.config import ClassifierConfig
        from fakeseg.models.classifier import load_classifier
        from fakeseg.training.classification import train_classifier

        opts = check_options(cls.family, cls.defaults, options)
        augment = [a for a in str(opts["augment"]).split(",") if a.strip()] or ["none"]
        with tempfile.TemporaryDirectory(prefix="fakeseg_cnn_") as scratch:
            config = ClassifierConfig(
                backbone=opts["backbone"], weights=opts["weights"], epochs=int(opts["epochs"]),
                batch_size=int(opts["batch_size"]), lr=float(opts["lr"]),
                size=int(opts["size"]), seed=int(opts["seed"]), augment=augment,
                val_fraction=0.0, source_pattern=None, threads=int(opts["threads"] or 0))
            result = train_classifier(list(train), Path(run_dir or scratch) / "run", config,
                                      val_items=list(val) or None, progress=progress)
            model, meta, _ = load_classifier(result.best_dir)
        meta = {**meta, "method": method or cls.family, "options": opts}
        return cls(method or cls.family, opts, model, meta)

    @torch.no_grad()
    def score(self, paths: Sequence[str | Path], *, progress: bool = False) -> np.ndarray:
        self.model.eval()
        tile = int(self.options.get("tile", NATIVE_TILE))
        out = []
        for path in progress_bar(paths, desc="cnn", unit="img", enabled=progress):
            windows = native_tiles(read_rgb(path, self.model.trunk.min_size), tile, MAX_TILES)
            out.append(float(np.mean([float(self.model(to_batch(w))[0]) for w in windows])))
        return finite_scores(sigmoid(np.array(out)), paths, self.method)

    def tensors(self) -> dict[str, torch.Tensor]:
        return dict(self.model.state_dict())

    def save(self, folder: str | Path) -> Path:
        return save_checkpoint(folder, self.tensors(), self.meta)

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], meta: dict[str, Any],
                   folder: Path) -> CNNScorer:
        from fakeseg.models.classifier import load_classifier

        model, meta, _ = load_classifier(folder)
        options = {**cls.defaults, "backbone": meta.get("backbone"),
                   **(meta.get("options") or {})}
        return cls(str(meta.get("method", cls.family)), options, model, meta)

    def describe(self) -> str:
        return (f"{self.method}: fine-tuned {self.meta.get('backbone')} "
                f"({self.meta.get('weights_tag')}), augment {self.options.get('augment')}")
