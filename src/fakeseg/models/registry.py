"""The model registry: every segmenter (FakeSegment and the baselines) built one way.

``build_model(config)`` reads ``config["model"]`` (default ``fakesegment``) and returns an
untrained :class:`~fakeseg.models.base.Segmenter`. FakeSegment takes its backbone, encoder and
widths from the config; a baseline takes ``config["model_options"]`` as keyword arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fakeseg.errors import FakesegError
from fakeseg.models.base import Segmenter
from fakeseg.registry import Registry

DEFAULT_MODEL = "fakesegment"
ModelBuilder = Callable[[Mapping[str, Any], "str | None"], Segmenter]


@dataclass(frozen=True)
class ModelSpec:
    builder: ModelBuilder
    description: str
    trainable: bool = True
    needs_pair: bool = False  # a reference that needs the real partner (not a network)
    baseline: bool = True  # a method FakeSegment is compared against


MODELS: Registry[ModelSpec] = Registry("model")


def build_model(config: Mapping[str, Any], *, weights: str | None = None) -> Segmenter:
    """The untrained segmenter for ``config``; ``weights`` overrides ``backbone_weights``."""
    return MODELS[str(config.get("model", DEFAULT_MODEL))].builder(config, weights)


def baseline_names() -> list[str]:
    """Registered comparison methods, sorted (references such as the oracle included)."""
    return sorted(name for name, spec in MODELS.items() if spec.baseline)


def _fakesegment(config: Mapping[str, Any], weights: str | None) -> Segmenter:
    from fakeseg.features import build_backbone
    from fakeseg.models.fakesegment import FakeSegment

    extractor = build_backbone(config["backbone"], weights=weights or config["backbone_weights"],
                               layers=config.get("layers"))
    return FakeSegment(extractor, encoder=config["encoder"],
                       encoder_weights=config.get("encoder_weights"),
                       reduce_channels=config["reduce_channels"], use_rgb=config["use_rgb"],
                       work_stride=config["work_stride"],
                       decoder_channels=config.get("decoder_channels"))


def _options(config: Mapping[str, Any]) -> dict[str, Any]:
    return dict(config.get("model_options") or {})


def _unet_rgb(config: Mapping[str, Any], weights: str | None) -> Segmenter:
    from fakeseg.models.baselines.unet_rgb import UNetRGB

    return UNetRGB(**_options(config))


def _mantranet(config: Mapping[str, Any], weights: str | None) -> Segmenter:
    from fakeseg.models.baselines.mantranet import ManTraNet

    return ManTraNet(**_options(config))


def _mag(config: Mapping[str, Any], weights: str | None) -> Segmenter:
    from fakeseg.models.baselines.mag import MAG

    return MAG(**_options(config))


def _catnet(config: Mapping[str, Any], weights: str | None) -> Segmenter:
    from fakeseg.models.baselines.catnet import CATNet

    return CATNet(**_options(config))


def _featdiff_oracle(config: Mapping[str, Any], weights: str | None) -> Segmenter:
    raise FakesegError("featdiff_oracle is not a network: the evaluator computes it from each "
                       "(real, synthetic) pair's feature differences; score it with the "
                       "evaluator instead of building it")


MODELS.register("fakesegment", ModelSpec(
    _fakesegment, "FakeSegment (this project's method): frozen SSD features of the image, "
    "reduced and fed with the RGB to an smp U-Net", baseline=False))
MODELS.register("unet_rgb", ModelSpec(
    _unet_rgb, "smp U-Net (ResNet-18 encoder) on RGB, trained directly on composite masks"))
MODELS.register("mantranet", ModelSpec(
    _mantranet, "ManTraNet (Wu et al., CVPR 2019): SRM/Bayar/conv trace features, Z-score "
    "pooling and a ConvLSTM anomaly detector, trained from scratch"))
MODELS.register("mag", ModelSpec(
    _mag, "Mixed Adversarial Generators (Kniaz et al., NeurIPS 2019): annotation generator "
    "trained against a retouching generator and two PatchGAN discriminators"))
MODELS.register("catnet", ModelSpec(
    _catnet, "CAT-Net (Kwon et al., WACV 2021), reduced: RGB stream plus a DCT stream on "
    "one-hot 8x8 block-DCT magnitudes of Y (recomputed from pixels, no quantisation table), "
    "fused at 1/8; trained from scratch"))
MODELS.register("featdiff_oracle", ModelSpec(
    _featdiff_oracle, "oracle upper bound: the feature difference between the synthetic image "
    "and its real pair (needs the pair; not a network)", trainable=False, needs_pair=True))
