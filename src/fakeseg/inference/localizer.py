"""The user-facing model: load a trained run, predict heat maps for images of any size.

``Localizer.load(run).predict(image)`` gives a :class:`HeatMap`; ``fakeseg.load(run)`` is the
same. Any registered segmenter works (FakeSegment or a baseline).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from fakeseg.device import resolve_device
from fakeseg.errors import FakesegError
from fakeseg.inference.backends import (
    BACKENDS,
    Backend,
    ExportResult,
    OnnxBackend,
    TorchBackend,
    export_onnx,
    read_onnx,
)
from fakeseg.io import ImageInput
from fakeseg.models.base import Segmenter, pad_and_run, smooth_probabilities
from fakeseg.models.checkpoint import (
    check_threshold,
    load_checkpoint,
    load_into,
    save_checkpoint,
    segmenter_config,
)
from fakeseg.models.registry import build_model
from fakeseg.numbers import at_or_above

T = TypeVar("T")

MIN_SIDE = 8
#: Image-level decision from a heat map (the MediaEval seed's Task B rule): an image is called
#: synthetic when at least this share of its pixels is flagged. A documented guess, not fitted.
DECISION_COVERAGE = 0.05


def tile_windows(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of overlapping windows that cover ``length``."""
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = [*range(0, length - tile, step), length - tile]
    return sorted(set(starts))


@dataclass(repr=False)
class HeatMap:
    """A per-pixel probability of being unreal, plus image-level summaries.

    ``score`` is the fraction of pixels whose probability is ≥ ``threshold`` (the share of the
    image that looks unreal); ``max`` is the highest pixel probability and ``topk_mean`` the mean
    of the top 1 % of pixels.
    """

    probability: np.ndarray  # float32 (H, W) in [0, 1]
    threshold: float

    @property
    def mask(self) -> np.ndarray:
        """Pixels at or above the threshold, compared exactly (as the regions are)."""
        return at_or_above(self.probability, self.threshold)

    @property
    def score(self) -> float:
        return float(self.mask.mean())

    @property
    def max(self) -> float:
        return float(self.probability.max())

    @property
    def topk_mean(self) -> float:
        flat = self.probability.ravel()
        k = max(1, round(0.01 * flat.size))
        return float(np.partition(flat, flat.size - k)[flat.size - k:].mean())

    def __repr__(self) -> str:
        height, width = self.probability.shape
        return (f"HeatMap({width}x{height}, score={self.score:.3f}, max={self.max:.3f}, "
                f"threshold={self.threshold:.3f})")

    def summary(self) -> dict[str, float]:
        return {"score": self.score, "max": self.max, "topk_mean": self.topk_mean,
                "threshold": self.threshold}


