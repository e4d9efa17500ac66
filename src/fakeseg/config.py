"""Configuration dataclasses, YAML load/save, ``key=value`` overrides and provenance."""

from __future__ import annotations

import dataclasses
import math
import platform
import re
import reprlib
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from fakeseg.errors import FakesegError, printable
from fakeseg.registry import did_you_mean

T = TypeVar("T")


@dataclass
class TrainConfig:
    """Everything that defines a FakeSegment training run. Saved into every run."""

    # which network: "fakesegment" or a baseline name (see fakeseg.models.baselines)
    model: str = "fakesegment"
    model_options: dict[str, Any] = field(default_factory=dict)
    # features
    backbone: str = "efficientnet_lite0"  # CV: +0.035 Dice over ssdlite_mobilenet_v2
    backbone_weights: str = "auto"
    layers: list[str] | None = None  # None: the backbone's default taps
    layer_weights: list[float] | None = None  # None: equal weights
    target_percentile: float = 99.0
    # segmentation net S
    encoder: str = "resnet18"
    encoder_weights: str | None = None
    reduce_channels: int = 32
    use_rgb: bool = True
    work_stride: int = 4
    decoder_channels: list[int] | None = None  # U-Net widths, 4 levels; None: (128, 64, 32, 16)
    # targets and composites
    target_mode: str = "mask"  # heatmap | mask | hybrid
    mask_kinds: list[str] = field(default_factory=lambda: ["rectangles", "blobs", "classwise"])
    coverage: tuple[float, float] = (0.2, 0.6)
    p_pure_real: float = 0.3  # benchmarks: halves false positives on pure-real images
    p_pure_synthetic: float = 0.15
    blend_sigma: float = 2.0
    p_reencode: float = 0.5
    color_jitter: float = 0.0  # brightness/contrast/saturation factors in [1 − j, 1 + j]
    scale_jitter: float = 0.0  # crops of size·s, s log-uniform in [1/(1 + j), 1 + j], resized
    # optimisation
    crop_size: int = 128
    batch_size: int = 8
    steps: int = 1500  # capped by the 5-minute budget: see README, Training length
    steps_per_epoch: int = 50  # validation (and the best checkpoint) every so many steps
    lr: float = 1e-3
    weight_decay: float = 1e-4
    adv_weight: float = 0.0
    dice_weight: float = 0.0  # + dice_weight · soft Dice loss (smp's) next to the BCE
    ema_decay: float = 0.0  # > 0: validate and keep an EMA of the weights (e.g. 0.99)
    early_stopping: int = 0  # epochs without val improvement; 0: off (CV: 4 stopped a fold at 300)
    minutes: float = 5.0  # wall-time budget, checked after each epoch; 0: none
    # false alarms on real pixels
    real_pixel_weight: float = 1.0  # BCE weight of real (label 0) pixels
    hard_negative_fraction: float = 0.0  # extra loss on this share of the hardest real pixels
    # Gaussian σ (pixels) on probability maps, at validation and prediction; 0: none. CV: false
    # alarms on pure real 8.0 → 6.7 %, lower on 27 of 27 folds; Dice within noise
    # (benchmarks/results/cv_vistas_smoothing)
    smooth_sigma: float = 16.0
    # split and bookkeeping
    # 80/10/10 (9 pairs: 7/1/1): CV found more training pairs help (benchmarks/learning_curve.py)
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0
    allow_resize: bool = False
    device: str = "auto"
    amp: bool = True
    threads: int = 0  # 0: torch default
    # scale: streaming data, targets, several processes
    workers: int = -1  # DataLoader workers per process; -1: cores − 1 (shared between ranks)
    target_batch: int = 2  # pairs per forward pass when computing target maps
    val_pairs: int = 32  # validation pairs scored each epoch (the first of the split); 0: all
    batchnorm: str = "auto"  # under DDP: sync | local | frozen; auto: sync on CUDA, else local

    def validate(self, origins: Mapping[str, str] | None = None, source: str = "config",
                 names: Mapping[str, Sequence[str]] | None = None) -> TrainConfig:
        """Check every field's type and range (normalising e.g. ``"1e-3"`` to 0.001).

        ``origins`` names where each value came from (``--set steps=abc``, ``cfg.yaml``,
        ``RUN/best/model.json``); the one-line error starts with it. ``names`` lists the
        known values of name fields whose registries live above this module (``model``,
        ``backbone``: see :func:`fakeseg.models.checkpoint.known_names`).
        """
        return validate_fields(self, FIELD_RULES, _CROSS_CHECKS, origins, source, names)


