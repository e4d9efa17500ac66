"""Frozen SSD feature pyramids (one set of weights for the real and the synthetic image).

``build_backbone(name, weights="auto", layers=None)`` returns a :class:`FeaturePyramid`:
``extractor(x) -> {layer: features}`` for x in [0, 1], (B, 3, H, W). ``name`` is one
backbone (a :class:`FeatureExtractor`) or several side by side, ``"a+b"``
(a :class:`ConcatenatedExtractor`, layers named ``a:layer``).
"""

from __future__ import annotations

from fakeseg.features.backbones import (
    ConcatenatedExtractor,
    FeatureExtractor,
    FeaturePyramid,
    LayerInfo,
)
from fakeseg.features.registry import (
    BACKBONES,
    DEFAULT_BACKBONE,
    BackboneSpec,
    available_weights,
    backbone_names,
    build_backbone,
    build_extractor,
    get_spec,
    identify_weights_file,
    list_backbones,
)
from fakeseg.features.weights import WeightsInfo, WeightSource, read_state_dict

__all__ = [
    "BACKBONES",
    "DEFAULT_BACKBONE",
    "BackboneSpec",
    "ConcatenatedExtractor",
    "FeatureExtractor",
    "FeaturePyramid",
    "LayerInfo",
    "WeightSource",
    "WeightsInfo",
    "available_weights",
    "backbone_names",
    "build_backbone",
    "build_extractor",
    "get_spec",
    "identify_weights_file",
    "list_backbones",
    "read_state_dict",
]
