"""The SSD feature pyramids and the frozen :class:`FeatureExtractor` that taps them.

Each backbone is a *body* (a plain ``nn.Module`` whose state-dict keys match the upstream
model, so upstream weight files load as they are) plus a *plan*: a chain of stages, each a
list of body submodules applied in order and ending in one named tap. The extractor runs the
chain up to the deepest requested tap and returns only the requested taps; submodules deeper
than that are dropped from the body when it is built.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fakeseg.errors import FakesegError
from fakeseg.features.optimize import fold_batchnorm
from fakeseg.features.weights import StateFormat, map_lukemelas_to_timm, strip_prefix

MIN_INPUT = 32  # every backbone's default taps work from 32×32 up

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision SSD300: (x - mean) / (1/255), i.e. Caffe-style 0-255 pixels minus the mean
SSD300_MEAN = (0.48235, 0.45882, 0.40784)
SSD300_STD = (1.0 / 255.0, 1.0 / 255.0, 1.0 / 255.0)
# torchvision SSDLite320: [0, 1] → [-1, 1]
SSDLITE_MEAN = (0.5, 0.5, 0.5)
SSDLITE_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class LayerInfo:
    """A tap: its nominal stride to the input, channels, and the smallest input it works on."""

    name: str
    stride: int
    channels: int
    min_size: int = MIN_INPUT
    pretrained: bool = True  # False: SSDLite extras that no shipped file trains (random, frozen)


@dataclass(frozen=True)
class Stage:
    """Body submodules (dotted paths) applied in order; the result is tap ``tap``."""

    paths: tuple[str, ...]
    tap: str
    post: str | None = None  # "l2norm": SSD300's scaled L2 norm, on the tap only


def _seq(prefix: str, start: int, stop: int) -> tuple[str, ...]:
    return tuple(f"{prefix}.{i}" for i in range(start, stop))


class Normalize(nn.Module):
    """x in [0, 1] → (x − mean) / std per channel (ImageNet statistics unless given).

    The statistics are constants, not weights: they are not saved in checkpoints.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.to(self.mean.dtype) - self.mean) / self.std


@dataclass(frozen=True)
class FoldedBody:
    """A body's folded copy and what it was made from: the (address, version) of every weight
    and buffer, the device, and a copy of their values (which tells an in-place rewrite of the
    same values from a change)."""

    key: tuple[Any, ...] | None
    device: torch.device
    source: tuple[torch.Tensor, ...]
    body: nn.Module

    def made_from(self, tensors: Sequence[torch.Tensor], device: torch.device) -> bool:
        """Whether ``tensors`` hold exactly the values this copy was folded from."""
        return self.device == device and len(self.source) == len(tensors) and all(
            a.device == b.device and a.shape == b.shape and torch.equal(a, b)
            for a, b in zip(self.source, tensors, strict=True))


class FeaturePyramid(nn.Module):
    """What every frozen extractor offers: ``forward(x) -> {layer: (B, C, h, w)}``.

    ``x`` is float RGB in [0, 1], (B, 3, H, W) with H, W >= :attr:`min_input_size`; the
    extractor applies its own input normalisation. All parameters have ``requires_grad=False``
    and the module stays in eval mode whatever ``train()`` says, so one instance embeds the real
    and the synthetic image with the very same weights.
    """

    name: str
    weights_tag: str
    layers: tuple[str, ...]
    channels: dict[str, int]
    strides: dict[str, int]
    min_sizes: dict[str, int]
    min_input_size: int

    def train(self, mode: bool = True) -> FeaturePyramid:
        """Always eval: the extractor is frozen (BatchNorm keeps its running statistics)."""
        return super().train(False)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, weights={self.weights_tag!r}, layers={self.layers}"


