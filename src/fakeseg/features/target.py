"""The target heat map: D_l = mean_c |F_l(R) − F_l(S)| per tapped layer, fused and normalised.

Per-layer maps are stored on disk at their native stride as float16 (:class:`TargetStore`,
keyed by the image files, the backbone and its weights), then upsampled, scaled by a robust
per-layer scale fitted in a streaming pass over the training pairs and fused with configurable
weights.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fakeseg.data.pairs import Pair, load_pair
from fakeseg.data.store import ArrayStore, files_key
from fakeseg.faults import kill_point
from fakeseg.io import write_json, write_npy
from fakeseg.progress import progress_bar


def to_batch(image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(H, W, 3) float image → (1, 3, H, W) tensor."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].to(device)


@torch.no_grad()
def discrepancy_maps(extractor: torch.nn.Module, real: torch.Tensor,
                     synthetic: torch.Tensor) -> dict[str, torch.Tensor]:
    """mean_c |F_l(R) − F_l(S)| for each tapped layer l, shape (B, 1, h_l, w_l).

    The same module (same weights) embeds both images: the paper's weight-shared SSDs.
    """
    both = extractor(torch.cat([real, synthetic], dim=0))
    n = real.shape[0]
    return {name: (feats[:n] - feats[n:]).abs().mean(dim=1, keepdim=True).float()
            for name, feats in both.items()}


def fuse(maps: Mapping[str, torch.Tensor], size: tuple[int, int], *,
         scales: Mapping[str, float] | None = None,
         weights: Mapping[str, float] | None = None) -> torch.Tensor:
    """Upsample each layer's map to ``size``, divide by its scale, take the weighted mean.

    With scales the result is clipped to [0, 1]; without, it is the raw fused discrepancy.
    """
    total: torch.Tensor | None = None
    weight_sum = 0.0
    for name, layer_map in maps.items():
        weight = 1.0 if weights is None else float(weights.get(name, 0.0))
        if weight == 0.0:
            continue
        up = F.interpolate(layer_map, size=size, mode="bilinear", align_corners=False)
        if scales is not None:
            up = up / max(float(scales[name]), 1e-12)
        total = up * weight if total is None else total + up * weight
        weight_sum += weight
    if total is None:
        raise ValueError("no layer has a non-zero weight")
    fused = total / weight_sum
    return fused.clamp(0.0, 1.0) if scales is not None else fused


class PercentileSketch:
    """Percentiles of a stream of non-negative values from a fixed-bin log histogram.

    Bins are log-spaced from :attr:`LOW` to :attr:`HIGH` (``BINS`` of them: each spans a
    0.12 % step), with one bin below (zeros included) and one above; memory is constant
    whatever the number of values. A percentile is the geometric centre of the bin that holds
    its rank, within 0.06 % of the value's bin edges (plus the spacing of the data itself
    near that rank; ``tests/test_targets.py`` checks it against ``np.percentile``).
    """

    LOW, HIGH, BINS = 1e-8, 1e4, 24_000

    def __init__(self) -> None:
        self.counts = np.zeros(self.BINS + 2, dtype=np.int64)
        self.max = 0.0
        self._log_low = math.log(self.LOW)
        self._width = (math.log(self.HIGH) - self._log_low) / self.BINS

    def add(self, values: np.ndarray | torch.Tensor) -> None:
        array = np.asarray(values, dtype=np.float64).ravel()
        if array.size == 0:
            return
        self.max = max(self.max, float(array.max()))
        index = np.zeros(array.shape, dtype=np.int64)
        positive = array >= self.LOW
        index[positive] = np.minimum(
            (np.log(array[positive]) - self._log_low) // self._width + 1, self.BINS + 1)
        self.counts += np.bincount(index, minlength=self.BINS + 2)

    def percentile(self, q: float) -> float:
        total = int(self.counts.sum())
        if total == 0:
            return 0.0
        rank = q / 100.0 * (total - 1)  # the order statistic np.percentile interpolates at
        index = int(np.searchsorted(np.cumsum(self.counts), math.floor(rank) + 1))
        if index == 0:
            return 0.0
        if index > self.BINS:
            return self.max
        return min(math.exp(self._log_low + (index - 0.5) * self._width), self.max)


def fit_scales(layer_maps: Iterable[Mapping[str, torch.Tensor | np.ndarray]],
               percentile: float = 99.0) -> dict[str, float]:
    """Robust per-layer scale: the ``percentile`` of the maps over the training pairs, fitted
    in one streaming pass (:class:`PercentileSketch`), so the maps need not fit in memory."""
    sketches: dict[str, PercentileSketch] = {}
    for maps in layer_maps:
        for name, values in maps.items():
            sketches.setdefault(name, PercentileSketch()).add(values)
    scales: dict[str, float] = {}
    for name, sketch in sketches.items():
        scale = sketch.percentile(percentile)
        scales[name] = scale if scale > 0 else sketch.max or 1.0
    return scales


def cache_key(real_path: Path, synthetic_path: Path, backbone: str, weights_tag: str,
              layers: Sequence[str], extra: str = "") -> str:
    return files_key([real_path, synthetic_path], backbone, weights_tag, ",".join(layers),
                     extra)


def weights_digest(module: torch.nn.Module) -> str:
    """A short hash of a module's parameters and buffers: which weights made a stored map."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()[:16]


