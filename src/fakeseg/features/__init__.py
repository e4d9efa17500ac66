"""Frozen SSD feature pyramids (one set of weights for the real and the synthetic image).

``build_backbone(name, weights="auto", layers=None)`` returns a :class:`FeatureExtractor`:
``extractor(x) -> {layer: features}`` for x in [0, 1], (B, 3, H, W).
"""

from __future__ import annotations

from fakeseg.features.backbones import FeatureExtractor, LayerInfo
from fakeseg.features.registry import (
    BACKBONES,
    DEFAULT_BACKBONE,
    BackboneSpec,
    available_weights,
    build_backbone,
    get_spec,
    identify_weights_file,
    list_backbones,
)
from fakeseg.features.weights import WeightsInfo, WeightSource, read_state_dict

__all__ = [
    "BACKBONES",
    "DEFAULT_BACKBONE",
    "BackboneSpec",
    "FeatureExtractor",
    "LayerInfo",
    "WeightSource",
    "WeightsInfo",
    "available_weights",
    "build_backbone",
    "get_spec",
    "identify_weights_file",
    "list_backbones",
    "read_state_dict",
]
