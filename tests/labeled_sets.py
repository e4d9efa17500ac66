"""Labelled image sets for detection tests: a checkerboard 'synthetic' class, two 'generators'."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from fakeseg.config import ClassifierConfig
from fakeseg.io import write_image
from fakeseg.training.classification import train_classifier
from fakeseg.training.trainer import TrainResult

SIZE = 48


def checker_image(rng: np.random.Generator, synthetic: bool) -> np.ndarray:
    """Smooth random texture; the synthetic class adds a ±0.15 pixel checkerboard."""
    noise = ndimage.gaussian_filter(rng.random((SIZE, SIZE, 3)), (3, 3, 0))
    image = (noise - noise.mean()) * 4 + 0.5
    if synthetic:
        yy, xx = np.mgrid[:SIZE, :SIZE]
        image = image + 0.15 * (((yy + xx) % 2) * 2 - 1)[:, :, None]
    return np.clip(image, 0, 1)


def make_set(root: Path, n: int, seed: int, *, fake_name: str = "fake",
             n_real: int | None = None) -> Path:
    """n real + n synthetic images named N_genK_{real,fake}.png (two 'generators')."""
    rng = np.random.default_rng(seed)
    for i in range(n if n_real is None else n_real):
        write_image(root / "real" / f"{i}_gen{i % 2}_real.png", checker_image(rng, False))
    for i in range(n):
        write_image(root / fake_name / f"{i}_gen{i % 2}_fake.png", checker_image(rng, True))
    return root


TINY = {"backbone": "tiny_cnn", "weights": "random", "epochs": 3, "batch_size": 16, "lr": 3e-3,
        "size": SIZE, "augment": ["flip"]}


def classify_train(data: object, out: Path, resume: bool = False, **options: object
                   ) -> TrainResult:
    return train_classifier(data, out, ClassifierConfig(**options),  # type: ignore[arg-type]
                            resume=resume, progress=False)


#: (run folder, held-out labelled set, the training result) of the session fixture
TrainedClassifier = tuple[Path, Path, TrainResult]