class Localizer:
    """A trained localisation model: ``Localizer.load(run).predict(image) -> HeatMap``.

    Wraps any registered segmenter (FakeSegment or a baseline) with its checkpoint's
    threshold; predicts any image size (padding, and tiling above ``tile`` pixels).
    """

    def __init__(self, net: Segmenter | None, meta: dict[str, Any],
                 device: torch.device | str = "cpu", *, backend: Backend | None = None,
                 optimize: bool = True) -> None:
        """``net`` runs on the torch backend (``optimize=False``: as it is, without the
        inference rewrites); ``backend`` replaces it (e.g. ONNX Runtime, where ``net`` may be
        None)."""
        self.device = torch.device(device)
        if net is not None:
            net = net.eval().to(self.device)
        if backend is None:
            if net is None:
                raise ValueError("Localizer needs a network or a backend")
            backend = TorchBackend(net, self.device, optimize=optimize)
        self._net = net
        self.backend: Backend = backend
        self.meta = meta
        self.threshold = float(meta.get("threshold", 0.5))
        #: Gaussian σ (pixels) on each probability map, as in training's validation, where the
        #: threshold was chosen (the config's ``smooth_sigma``; 0 for models made before it)
        self.smooth_sigma = model_smooth_sigma(meta)
        #: flip test-time augmentation: each map is the mean of the image's and its mirror's
        #: (mirrored back); twice the time (CV on vistas: mean Dice +0.008, IoU +0.012; a gain on
        #: every fold)
        self.flip_tta = False

    @classmethod
    def load(cls, path: str | Path, *, device: str = "auto",
             backend: str | None = None) -> Localizer:
        """Load a trained model.

        ``path`` is a run folder from ``fakeseg train`` (its ``best/`` checkpoint is used), a
        checkpoint folder (``best/``, ``last/``), its ``model.safetensors``, or an ONNX file
        from ``fakeseg export``. ``device`` is ``auto`` (CUDA when available), ``cpu`` or
        ``cuda[:N]`` (the torch backend). ``backend`` is ``torch`` or ``onnx`` (None: onnx for
        an ONNX file, else torch); ``onnx`` on a checkpoint uses its ``model.onnx`` when that
        was exported from these weights, else exports in memory (seconds). The network is
        rebuilt from the checkpoint's recorded config, so no backbone weight file is needed.
        Every failure (missing, corrupt, another kind of checkpoint) is a one-line error.
        """
        if backend is not None and backend not in BACKENDS:
            raise FakesegError(f"unknown backend '{backend}'; choose one of "
                               + ", ".join(BACKENDS))
        if Path(path).suffix.lower() == ".onnx":
            if backend == "torch":
                raise FakesegError(f"{path}: an ONNX file runs on the onnx backend; pass its "
                                   "run folder for the torch backend")
            exported = read_onnx(path)
            return cls(None, _checked_meta(exported.meta, path), "cpu",
                       backend=OnnxBackend(exported.model, exported.multiple, str(path)))
        state, meta, folder = load_checkpoint(path)
        if meta.get("kind") != "segmenter":
            raise FakesegError(f"{folder}: a '{meta.get('kind')}' checkpoint, not a "
                               "segmentation model; use the matching command")
        meta = _checked_meta(meta, folder / "model.json")
        # the checkpoint carries the extractor's weights, so no weight file is needed here
        net = build_model(meta["config"], weights="random")
        load_into(net, state, folder / "model.safetensors")
        if net.feature_extractor is not None:
            net.feature_extractor.weights_tag = str(meta.get("weights_tag", "unknown"))
        if backend == "onnx":
            return cls(net, meta, "cpu", backend=_onnx_for(net, meta, folder))
        return cls(net, meta, resolve_device(device))

    @property
    def net(self) -> Segmenter:
        """The PyTorch network as trained. The torch backend runs an optimised copy made when
        the Localizer was built: build a new Localizer after changing these weights."""
        if self._net is None:
            raise FakesegError("this model was loaded from an ONNX file; load its run folder "
                               "for the PyTorch network")
        return self._net

    def save(self, folder: str | Path) -> Path:
        return save_checkpoint(folder, self.net.state_dict(), self.meta)

    def export_onnx(self, out: str | Path) -> ExportResult:
        """Write the network as an ONNX graph (with this model's metadata), checked against
        PyTorch on a random image; see :mod:`fakeseg.inference.backends`."""
        return export_onnx(self.net, self.meta, out)

    @torch.inference_mode()
    def predict_tensor(self, image: torch.Tensor, *, tile: int = 1024, overlap: int = 128,
                       flip_tta: bool | None = None) -> torch.Tensor:
        """(B, 3, H, W) → probabilities (B, 1, H, W); images larger than ``tile`` are tiled.
        ``flip_tta`` (None: :attr:`flip_tta`) averages each window's map with its mirror's."""
        flip = self.flip_tta if flip_tta is None else flip_tta
        height, width = image.shape[-2:]
        if min(height, width) < MIN_SIDE:
            raise FakesegError(f"image is {width}x{height}; the model needs at least "
                               f"{MIN_SIDE}x{MIN_SIDE} pixels")
        if not torch.isfinite(image).all():
            raise FakesegError("the image contains NaN or infinite values; fix the image first")
        if max(height, width) <= tile:
            probs = self._probabilities(image, flip)
        else:
            probs = self._tiled_probabilities(image, flip, tile, overlap)
        # once, on the whole map (never per tile): as at validation, where the threshold was set
        return _checked(smooth_probabilities(probs, self.smooth_sigma))

    def _tiled_probabilities(self, image: torch.Tensor, flip: bool, tile: int,
                             overlap: int) -> torch.Tensor:
        """:meth:`_probabilities` of overlapping ``tile``-pixel windows, blended by a ramp."""
        height, width = image.shape[-2:]
        total = torch.zeros((image.shape[0], 1, height, width))
        count = torch.zeros((1, 1, height, width))
        ramp = _tile_weight(min(tile, height), min(tile, width), overlap)
        for top in tile_windows(height, tile, overlap):
            for left in tile_windows(width, tile, overlap):
                window = image[..., top:top + tile, left:left + tile]
                probs = self._probabilities(window, flip)
                h, w = probs.shape[-2:]
                total[..., top:top + h, left:left + w] += probs * ramp[..., :h, :w]
                count[..., top:top + h, left:left + w] += ramp[..., :h, :w]
        return total / count.clamp_min(1e-6)

    def _probabilities(self, image: torch.Tensor, flip: bool) -> torch.Tensor:
        """Sigmoid of the backend's logits, padded to its multiple: one forward pass (with
        ``flip``, two: the mean with the mirror image's map, mirrored back)."""
        probs = torch.sigmoid(pad_and_run(self.backend, image, self.backend.multiple))
        if not flip:
            return probs
        mirrored = pad_and_run(self.backend, image.flip(-1), self.backend.multiple)
        return 0.5 * (probs + torch.sigmoid(mirrored).flip(-1))

    def predict(self, image: ImageInput) -> HeatMap:
        """One image → :class:`HeatMap`.

        ``image`` may be a path, a PIL image, a NumPy array (H, W[, C]) of uint8, uint16 or
        float in [0, 1], or a torch tensor (C, H, W) / (1, C, H, W); every form is converted
        exactly as the file reader converts a file, so all give the same map.
        """
        return self.predict_batch([image])[0]

    def predict_batch(self, images: Sequence[ImageInput], *, batch_size: int = 4
                      ) -> list[HeatMap]:
        """Several images (any forms :meth:`predict` accepts, any sizes) → one HeatMap each.

        Consecutive images of the same size run through the network together, ``batch_size``
        at a time.
        """
        from fakeseg.io import to_rgb_float

        arrays = [to_rgb_float(image, name=_describe(image, i)) for i, image in enumerate(images)]
        heats: list[HeatMap] = []
        for group in same_shape_batches(arrays, batch_size, key=lambda a: a.shape):
            batch = torch.stack([torch.from_numpy(a).permute(2, 0, 1) for a in group])
            heats.extend(HeatMap(p[0].numpy(), self.threshold) for p in self.predict_tensor(batch))
        return heats