class TargetStore(ArrayStore):
    """Per-layer discrepancy maps of each pair, float16 ``.npy`` files that load memory-mapped.

    ``ROOT/STEM.L<i>.npy`` holds layer i's map (h_i, w_i); ``ROOT/STEM.json`` (written last,
    atomically) records the key of the image files and backbone it was made from, so a pair is
    done exactly when its JSON exists with the expected key: a killed run redoes only the pair
    it was writing.
    """

    def put_maps(self, stem: str, key: str, maps: Mapping[str, torch.Tensor]) -> None:
        arrays = {f"L{i}": m.detach().float().cpu().numpy().reshape(m.shape[-2:])
                  .astype(np.float16) for i, m in enumerate(maps.values())}
        self.put(stem, key, arrays, layers=list(maps))

    def get(self, stem: str) -> dict[str, torch.Tensor]:
        """The stored maps as (1, 1, h, w) float32 tensors (read through a memory map)."""
        layers = json.loads(self.marker(stem).read_text())["layers"]
        stored = self.open(stem, [f"L{i}" for i in range(len(layers))])
        return {name: torch.from_numpy(np.array(stored[f"L{i}"], dtype=np.float32))[None, None]
                for i, name in enumerate(layers)}


def pair_layer_maps(extractor: torch.nn.Module, real: np.ndarray, synthetic: np.ndarray, *,
                    device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Per-layer discrepancy maps of one pair (1, 1, h_l, w_l) on the CPU."""
    return {name: m.cpu() for name, m in discrepancy_maps(
        extractor, to_batch(real, device), to_batch(synthetic, device)).items()}


class _PairImages(torch.utils.data.Dataset[tuple[str, torch.Tensor, torch.Tensor]]):
    """Pairs decoded to (3, H, W) float tensors (in DataLoader workers)."""

    def __init__(self, pairs: Sequence[Pair], allow_resize: bool) -> None:
        self.pairs, self.allow_resize = list(pairs), allow_resize

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[str, torch.Tensor, torch.Tensor]:
        pair = load_pair(self.pairs[index], allow_resize=self.allow_resize)
        return pair.stem, to_batch(pair.real)[0], to_batch(pair.synthetic)[0]


def compute_target_maps(extractor: torch.nn.Module, pairs: Sequence[Pair],
                        keys: Mapping[str, str], store: TargetStore, *,
                        device: torch.device | str = "cpu", batch_size: int = 2,
                        workers: int = 0, allow_resize: bool = False,
                        progress: bool = True) -> int:
    """Store the layer maps of every pair not done yet (``keys``: stem → cache key); pairs of
    one size go through the extractor ``batch_size`` at a time while workers decode the next.
    Returns how many pairs were computed (the others were already stored)."""
    todo = [p for p in pairs if not store.is_done(p.stem, keys[p.stem])]
    if not todo:
        return 0
    loader = torch.utils.data.DataLoader(
        _PairImages(todo, allow_resize), batch_size=batch_size, num_workers=workers,
        collate_fn=list, pin_memory=torch.device(device).type == "cuda")
    with progress_bar(total=len(pairs), initial=len(pairs) - len(todo), desc="target maps",
                      unit="pair", enabled=progress) as bar:
        for items in loader:
            for size in dict.fromkeys(real.shape for _, real, _ in items):  # same-size groups
                group = [item for item in items if item[1].shape == size]
                real = torch.stack([r for _, r, _ in group]).to(device, non_blocking=True)
                synthetic = torch.stack([s for _, _, s in group]).to(device, non_blocking=True)
                maps = discrepancy_maps(extractor, real, synthetic)
                for i, (stem, _, _) in enumerate(group):
                    store.put_maps(stem, keys[stem],
                                   {name: m[i:i + 1] for name, m in maps.items()})
                    kill_point("target_pair")
                    bar.update()
    return len(todo)


def heat_map(maps: Mapping[str, torch.Tensor], size: tuple[int, int], *,
             scales: Mapping[str, float] | None = None,
             weights: Mapping[str, float] | None = None) -> np.ndarray:
    """The fused (and, with scales, normalised) heat map of one pair as (H, W) float32."""
    return fuse(maps, size, scales=scales, weights=weights)[0, 0].numpy().astype(np.float32)


@dataclass
class PairTarget:
    """The raw target map |F(R) − F(S)| of one pair (:func:`pair_target`), in feature units:
    no training-set scale exists for a single pair."""

    stem: str
    real: Path
    synthetic: Path
    synthetic_image: np.ndarray  # (H, W, 3) float, what the overlay is drawn on
    raw: np.ndarray  # (H, W) fused map
    per_layer_mean: dict[str, float]
    backbone: str
    weights_tag: str
    layers: list[str]

    @property
    def display_scale(self) -> float:
        """The map's 99th percentile: the PNGs divide by it for display."""
        return float(np.percentile(self.raw, 99)) or 1.0

    def summary(self) -> dict[str, Any]:
        return {
            "real": str(self.real), "synthetic": str(self.synthetic), "backbone": self.backbone,
            "weights_tag": self.weights_tag, "layers": self.layers,
            "per_layer_mean": self.per_layer_mean, "raw_mean": float(self.raw.mean()),
            "raw_max": float(self.raw.max()), "display_scale_p99": self.display_scale,
        }


def pair_target(real: str | Path, synthetic: str | Path, *,
                backbone: str | None = None, weights: str = "auto",
                layers: Sequence[str] | None = None, allow_resize: bool = False,
                device: str = "cpu") -> PairTarget:
    """The raw target map |F(R) − F(S)| of one pair (``backbone`` None: the default one)."""
    from fakeseg.features import DEFAULT_BACKBONE, build_backbone

    backbone = backbone or DEFAULT_BACKBONE

    extractor = build_backbone(backbone, weights=weights, layers=layers).to(device)
    pair = load_pair(Pair(Path(synthetic).stem, Path(real), Path(synthetic)),
                     allow_resize=allow_resize)
    maps = pair_layer_maps(extractor, pair.real, pair.synthetic, device=device)
    return PairTarget(pair.stem, Path(real), Path(synthetic), pair.synthetic,
                      heat_map(maps, pair.synthetic.shape[:2]),
                      {k: float(v.mean()) for k, v in maps.items()}, backbone,
                      extractor.weights_tag, list(extractor.layers))


def save_pair_target(target: PairTarget, out: str | Path) -> dict[str, Path]:
    """``STEM_target.npy`` (raw), colour PNG and overlay (scaled for display), and JSON."""
    from fakeseg.config import versions
    from fakeseg.io import write_image
    from fakeseg.viz import colorize, overlay

    out, name, scaled = Path(out), target.stem, target.raw / target.display_scale
    files = {
        "raw_npy": write_npy(out / f"{name}_target.npy", target.raw),
        "heat_png": write_image(out / f"{name}_target.png", colorize(scaled)),
        "overlay": write_image(out / f"{name}_target_overlay.png",
                               overlay(target.synthetic_image, scaled)),
    }
    files["json"] = write_json(out / f"{name}_target.json", {
        **target.summary(), "files": {k: str(v) for k, v in files.items()},
        "versions": versions()})
    return files