class FeatureExtractor(FeaturePyramid):
    """One backbone's frozen SSD feature pyramid (see :class:`FeaturePyramid`)."""

    #: without gradients, run :meth:`folded_body` (False: the body itself, the reference path)
    fold_without_grad: bool = True

    def __init__(self, name: str, body: nn.Module, plan: Sequence[Stage],
                 infos: Sequence[LayerInfo], layers: Sequence[str], *,
                 mean: Sequence[float], std: Sequence[float], weights_tag: str = "random",
                 prune: bool = True) -> None:
        super().__init__()
        table = {info.name: info for info in infos}
        order = [stage.tap for stage in plan]
        wanted = set(layers)
        self.name = name
        self.weights_tag = weights_tag
        self.weights_format: str = ""
        self.layers = tuple(t for t in order if t in wanted)
        self.channels = {t: table[t].channels for t in self.layers}
        self.strides = {t: table[t].stride for t in self.layers}
        self.min_sizes = {t: table[t].min_size for t in self.layers}
        self.min_input_size = max([MIN_INPUT, *self.min_sizes.values()])
        deepest = max(order.index(t) for t in self.layers)
        self.body = body
        if prune:
            for stage in plan[deepest + 1:]:
                for path in stage.paths:
                    body.set_submodule(path, nn.Identity())
        self._plan: tuple[Stage, ...] = tuple(plan[: deepest + 1])
        self.normalize = Normalize(mean, std)
        self.requires_grad_(False)
        self.eval()
        self._folded: FoldedBody | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Copies (``copy.deepcopy``, pickling) start without the folded body."""
        return {**super().__getstate__(), "_folded": None}

    def folded_body(self, device: torch.device) -> nn.Module | None:
        """:attr:`body` with BatchNorm folded, channels-last (see :mod:`.optimize`): about
        twice as fast on the CPU, equal within ~1e-5. Rebuilt whenever a weight or buffer of
        the body changes value (it keeps a copy of the values it was made from). None when
        the body has no BatchNorm to fold (an already folded copy, SSD300's VGG)."""
        if not any(isinstance(m, nn.BatchNorm2d) for m in self.body.modules()):
            return None
        tensors = [*self.body.parameters(), *self.body.buffers()]
        try:
            key = (device, tuple((t.data_ptr(), t._version) for t in tensors))
        except RuntimeError:  # inference-mode tensors keep no version counter: content decides
            key = None
        cached = self._folded
        if cached is not None and key is not None and cached.key == key:
            return cached.body
        # a version bump that left every value as it was (DDP's buffer broadcast) keeps the copy
        if cached is not None and cached.made_from(tensors, device):
            self._folded = dataclasses.replace(cached, key=key)
            return cached.body
        body = copy.deepcopy(self.body).eval()
        fold_batchnorm(body)
        body = body.to(memory_format=torch.channels_last)
        source = tuple(t.detach().clone() for t in tensors)
        self._folded = FoldedBody(key, device, source, body)
        return body

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 3:
            raise FakesegError(f"{self.name}: expected a (B, 3, H, W) RGB batch, got shape "
                               f"{tuple(x.shape)}")
        height, width = int(x.shape[-2]), int(x.shape[-1])
        if min(height, width) < self.min_input_size:
            small = [t for t, s in self.min_sizes.items() if min(height, width) < s]
            raise FakesegError(
                f"{self.name}: input {width}x{height} is too small; layers {', '.join(small)} "
                f"need at least {self.min_input_size}x{self.min_input_size} pixels (resize the "
                "image or drop the deep layers)")
        x = self.normalize(x)
        body, layout = self.body, None
        # frozen and no gradient wanted (training S, validation, targets): the folded copy
        folded = (self.folded_body(x.device) if self.fold_without_grad
                  and not torch.is_grad_enabled() and not torch.jit.is_tracing() else None)
        if folded is not None:
            body = folded
            if not x.is_contiguous(memory_format=torch.channels_last):
                layout = torch.contiguous_format  # hand back the layout the caller gave
            x = x.contiguous(memory_format=torch.channels_last)
        out: dict[str, torch.Tensor] = {}
        for stage in self._plan:
            # looked up by path on every call (microseconds), so a module swapped into the
            # body (BatchNorm folded for inference, a copy) is always the one that runs
            for path in stage.paths:
                x = body.get_submodule(path)(x)
            if stage.tap in self.channels:
                tap = self._l2norm(body, x) if stage.post == "l2norm" else x
                out[stage.tap] = tap if layout is None else tap.contiguous(memory_format=layout)
        return out

    @staticmethod
    def _l2norm(body: nn.Module, x: torch.Tensor) -> torch.Tensor:
        scale = body.get_parameter("scale_weight")
        return scale.view(1, -1, 1, 1) * F.normalize(x)


def fold_backbones_without_grad(net: nn.Module, enabled: bool) -> None:
    """Set :attr:`FeatureExtractor.fold_without_grad` on every backbone inside ``net``
    (False: the reference path, each body as it is; benchmarks compare the two)."""
    for module in net.modules():
        if isinstance(module, FeatureExtractor):
            module.fold_without_grad = enabled


CONCAT = "+"  # "a+b": backbones a and b side by side
PART = ":"  # "a:layer": a layer of backbone a inside a concatenation


class ConcatenatedExtractor(FeaturePyramid):
    """Several backbones' pyramids side by side, each on the same image: one concatenated
    feature set, its layers named ``backbone:layer`` (each part keeps its own normalisation)."""

    def __init__(self, parts: Sequence[FeatureExtractor]) -> None:
        super().__init__()
        self.parts = nn.ModuleList(parts)
        self.name = CONCAT.join(p.name for p in parts)
        self.weights_tag = CONCAT.join(p.weights_tag for p in parts)
        self.layers = tuple(f"{p.name}{PART}{t}" for p in parts for t in p.layers)
        self.channels, self.strides, self.min_sizes = {}, {}, {}
        for part in parts:
            for tap in part.layers:
                key = f"{part.name}{PART}{tap}"
                self.channels[key] = part.channels[tap]
                self.strides[key] = part.strides[tap]
                self.min_sizes[key] = part.min_sizes[tap]
        self.min_input_size = max(p.min_input_size for p in parts)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {f"{part.name}{PART}{tap}": feats for part in self.parts
                for tap, feats in part(x).items()}


# --------------------------------------------------------------------------- SSDLite extras


def ssdlite_extra_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """torchvision's SSDLite extra block: 1×1 → depthwise 3×3 stride 2 → 1×1, BN + ReLU6."""
    from torchvision.ops.misc import Conv2dNormActivation

    norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)
    mid = out_channels // 2
    return nn.Sequential(
        Conv2dNormActivation(in_channels, mid, kernel_size=1, norm_layer=norm,
                             activation_layer=nn.ReLU6),
        Conv2dNormActivation(mid, mid, kernel_size=3, stride=2, groups=mid, norm_layer=norm,
                             activation_layer=nn.ReLU6),
        Conv2dNormActivation(mid, out_channels, kernel_size=1, norm_layer=norm,
                             activation_layer=nn.ReLU6),
    )


