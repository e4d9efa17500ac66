"""A trained image classifier applied to image files: P(synthetic) per image."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from fakeseg.data.labeled import ImageCache, LabeledImage, build_transform
from fakeseg.inference.localizer import same_shape_batches
from fakeseg.models.classifier import ImageClassifier
from fakeseg.progress import progress_bar


def labeled_batches(items: Sequence[LabeledImage],
                    transform: Callable[[torch.Tensor], torch.Tensor], cache: ImageCache,
                    batch_size: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """(images, labels) batches in order, through ``transform`` and ``cache``; a batch holds
    consecutive images of one size (they differ when the transform keeps original sizes)."""
    fitted = ((transform(cache.get(item.path)), float(item.label)) for item in items)
    for chunk in same_shape_batches(fitted, batch_size, key=lambda pair: pair[0].shape):
        yield (torch.stack([image for image, _ in chunk]),
               torch.tensor([label for _, label in chunk]))


@torch.no_grad()
def predict_probabilities(model: ImageClassifier, paths: Sequence[str | Path], *, size: int,
                          fit: str = "crop", batch_size: int = 16,
                          device: torch.device | str = "cpu", cache: ImageCache | None = None,
                          progress: bool = False, desc: str = "predict") -> np.ndarray:
    """P(class 1) per image (float64), with the evaluation transform (central crop / resize)."""
    model.eval().to(device)
    transform = build_transform(size, train=False, fit=fit)
    cache = cache or ImageCache(0)
    items = [LabeledImage(Path(p), 0) for p in paths]
    out: list[np.ndarray] = []
    bar = progress_bar(total=len(items), desc=desc, unit="img", enabled=progress)
    for batch, _ in labeled_batches(items, transform, cache, batch_size):
        out.append(model.probability(batch.to(device)).double().cpu().numpy())
        bar.update(len(batch))
    bar.close()
    return np.concatenate(out) if out else np.zeros(0)