@dataclass
class ClassifierConfig:
    """Everything that defines an image-classifier training run (``fakeseg classify train``)."""

    backbone: str = "mobilenet_v2"
    weights: str = "auto"
    epochs: int = 5
    batch_size: int = 16
    lr: float = 1e-4  # Wimmer et al.: Adam(W), lr 1e-4, weight decay 1e-3
    weight_decay: float = 1e-3
    size: int = 224
    fit: str = "crop"  # crop | resize (erases high-frequency traces) | original (no fitting)
    seed: int = 0
    augment: list[str] = field(default_factory=lambda: ["flip", "rotate", "jitter"])
    val_fraction: float = 0.2
    dropout: float = 0.2
    source_pattern: str | None = r"^\d+_(.+)_(?:real|fake)$"
    class_names: list[str] = field(default_factory=lambda: ["real", "synthetic"])
    early_stopping: int = 0  # epochs without val improvement; 0 keeps every epoch
    device: str = "auto"
    amp: bool = False
    threads: int = 0  # 0: torch default

    def validate(self, origins: Mapping[str, str] | None = None, source: str = "config",
                 names: Mapping[str, Sequence[str]] | None = None) -> ClassifierConfig:
        """Types and ranges of every field, as :meth:`TrainConfig.validate`."""
        return validate_fields(self, CLASSIFIER_RULES, _CLASSIFIER_CROSS_CHECKS, origins,
                               source, names)


@dataclass
class EnhanceConfig:
    """Everything that defines a ``fakeseg enhance`` refiner run. Saved into every run."""

    # the refiner G: an smp U-Net predicting a bounded residual
    encoder: str = "resnet18"
    encoder_depth: int = 3
    decoder_channels: list[int] = field(default_factory=lambda: [64, 32, 16])
    max_delta: float = 0.1  # |Δ| ≤ max_delta (tanh-scaled), in [0, 1] pixel units
    # the soft mask h: the critic's flagged pixels feathered inward (0 on every unflagged one)
    feather_sigma: float = 4.0
    # loss = critic_weight·critic unrealism + identity_weight·mean |G(x) − x|
    #        + style_weight·feature-statistics distance to real images
    #        + paired_weight·|G(x) − R| inside h (paired data only: R is the real partner)
    #        + paired_feature_weight·|F(G(x)) − F(R)| inside h, F = style_backbone's layers
    # defaults: the best of four settings on the vistas test pairs
    # (benchmarks/results/enhance_vistas)
    critic_weight: float = 0.1
    identity_weight: float = 1.0
    style_weight: float = 1.0
    paired_weight: float = 10.0
    paired_feature_weight: float = 1.0
    style_backbone: str = "auto"  # auto: the critic's backbone (the judges use the other family)
    style_weights: str = "auto"
    # optimisation
    crop_size: int = 256
    batch_size: int = 4
    steps: int = 200
    steps_per_epoch: int = 50
    lr: float = 5e-4
    weight_decay: float = 0.0
    early_stopping: int = 0
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    threads: int = 0  # 0: torch default

    def validate(self, origins: Mapping[str, str] | None = None, source: str = "config",
                 names: Mapping[str, Sequence[str]] | None = None) -> EnhanceConfig:
        """Types and ranges of every field, as :meth:`TrainConfig.validate`."""
        return validate_fields(self, ENHANCE_RULES, _ENHANCE_CROSS_CHECKS, origins, source,
                               names)


C = TypeVar("C")