def export_run(path: str | Path, onnx: str | Path | None = None) -> ExportResult:
    """``fakeseg export``: a run's checkpoint as a checked ONNX graph, written to ``onnx``
    (default: ``model.onnx`` in the checkpoint folder, where ``backend="onnx"`` finds it)."""
    from fakeseg.inference.backends import ONNX_FILE
    from fakeseg.models.checkpoint import resolve_checkpoint

    out = Path(onnx) if onnx is not None else resolve_checkpoint(path) / ONNX_FILE
    return Localizer.load(path, device="cpu").export_onnx(out)


def same_shape_batches(items: Iterable[T], batch_size: int,
                       key: Callable[[T], Hashable]) -> Iterator[list[T]]:
    """Consecutive items of equal ``key`` (an image shape), at most ``batch_size`` per batch;
    items are consumed lazily, so a stream of images is never held in memory whole."""
    batch: list[T] = []
    for item in items:
        if batch and (len(batch) >= batch_size or key(batch[0]) != key(item)):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def _describe(image: object, index: int) -> str:
    return str(image) if isinstance(image, (str, Path)) else f"image {index}"


def _checked_meta(meta: dict[str, Any], source: str | Path) -> dict[str, Any]:
    """A segmenter's metadata (a checkpoint's ``model.json`` or an ONNX file's) with its config,
    layers, scales and threshold checked (types, ranges): one-line errors naming ``source``."""
    return {**meta, "config": segmenter_config(meta, source),
            "threshold": check_threshold(meta.get("threshold", 0.5), source)}


def model_smooth_sigma(meta: dict[str, Any]) -> float:
    """The config's ``smooth_sigma`` (0 when absent: models made before it), checked."""
    config = meta.get("config")
    value = config.get("smooth_sigma", 0.0) if isinstance(config, dict) else 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and value >= 0):
        raise FakesegError(f"the model's smooth_sigma {value!r} is not a number ≥ 0; its "
                           "metadata is damaged: export or retrain it")
    return float(value)


def _checked(probabilities: torch.Tensor) -> torch.Tensor:
    """Non-finite output is an error, never a score."""
    if not torch.isfinite(probabilities).all():
        raise FakesegError("the model produced NaN or infinite probabilities; its checkpoint is "
                           "corrupt or was trained into divergence: retrain or restore it")
    return probabilities


def _tile_weight(height: int, width: int, overlap: int) -> torch.Tensor:
    """Blending weights that fall off linearly over ``overlap`` pixels at tile borders."""
    def ramp(n: int) -> torch.Tensor:
        pos = torch.arange(n, dtype=torch.float32)
        edge = torch.minimum(pos + 1, n - pos)
        return (edge / max(overlap, 1)).clamp(max=1.0)

    return (ramp(height)[:, None] * ramp(width)[None, :])[None, None]




def _onnx_for(net: Segmenter, meta: dict[str, Any], folder: Path) -> OnnxBackend:
    """The checkpoint's ``model.onnx`` when it was exported from these weights, else a graph
    exported in memory now."""
    from fakeseg.inference.backends import ONNX_FILE, to_onnx, weights_digest
    from fakeseg.progress import say

    saved = folder / ONNX_FILE
    if saved.is_file():
        exported = read_onnx(saved)
        if exported.weights_sha256 == weights_digest(net.state_dict()):
            return OnnxBackend(exported.model, exported.multiple, str(saved))
        say(f"fakeseg: {saved} was exported from other weights; exporting again in memory")
    else:
        say(f"fakeseg: exporting {folder} to ONNX in memory (save it once with "
            f"'fakeseg export {folder}')")
    exported = to_onnx(net, meta)
    return OnnxBackend(exported.model, exported.multiple, f"{folder} (exported)")