EXTRA_CHANNELS = (512, 256, 256, 128)


def ssdlite_extras(in_channels: int) -> nn.ModuleList:
    """The four SSDLite extra blocks (strides ×2 each), torchvision's normal(0, 0.03) init."""
    chans = (in_channels, *EXTRA_CHANNELS)
    extra = nn.ModuleList(ssdlite_extra_block(a, b) for a, b in itertools.pairwise(chans))
    for module in extra.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.normal_(module.weight, mean=0.0, std=0.03)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return extra


def _extra_infos(first_stride: int) -> list[LayerInfo]:
    return [LayerInfo(f"extra{i + 1}", first_stride * 2 ** (i + 1), c, pretrained=False)
            for i, c in enumerate(EXTRA_CHANNELS)]


def _extra_plan() -> list[Stage]:
    return [Stage((f"extra.{i}",), f"extra{i + 1}") for i in range(len(EXTRA_CHANNELS))]


def _optional_extras(key: str) -> bool:
    return key.startswith("extra.")


def _common_formats() -> list[StateFormat]:
    """Formats every body accepts: its own state dict, a FeatureExtractor's, a FakeSegment's."""
    return [
        StateFormat("fakeseg FakeSegment checkpoint (extractor)",
                    strip_prefix("extractor.body.", drop_others=True)),
        StateFormat("fakeseg FeatureExtractor state dict", strip_prefix("body.")),
        StateFormat("backbone state dict", strip_prefix("")),
    ]


# --------------------------------------------------------------------------- ssd300_vgg16


def build_ssd300_vgg16_body() -> nn.Module:
    """torchvision ``ssd300_vgg16(weights=None, weights_backbone=None).backbone``.

    Built as torchvision does it (VGG16 ``features`` with VGG's init, wrapped in
    ``SSDFeatureExtractorVGG``) but without the 100M-parameter VGG classifier and the SSD head
    that the extractor would throw away.
    """
    from torchvision.models.detection.ssd import SSDFeatureExtractorVGG
    from torchvision.models.vgg import cfgs, make_layers

    features = make_layers(cfgs["D"], batch_norm=False)
    for module in features.modules():
        if isinstance(module, nn.Conv2d):  # torchvision.models.VGG's init
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.constant_(module.bias, 0)
    return SSDFeatureExtractorVGG(features, highres=False)