def validate_fields(config: C, rules: Mapping[str, Rule],
                    cross_checks: Sequence[tuple[tuple[str, ...], Callable[[Any], bool], str]],
                    origins: Mapping[str, str] | None, source: str,
                    names: Mapping[str, Sequence[str]] | None) -> C:
    """The one validator: each field through its :class:`Rule`, then the cross-field checks."""
    origins = origins or {}
    for name, rule in rules.items():
        value = getattr(config, name)
        if names and name in names:
            rule = _known(names[name], rule.example)
        try:
            setattr(config, name, rule.check(value))
        except _Invalid as exc:
            raise FakesegError(f"{origins.get(name, source)}: {name} must be "
                               f"{exc.expected or rule.expected}, got {_show(value)}"
                               f"{exc.hint}; "
                               f"e.g. {name}={rule.example}") from None
    for together, ok, expected in cross_checks:
        if not ok(config):
            where = origins.get(together[-1], origins.get(together[0], source))
            got = ", ".join(f"{n}={_show(getattr(config, n))}" for n in together)
            raise FakesegError(f"{where}: {expected} (got {got})")
    return config


# ------------------------------------------------------------------- the one validator


class _Invalid(ValueError):
    """A value that breaks its rule; ``expected`` overrides the rule's description."""

    def __init__(self, expected: str = "", hint: str = "") -> None:
        super().__init__(expected)
        self.expected, self.hint = expected, hint


@dataclass(frozen=True)
class Rule:
    """How one config field is checked: ``check`` returns the normalised value or raises."""

    check: Callable[[Any], Any]
    expected: str
    example: str


_SHORT_REPR = reprlib.Repr()
_SHORT_REPR.maxlevel, _SHORT_REPR.maxstring, _SHORT_REPR.maxother = 2, 40, 40


def _show(value: Any) -> str:
    """A short repr (bounded even for a YAML alias bomb)."""
    return _SHORT_REPR.repr(value)


def _number(value: Any) -> float:
    """int/float (not bool) or a numeric string such as ``"1e-3"`` (YAML 1.1 reads it as text)."""
    if isinstance(value, bool):
        raise _Invalid()
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise _Invalid() from None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _Invalid()
    return value


def _integer(low: int, high: int | None = None, multiple: int = 1) -> Rule:
    def check(value: Any) -> int:
        number = _number(value)
        if float(number) != int(number):
            raise _Invalid()
        number = int(number)
        if number < low or (high is not None and number > high) or number % multiple:
            raise _Invalid()
        return number

    bounds = f"≥ {low}" if high is None else f"in [{low}, {high}]"
    kind = "a whole number" if multiple == 1 else f"a multiple of {multiple}"
    return Rule(check, f"{kind} {bounds}", str(max(low, multiple)))


def _real(low: float, high: float | None = None, *, open_low: bool = False,
          open_high: bool = False, example: str = "") -> Rule:
    def check(value: Any) -> float:
        number = float(_number(value))
        if number < low or (open_low and number == low):
            raise _Invalid()
        if high is not None and (number > high or (open_high and number == high)):
            raise _Invalid()
        return number

    left = "(" if open_low else "["
    right = ")" if open_high else "]"
    bounds = f"> {low:g}" if high is None and open_low else f"≥ {low:g}" if high is None \
        else f"in {left}{low:g}, {high:g}{right}"
    return Rule(check, f"a finite number {bounds}", example or f"{low:g}")


def _boolean() -> Rule:
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise _Invalid()
        return value

    return Rule(check, "true or false", "true")


def _text(pattern: str | None = None, expected: str = "a non-empty string",
          example: str = "auto") -> Rule:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not value.strip() or (
                pattern and not re.fullmatch(pattern, value)):
            raise _Invalid()
        return value

    return Rule(check, expected, example)


def _choice(choices: Callable[[], list[Any]], example: str) -> Rule:
    """One of ``choices()`` (looked up lazily: some lists come from torch-side registries)."""
    def check(value: Any) -> Any:
        known = choices()
        if isinstance(value, bool) or value not in known:
            hint = did_you_mean(str(value), [str(k) for k in known])
            listed = ", ".join(map(str, known[:8])) + (
                f", ... ({len(known)} names)" if len(known) > 8 else "")
            raise _Invalid(f"one of {listed}", hint)
        return value

    return Rule(check, "a known name", example)


def _known(names: Sequence[str], example: str) -> Rule:
    """One of a fixed list of registered names."""
    known = list(names)
    return _choice(lambda: known, example)


def _optional(rule: Rule) -> Rule:
    return Rule(lambda v: None if v is None else rule.check(v),
                f"null or {rule.expected}", rule.example)


