"""The target heat map: D_l = mean_c |F_l(R) − F_l(S)| per tapped layer, fused and normalised.

Per-layer maps are cached on disk at their native stride (keyed by the image files, the
backbone and its weights), then upsampled, scaled by a robust per-layer scale fitted on the
training pairs and fused with configurable weights.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fakeseg.io import atomic_path


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


def fit_scales(layer_maps: Sequence[Mapping[str, torch.Tensor]],
               percentile: float = 99.0) -> dict[str, float]:
    """Robust per-layer scale: the ``percentile`` of the maps over the training pairs."""
    scales: dict[str, float] = {}
    for name in layer_maps[0]:
        values = torch.cat([maps[name].flatten() for maps in layer_maps]).numpy()
        scale = float(np.percentile(values, percentile))
        scales[name] = scale if scale > 0 else float(values.max(initial=0.0)) or 1.0
    return scales


def cache_key(real_path: Path, synthetic_path: Path, backbone: str, weights_tag: str,
              layers: Sequence[str], extra: str = "") -> str:
    parts = [backbone, weights_tag, ",".join(layers), extra]
    for path in (real_path, synthetic_path):
        stat = path.stat()
        parts += [str(path.resolve()), str(stat.st_size), str(stat.st_mtime_ns)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


class TargetCache:
    """Per-layer discrepancy maps stored as ``.npz`` files under ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / f"{key}.npz"

    def get(self, key: str) -> dict[str, torch.Tensor] | None:
        path = self._path(key)
        if not path.exists():
            return None
        try:
            with np.load(path) as data:
                return {name: torch.from_numpy(data[name]) for name in json.loads(
                    str(data["__order__"]))}
        except Exception:  # a broken cache entry is recomputed, never fatal
            path.unlink(missing_ok=True)
            return None

    def put(self, key: str, maps: Mapping[str, torch.Tensor]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        arrays = {name: t.cpu().numpy().astype(np.float32) for name, t in maps.items()}
        with atomic_path(self._path(key)) as tmp, open(tmp, "wb") as handle:
            payload: dict[str, Any] = {"__order__": np.array(json.dumps(list(arrays))), **arrays}
            np.savez(handle, **payload)


def pair_layer_maps(extractor: torch.nn.Module, real: np.ndarray, synthetic: np.ndarray, *,
                    cache: TargetCache | None = None, key: str | None = None,
                    device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Per-layer discrepancy maps of one pair (1, 1, h_l, w_l), through the cache if given."""
    if cache is not None and key is not None:
        cached = cache.get(key)
        if cached is not None:
            return cached
    maps = {name: m.cpu() for name, m in discrepancy_maps(
        extractor, to_batch(real, device), to_batch(synthetic, device)).items()}
    if cache is not None and key is not None:
        cache.put(key, maps)
    return maps


def heat_map(maps: Mapping[str, torch.Tensor], size: tuple[int, int], *,
             scales: Mapping[str, float] | None = None,
             weights: Mapping[str, float] | None = None) -> np.ndarray:
    """The fused (and, with scales, normalised) heat map of one pair as (H, W) float32."""
    return fuse(maps, size, scales=scales, weights=weights)[0, 0].numpy().astype(np.float32)


def heatmap(real: str | Path, synthetic: str | Path, out: str | Path, *,
            backbone: str = "ssdlite_mobilenet_v2", weights: str = "auto",
            layers: Sequence[str] | None = None, allow_resize: bool = False,
            device: str = "cpu") -> dict[str, object]:
    """Write the raw target map |F(R) − F(S)| of one pair: ``.npy``, colour PNG, overlay, JSON.

    The raw map is in feature units (no training-set scale exists for a single pair); the PNGs
    are scaled by its 99th percentile for display, as the JSON records.
    """
    from fakeseg.config import versions
    from fakeseg.data.pairs import Pair, load_pair
    from fakeseg.features import build_backbone
    from fakeseg.io import write_image, write_json, write_npy
    from fakeseg.viz import colorize, overlay

    extractor = build_backbone(backbone, weights=weights, layers=layers).to(device)
    pair = load_pair(Pair(Path(synthetic).stem, Path(real), Path(synthetic)),
                     allow_resize=allow_resize)
    maps = pair_layer_maps(extractor, pair.real, pair.synthetic, device=device)
    raw = heat_map(maps, pair.synthetic.shape[:2])
    display_scale = float(np.percentile(raw, 99)) or 1.0
    out = Path(out)
    name = pair.stem
    files = {
        "raw_npy": write_npy(out / f"{name}_target.npy", raw),
        "heat_png": write_image(out / f"{name}_target.png", colorize(raw / display_scale)),
        "overlay": write_image(out / f"{name}_target_overlay.png",
                               overlay(pair.synthetic, raw / display_scale)),
    }
    summary = {
        "real": str(real), "synthetic": str(synthetic), "backbone": backbone,
        "weights_tag": extractor.weights_tag, "layers": list(extractor.layers),
        "per_layer_mean": {k: float(v.mean()) for k, v in maps.items()},
        "raw_mean": float(raw.mean()), "raw_max": float(raw.max()),
        "display_scale_p99": display_scale, "files": {k: str(v) for k, v in files.items()},
        "versions": versions(),
    }
    write_json(out / f"{name}_target.json", summary)
    return summary
