"""Image-level real-vs-synthetic classifier: a trunk (``features/trunks.py``), dropout and one
linear logit (synthetic = 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from fakeseg.errors import CheckpointError
from fakeseg.features.trunks import (
    CLASSIFIER_BACKBONES,
    DEFAULT_CLASSIFIER_BACKBONE,
    Trunk,
    build_trunk,
)
from fakeseg.models.checkpoint import load_checkpoint, load_into

KIND = "classifier"
__all__ = ["CLASSIFIER_BACKBONES", "DEFAULT_CLASSIFIER_BACKBONE", "KIND", "ImageClassifier",
           "build_classifier", "load_classifier"]


class ImageClassifier(nn.Module):
    """Trunk → dropout → one logit (class 1, "synthetic"). ``forward`` returns (B,) logits."""

    def __init__(self, trunk: Trunk, *, dropout: float = 0.2) -> None:
        super().__init__()
        self.trunk = trunk
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(trunk.dims, 1)

    @property
    def backbone(self) -> str:
        return self.trunk.name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.trunk(x))).squeeze(1)

    @torch.no_grad()
    def probability(self, x: torch.Tensor) -> torch.Tensor:
        """P(class 1) for a batch in [0, 1]; switches to eval mode."""
        self.eval()
        return torch.sigmoid(self(x).float())


def build_classifier(backbone: str = DEFAULT_CLASSIFIER_BACKBONE, weights: str = "auto", *,
                     dropout: float = 0.2) -> ImageClassifier:
    """A fresh classifier: pretrained (or ``random``) trunk, random head (caller's torch seed)."""
    return ImageClassifier(build_trunk(backbone, weights, classifier=True), dropout=dropout)


def load_classifier(path: str | Path) -> tuple[ImageClassifier, dict[str, Any], Path]:
    """(model in eval mode, checkpoint meta, checkpoint folder) from a run or its ``best/``."""
    state, meta, folder = load_checkpoint(path)
    if meta.get("kind") != KIND:
        raise CheckpointError(f"{folder}: a '{meta.get('kind')}' checkpoint, not a classifier; "
                              "pass a run folder from 'fakeseg classify train'")
    model = build_classifier(meta["backbone"], "random", dropout=float(meta.get("dropout", 0.2)))
    load_into(model, state, folder / "model.safetensors")
    model.trunk.weights_tag = str(meta.get("weights_tag", "unknown"))
    return model.eval(), meta, folder