SSD300_VGG16_LAYERS = (
    LayerInfo("conv3_3", 4, 256),
    LayerInfo("conv4_3", 8, 512),  # L2-normalised and scaled, as SSD's first head sees it
    LayerInfo("fc7", 16, 1024),
    LayerInfo("conv8_2", 32, 512),
    LayerInfo("conv9_2", 64, 256),
    LayerInfo("conv10_2", 64, 256, min_size=140),  # 3×3 valid conv: needs conv9_2 >= 3×3
    LayerInfo("conv11_2", 64, 256, min_size=268),  # needs conv10_2 >= 3×3
)
SSD300_VGG16_PLAN = (
    Stage(_seq("features", 0, 16), "conv3_3"),
    Stage(_seq("features", 16, 23), "conv4_3", post="l2norm"),
    Stage(("extra.0",), "fc7"),
    Stage(("extra.1",), "conv8_2"),
    Stage(("extra.2",), "conv9_2"),
    Stage(("extra.3",), "conv10_2"),
    Stage(("extra.4",), "conv11_2"),
)


def _vgg16_classifier_remap(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    """torchvision VGG16 (``features.i``) → SSD300's split: conv1_1..conv4_3 stay in
    ``features``, pool4..conv5_3 (``features.23-29``) open ``extra.0``; fc6/fc7 are not in it."""
    if "features.0.weight" not in state or "scale_weight" in state:
        return None
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("classifier."):
            continue
        parts = key.split(".")
        if parts[0] == "features" and len(parts) > 2 and parts[1].isdigit():
            index = int(parts[1])
            rest = ".".join(parts[2:])
            out[f"features.{index}.{rest}" if index < 23 else f"extra.0.{index - 23}.{rest}"] = (
                value)
        else:
            out[key] = value
    return out


def _vgg_optional(key: str) -> bool:
    # fc6/fc7 (extra.0.7), conv8_2.. and the L2 scale are SSD's own, not in an ImageNet VGG
    return key.startswith(("extra.0.7.", "extra.1.", "extra.2.", "extra.3.", "extra.4.")) or (
        key == "scale_weight")


SSD300_VGG16_FORMATS = (
    StateFormat("torchvision SSD300 detector", strip_prefix("backbone.", drop=("head.",))),
    *_common_formats(),
    StateFormat("torchvision VGG16 (ImageNet features; fc6/fc7 and extras random-init)",
                _vgg16_classifier_remap, _vgg_optional),
)


# --------------------------------------------------------------------------- ssdlite320


def build_ssdlite320_body() -> nn.Module:
    """torchvision ``ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None)
    .backbone``: MobileNetV3-Large with the reduced tail of the COCO model, split at C4.

    Built the way that builder does it, minus the SSD head and its 320×320 probe forward.
    """
    from torchvision.models import mobilenet_v3_large
    from torchvision.models.detection.ssdlite import SSDLiteFeatureExtractorMobileNet

    norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)
    trunk = mobilenet_v3_large(weights=None, norm_layer=norm, reduced_tail=True)
    for module in trunk.modules():  # torchvision's _normal_init for a non-pretrained trunk
        if isinstance(module, nn.Conv2d):
            nn.init.normal_(module.weight, mean=0.0, std=0.03)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    features = trunk.features
    c4 = [i for i, block in enumerate(features) if getattr(block, "_is_cn", False)][-1]
    return SSDLiteFeatureExtractorMobileNet(features, c4, norm)


SSDLITE320_LAYERS = (
    LayerInfo("block3", 4, 24),
    LayerInfo("block6", 8, 40),
    LayerInfo("block12", 16, 112),
    LayerInfo("expand13", 16, 672),  # SSDLite's first head input (C4 expansion)
    LayerInfo("conv16", 32, 480),  # SSDLite's second head input (reduced tail)
    *(LayerInfo(f"extra{i + 1}", 64 * 2**i, c) for i, c in enumerate(EXTRA_CHANNELS)),
)
SSDLITE320_PLAN = (
    Stage(_seq("features.0", 0, 4), "block3"),
    Stage(_seq("features.0", 4, 7), "block6"),
    Stage(_seq("features.0", 7, 13), "block12"),
    Stage(("features.0.13",), "expand13"),
    Stage(("features.1",), "conv16"),
    *_extra_plan(),
)
SSDLITE320_FORMATS = (
    StateFormat("torchvision SSDLite320 detector", strip_prefix("backbone.", drop=("head.",))),
    *_common_formats(),
)


# --------------------------------------------------------------------------- ssdlite_mobilenet_v2


