"""Shared fixtures: tiny paired datasets written to tmp folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fakeseg.io import write_image
from tests.labeled_sets import TINY, TrainedClassifier, classify_train, make_set

torch.set_num_threads(2)


def smooth_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    from scipy import ndimage

    noise = rng.random((height, width, 3))
    return np.clip(ndimage.gaussian_filter(noise, (3, 3, 0)) * 2 - 0.5, 0, 1).astype(np.float32)


def save_tiny_segmenter(folder: Path) -> Path:
    """A random-weight unet_rgb localizer saved in ``folder`` (seeded): a run to score with."""
    from fakeseg.inference.localizer import Localizer
    from fakeseg.models.registry import build_model

    config = {"model": "unet_rgb",
              "model_options": {"encoder_depth": 3, "decoder_channels": [16, 8, 8]}}
    torch.manual_seed(0)
    Localizer(build_model(config), {"kind": "segmenter", "config": config,
                                    "threshold": 0.5}).save(folder)
    return folder


def make_pairs(root: Path, n: int = 4, size: tuple[int, int] = (64, 64), seed: int = 0,
               labels: bool = False) -> Path:
    """n pairs whose synthetic side differs from the real one in its left half (blocky)."""
    rng = np.random.default_rng(seed)
    height, width = size
    for i in range(n):
        real = smooth_image(rng, height, width)
        synthetic = real.copy()
        block = real[::4, ::4].repeat(4, 0).repeat(4, 1)[:height, :width]
        synthetic[:, : width // 2] = np.round(block[:, : width // 2] * 4) / 4
        write_image(root / "real" / f"p{i}.png", real)
        write_image(root / "synthetic" / f"p{i}.jpg", synthetic, quality=95)
        if labels:
            label = np.zeros((height, width), np.uint8)
            label[height // 2:] = 1
            write_image(root / "labels" / f"p{i}.png", label)
    return root


@pytest.fixture
def tiny_pairs(tmp_path: Path) -> Path:
    return make_pairs(tmp_path / "pairs")


@pytest.fixture(scope="session")
def trained_classifier(tmp_path_factory: pytest.TempPathFactory) -> TrainedClassifier:
    """A tiny classifier run on checkerboard sets, its held-out set, and its result."""

    root = tmp_path_factory.mktemp("cls")
    data = make_set(root / "train", 32, seed=0)
    held_out = make_set(root / "test", 10, seed=1)
    result = classify_train(data, root / "run", **TINY)
    return root / "run", held_out, result