def _listing(item: Rule, *, split_text: bool = False, min_items: int = 1) -> Rule:
    """A list of ``item``; with ``split_text`` a bare string ``"a,b"`` means ``[a, b]``."""
    def check(value: Any) -> list[Any]:
        if split_text and isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, (list, tuple)) or len(value) < min_items:
            raise _Invalid()
        try:
            return [item.check(v) for v in value]
        except _Invalid as exc:
            raise _Invalid(f"a list of {exc.expected or item.expected}", exc.hint) from None

    return Rule(check, f"a list of {item.expected}", f"[{item.example}]")


def _pair(item: Rule) -> Rule:
    def check(value: Any) -> tuple[Any, Any]:
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise _Invalid()
        return (item.check(value[0]), item.check(value[1]))

    return Rule(check, f"a pair [low, high] of {item.expected}s", f"[{item.example}, 0.6]")


def _mapping() -> Rule:
    def check(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise _Invalid()
        try:
            check_size(value)
        except FakesegError:
            raise _Invalid(f"a mapping under {MAX_CONFIG_CHARS // 1024} KiB and "
                           f"{MAX_CONFIG_DEPTH} levels once YAML aliases are expanded") from None
        return dict(value)

    return Rule(check, "a mapping of name: value", "{}")


def _encoders() -> list[str]:
    from segmentation_models_pytorch.encoders import get_encoder_names

    return list(get_encoder_names())


_UNIT = _real(0.0, 1.0, example="0.5")
MASK_KINDS = ("rectangles", "blobs", "classwise")
FIELD_RULES: dict[str, Rule] = {
    "model": _text(r"[A-Za-z0-9_.-]+", "a model name", "fakesegment"),
    "model_options": _mapping(),
    "backbone": _text(r"[A-Za-z0-9_.+-]+", "a backbone name", "ssdlite_mobilenet_v2"),
    "backbone_weights": _text(example="auto"),
    "layers": _optional(_listing(_text(example="layer"))),
    "layer_weights": _optional(_listing(_real(0.0, example="1.0"))),
    "target_percentile": _real(0.0, 100.0, open_low=True, example="99"),
    "encoder": _choice(_encoders, "resnet18"),
    "encoder_weights": _optional(_text(example="imagenet")),
    "reduce_channels": _integer(1, 4096),
    "use_rgb": _boolean(),
    "work_stride": _choice(lambda: [1, 2, 4, 8], "4"),
    "decoder_channels": _optional(_listing(_integer(1, 4096))),
    "target_mode": _choice(lambda: ["heatmap", "mask", "hybrid"], "mask"),
    "mask_kinds": _listing(_choice(lambda: list(MASK_KINDS), "rectangles"), split_text=True),
    "coverage": _pair(_real(0.0, 1.0, open_low=True, open_high=True, example="0.2")),
    "p_pure_real": _UNIT,
    "p_pure_synthetic": _UNIT,
    "blend_sigma": _real(0.0, 100.0, example="2.0"),
    "p_reencode": _UNIT,
    "color_jitter": _real(0.0, 1.0, open_high=True, example="0.2"),
    "scale_jitter": _real(0.0, 3.0, example="0.25"),
    "crop_size": _integer(32, 8192, multiple=32),
    "batch_size": _integer(1, 65536),
    "steps": _integer(1),
    "steps_per_epoch": _integer(1),
    "lr": _real(0.0, 10.0, open_low=True, example="0.001"),
    "weight_decay": _real(0.0, example="0.0001"),
    "adv_weight": _real(0.0, example="0.1"),
    "dice_weight": _real(0.0, example="1.0"),
    "ema_decay": _real(0.0, 1.0, open_high=True, example="0.99"),
    "early_stopping": _integer(0),
    "minutes": _real(0.0, example="5"),
    "real_pixel_weight": _real(0.0, 100.0, open_low=True, example="2.0"),
    "hard_negative_fraction": _real(0.0, 1.0, example="0.05"),
    "smooth_sigma": _real(0.0, 1000.0, example="16"),
    "val_fraction": _real(0.0, 1.0, open_low=True, open_high=True, example="0.2"),
    "test_fraction": _real(0.0, 1.0, open_high=True, example="0.2"),
    "seed": _integer(0, 2**32 - 1),
    "allow_resize": _boolean(),
    "device": _text(r"auto|cpu|mps|cuda(:\d+)?", "auto, cpu, cuda or cuda:N", "cpu"),
    "amp": _boolean(),
    "threads": _integer(0, 1024),
    "workers": _integer(-1, 1024),
    "target_batch": _integer(1, 1024),
    "val_pairs": _integer(0),
    "batchnorm": _text("auto|sync|local|frozen", "auto, sync, local or frozen", "sync"),
}
_CROSS_CHECKS: tuple[tuple[tuple[str, ...], Callable[[TrainConfig], bool], str], ...] = (
    (("decoder_channels",), lambda c: c.decoder_channels is None
     or len(c.decoder_channels) == 4, "decoder_channels must list 4 widths (deep to shallow)"),
    (("coverage",), lambda c: c.coverage[0] <= c.coverage[1],
     "coverage must be [low, high] with low ≤ high"),
    (("val_fraction", "test_fraction"), lambda c: c.val_fraction + c.test_fraction < 1,
     "val_fraction + test_fraction must be below 1"),
    (("p_pure_real", "p_pure_synthetic"), lambda c: c.p_pure_real + c.p_pure_synthetic <= 1,
     "p_pure_real + p_pure_synthetic must be at most 1"),
)

CLASSIFIER_RULES: dict[str, Rule] = {
    "backbone": _text(r"[A-Za-z0-9_.-]+", "a backbone name", "mobilenet_v2"),
    "weights": _text(example="auto"),
    "epochs": _integer(1),
    "batch_size": _integer(1, 65536),
    "lr": FIELD_RULES["lr"],
    "weight_decay": FIELD_RULES["weight_decay"],
    "size": _integer(32, 8192),
    "fit": _choice(lambda: ["crop", "resize", "original"], "crop"),
    "seed": FIELD_RULES["seed"],
    "augment": _listing(_text(r"[a-z]+", "an augmentation name", "flip"), split_text=True),
    "val_fraction": _real(0.0, 1.0, open_high=True, example="0.2"),
    "dropout": _real(0.0, 1.0, open_high=True, example="0.2"),
    "source_pattern": _optional(_text(example="'^(.+)_'")),
    "class_names": _listing(_text(example="real"), min_items=2),
    "early_stopping": FIELD_RULES["early_stopping"],
    "device": FIELD_RULES["device"],
    "amp": FIELD_RULES["amp"],
    "threads": FIELD_RULES["threads"],
}
_CLASSIFIER_CROSS_CHECKS: tuple[tuple[tuple[str, ...], Callable[[ClassifierConfig], bool], str],
                                ...] = (
    (("class_names",), lambda c: len(c.class_names) == 2
     and c.class_names[0] != c.class_names[1], "class_names must be two different names"),
)

ENHANCE_RULES: dict[str, Rule] = {
    "encoder": FIELD_RULES["encoder"],
    "encoder_depth": _integer(1, 5),
    "decoder_channels": _listing(_integer(1, 4096)),
    "max_delta": _real(0.0, 1.0, open_low=True, example="0.1"),
    "feather_sigma": _real(0.0, 100.0, example="4.0"),
    "critic_weight": _real(0.0, example="0.1"),
    "identity_weight": _real(0.0, example="1.0"),
    "style_weight": _real(0.0, example="1.0"),
    "paired_weight": _real(0.0, example="10.0"),
    "paired_feature_weight": _real(0.0, example="1.0"),
    "style_backbone": FIELD_RULES["backbone"],
    "style_weights": FIELD_RULES["backbone_weights"],
    "crop_size": _integer(64, 8192, multiple=64),
    "batch_size": FIELD_RULES["batch_size"],
    "steps": FIELD_RULES["steps"],
    "steps_per_epoch": FIELD_RULES["steps_per_epoch"],
    "lr": FIELD_RULES["lr"],
    "weight_decay": FIELD_RULES["weight_decay"],
    "early_stopping": FIELD_RULES["early_stopping"],
    "seed": FIELD_RULES["seed"],
    "device": FIELD_RULES["device"],
    "amp": FIELD_RULES["amp"],
    "threads": FIELD_RULES["threads"],
}
_ENHANCE_CROSS_CHECKS: tuple[tuple[tuple[str, ...], Callable[[EnhanceConfig], bool], str],
                             ...] = (
    (("decoder_channels", "encoder_depth"),
     lambda c: len(c.decoder_channels) == c.encoder_depth,
     "decoder_channels must list one width per encoder level (encoder_depth of them)"),
    (("critic_weight", "style_weight", "paired_weight", "paired_feature_weight"),
     lambda c: c.critic_weight + c.style_weight + c.paired_weight + c.paired_feature_weight
     > 0,
     "critic_weight, style_weight, paired_weight or paired_feature_weight must be above 0, "
     "else the refiner learns nothing"),
)

#: a config (or one --set value) may expand to at most this much text: YAML aliases can
#: make a few hundred bytes stand for gigabytes once saved
MAX_CONFIG_CHARS = 64 * 1024
MAX_CONFIG_DEPTH = 32
MAX_CONFIG_FILE_BYTES = 1024 * 1024


def check_size(value: Any, source: str = "config") -> None:
    """Refuse a value whose expanded (alias-resolved) form is over :data:`MAX_CONFIG_CHARS`.

    Walks the value as serialisation would, so a shared sub-tree counts every time it is
    used, and stops as soon as the budget is spent (never expands a bomb).
    """
    budget = MAX_CONFIG_CHARS
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_CONFIG_DEPTH:
            raise FakesegError(f"{source}: nested deeper than {MAX_CONFIG_DEPTH} levels; "
                               "a config is a flat mapping of option: value")
        if isinstance(item, dict):
            budget -= 2 + sum(len(str(k)) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, (list, tuple)):
            budget -= 2 + len(item)
            stack.extend((v, depth + 1) for v in item)
        else:
            budget -= len(str(item)) + 1
        if budget < 0:
            raise FakesegError(f"{source}: expands to more than {MAX_CONFIG_CHARS // 1024} KiB "
                               "(YAML aliases?); write the values out plainly")


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


#: options that no longer do anything, dropped when an older run's files are read
RETIRED_OPTIONS: dict[str, frozenset[str]] = {
    "TrainConfig": frozenset({"cache_mb"}),  # pairs are read from the pixel store, not a cache
}


#: options added later, with the value under which a run behaves as runs made before them did
ADDED_OPTIONS: dict[str, dict[str, Any]] = {
    "TrainConfig": {"color_jitter": 0.0, "scale_jitter": 0.0, "dice_weight": 0.0,
                    "ema_decay": 0.0, "smooth_sigma": 0.0},
}


def upgraded(cls: type, payload: Mapping[str, Any]) -> dict[str, Any]:
    """An older run's ``payload`` as today's options of ``cls``: retired options dropped
    (:data:`RETIRED_OPTIONS`), options added since then at their old behaviour
    (:data:`ADDED_OPTIONS`), so a finished run still matches its config."""
    retired = RETIRED_OPTIONS.get(cls.__name__, frozenset())
    kept = {k: v for k, v in payload.items() if k not in retired}
    return {**ADDED_OPTIONS.get(cls.__name__, {}), **kept}


def from_dict(cls: type[T], payload: Any, *, source: str = "config",
              origins: Mapping[str, str] | None = None,
              names: Mapping[str, Sequence[str]] | None = None) -> T:
    """Build (and, for TrainConfig, validate) a config; errors name ``origins[key]`` or
    ``source``."""
    origins = origins or {}
    if not isinstance(payload, dict):
        raise FakesegError(f"{source}: expected a mapping of option: value, got "
                           f"{type(payload).__name__}")
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    payload = upgraded(cls, payload)
    unknown = sorted((key for key in payload if key not in fields), key=str)
    if unknown:
        key = unknown[0]
        hint = did_you_mean(str(key), fields)
        more = f" and {len(unknown) - 1} more" if len(unknown) > 1 else ""
        raise FakesegError(f"{origins.get(key, source)}: unknown option '{key}'{hint}{more}; "
                           f"see fakeseg.config.{cls.__name__} for the options")
    config = cls(**payload)
    if isinstance(config, TrainConfig | ClassifierConfig | EnhanceConfig):
        config.validate(origins, source, names)
    return config


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from a file; every problem (folder, encoding, syntax, size) is one line."""
    path = Path(path)
    try:
        if path.is_dir():
            raise FakesegError(f"{printable(path)}: is a folder, not a YAML file; "
                               "pass the config file")
        if path.stat().st_size > MAX_CONFIG_FILE_BYTES:
            raise FakesegError(f"{printable(path)}: {path.stat().st_size:,} bytes is too large "
                               "for a config; pass the YAML options file")
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError as exc:
        raise FakesegError(f"{printable(path)}: config file not found; check the path") from exc
    except PermissionError as exc:
        raise FakesegError(f"{printable(path)}: permission denied; make it readable") from exc
    except UnicodeDecodeError as exc:
        raise FakesegError(f"{printable(path)}: not UTF-8 text; save the config as UTF-8")\
            from exc
    except OSError as exc:
        raise FakesegError(f"{printable(path)}: cannot read ({exc.strerror}); check the path")\
            from exc
    payload = _parse_yaml(text, str(path)) or {}
    if not isinstance(payload, dict):
        raise FakesegError(f"{printable(path)}: expected a mapping of option: value at the top "
                           "level")
    check_size(payload, str(path))
    return payload


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise FakesegError(f"{source}: not valid YAML ({problem}{at}); fix the syntax or "
                           "quote the value") from None


def parse_overrides(items: list[str], origins: dict[str, str] | None = None) -> dict[str, Any]:
    """``["lr=0.01", "layers=[a, b]"]`` → ``{"lr": 0.01, "layers": ["a", "b"]}`` (YAML values).

    ``origins`` (if given) receives ``key → "--set ITEM"`` for error messages.
    """
    result: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise FakesegError(f"--set {printable(item)}: must look like key=value "
                               "(e.g. steps=200)")
        key, raw = item.split("=", 1)
        key = key.strip().replace("-", "_")
        source = f"--set {printable(item)}"
        value = _parse_yaml(raw, source)
        check_size(value, source)
        result[key] = value
        if origins is not None:
            origins[key] = source
    return result


def train_config(config_file: str | Path | None = None, overrides: list[str] | None = None,
                 options: Mapping[str, Any] | None = None,
                 names: Mapping[str, Sequence[str]] | None = None,
                 base: str | Path | None = None) -> TrainConfig:
    """Defaults (or the ``base`` run config a resume continues) ← the ``--config`` file ←
    ``--set`` overrides ← option flags, validated once (``names``: see
    :meth:`TrainConfig.validate`); an error names where the bad value came from."""
    return build_config(TrainConfig, config_file, overrides, options, names, base)


def build_config(cls: type[T], config_file: str | Path | None = None,
                 overrides: list[str] | None = None, options: Mapping[str, Any] | None = None,
                 names: Mapping[str, Sequence[str]] | None = None,
                 base: str | Path | None = None) -> T:
    """:func:`train_config` for any config dataclass ``cls`` (e.g. :class:`EnhanceConfig`)."""
    values = to_dict(cls())
    origins: dict[str, str] = {}
    if base is not None:
        stored = load_yaml(base)
        values.update(stored)
        origins.update(dict.fromkeys(stored, printable(base)))
    if config_file:
        loaded = load_yaml(config_file)
        values.update(loaded)
        origins.update(dict.fromkeys(loaded, printable(config_file)))
    values.update(parse_overrides(list(overrides or []), origins))
    for key, value in (options or {}).items():
        if value is not None:
            values[key] = value
            origins[key] = "--" + key.replace("_", "-")
    return from_dict(cls, values, origins=origins, names=names)


def versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape results."""
    import numpy
    import torch
    import torchvision

    from fakeseg import __version__

    found = {
        "fakeseg": __version__, "python": sys.version.split()[0],
        "platform": platform.platform(), "torch": torch.__version__,
        "torchvision": torchvision.__version__, "numpy": numpy.__version__,
    }
    try:
        import segmentation_models_pytorch as smp

        found["segmentation_models_pytorch"] = smp.__version__
    except Exception:  # pragma: no cover - smp is a dependency
        pass
    return found