class SSDLiteMobileNetV2(nn.Module):
    """SSDLite over torchvision's MobileNetV2: ``features`` (keys as in
    ``torchvision.models.mobilenet_v2``) and four SSDLite ``extra`` blocks on its 1280-ch end.
    The extras are not in the ImageNet file: with it they are random (fixed seed) and frozen."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import mobilenet_v2

        self.features = mobilenet_v2(weights=None).features
        self.extra = ssdlite_extras(1280)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - taps are used
        x = self.features(x)
        for block in self.extra:
            x = block(x)
        return x


SSDLITE_MOBILENET_V2_LAYERS = (
    LayerInfo("block3", 4, 24),
    LayerInfo("block6", 8, 32),
    LayerInfo("block13", 16, 96),
    LayerInfo("expand14", 16, 576),  # SSDLite's C4 tap: expansion of the stride-32 block
    LayerInfo("block17", 32, 320),
    LayerInfo("conv18", 32, 1280),  # SSDLite's C5 tap
    *_extra_infos(32),
)
SSDLITE_MOBILENET_V2_PLAN = (
    Stage(_seq("features", 0, 4), "block3"),
    Stage(_seq("features", 4, 7), "block6"),
    Stage(_seq("features", 7, 14), "block13"),
    Stage(("features.14.conv.0",), "expand14"),  # block 14 has no residual: safe to split
    Stage(("features.14.conv.1", "features.14.conv.2", "features.14.conv.3",
           *_seq("features", 15, 18)), "block17"),
    Stage(("features.18",), "conv18"),
    *_extra_plan(),
)
SSDLITE_MOBILENET_V2_FORMATS = (
    StateFormat("torchvision MobileNetV2 (ImageNet; extras random-init)",
                strip_prefix("", drop=("classifier.",)), _optional_extras),
    StateFormat("SSDLite-MobileNetV2 detector", strip_prefix("backbone.", drop=("head.",))),
    *_common_formats(),
)


# --------------------------------------------------------------------------- efficientnet_lite0


class SSDLiteEfficientNetLite0(nn.Module):
    """timm ``efficientnet_lite0`` features-only ``trunk`` plus four SSDLite ``extra`` blocks
    on its 320-ch stride-32 end (random, fixed seed, frozen unless a file holds them)."""

    trunk: Any  # a timm model: its stages are reached by name

    def __init__(self) -> None:
        super().__init__()
        import timm

        self.trunk = timm.create_model("efficientnet_lite0", pretrained=False,
                                       features_only=True)
        self.extra = ssdlite_extras(320)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - taps are used
        x = self.trunk.bn1(self.trunk.conv_stem(x))
        x = self.trunk.blocks(x)
        for block in self.extra:
            x = block(x)
        return x


@lru_cache(maxsize=1)
def timm_efficientnet_lite0_shapes() -> dict[str, torch.Size]:
    """timm's full ``efficientnet_lite0`` state-dict shapes in order (296 keys), built on the
    meta device (no memory, no init cost)."""
    import timm

    with torch.device("meta"):
        model = timm.create_model("efficientnet_lite0", pretrained=False)
    return {k: v.shape for k, v in model.state_dict().items()}


_TIMM_HEAD = ("conv_head.", "bn2.", "classifier.")


def _timm_to_trunk(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    if "conv_stem.weight" not in state:
        return None
    return {f"trunk.{k}": v for k, v in state.items() if not k.startswith(_TIMM_HEAD)}


def _lukemelas_to_trunk(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    if "_conv_stem.weight" not in state:
        return None
    return _timm_to_trunk(map_lukemelas_to_timm(state, timm_efficientnet_lite0_shapes()))


EFFICIENTNET_LITE0_LAYERS = (
    LayerInfo("stage0", 2, 16),
    LayerInfo("stage1", 4, 24),
    LayerInfo("stage2", 8, 40),
    LayerInfo("stage3", 16, 80),
    LayerInfo("stage4", 16, 112),
    LayerInfo("stage5", 32, 192),
    LayerInfo("stage6", 32, 320),
    *_extra_infos(32),
)
EFFICIENTNET_LITE0_PLAN = (
    Stage(("trunk.conv_stem", "trunk.bn1", "trunk.blocks.0"), "stage0"),
    *(Stage((f"trunk.blocks.{i}",), f"stage{i}") for i in range(1, 7)),
    *_extra_plan(),
)
EFFICIENTNET_LITE0_FORMATS = (
    StateFormat("EfficientNet-Lite0 (ImageNet, EfficientNet-PyTorch keys; extras random-init)",
                _lukemelas_to_trunk, _optional_extras),
    StateFormat("timm efficientnet_lite0 (extras random-init)", _timm_to_trunk, _optional_extras),
    *_common_formats(),
)


BodyBuilder = Callable[[], nn.Module]
