"""Small picture helpers shared by predict, featdiff and the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from fakeseg.io import atomic_path


def colorize(values: np.ndarray, cmap: str = "inferno", vmin: float = 0.0,
             vmax: float = 1.0) -> np.ndarray:
    """(H, W) values → (H, W, 3) float RGB through a matplotlib colormap."""
    scaled = np.clip((values - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0)
    return colormaps[cmap](scaled)[..., :3].astype(np.float32)


def overlay(image: np.ndarray, heat: np.ndarray, *, cmap: str = "inferno",
            strength: float = 0.7) -> np.ndarray:
    """Blend a [0, 1] heat map over an RGB image; cold pixels leave the image visible."""
    alpha = (strength * np.clip(heat, 0.0, 1.0))[..., None]
    return (1.0 - alpha) * image + alpha * colorize(heat, cmap)


def new_figure(width: float, height: float) -> Figure:
    """A bare Figure: renders with Agg, never touches pyplot's global state or backend."""
    return Figure(figsize=(width, height), layout="constrained")


def save_figure(figure: Figure, path: str | Path, **savefig_kwargs: Any) -> Path:
    """Write a figure as PNG atomically (dpi 110 unless given)."""
    savefig_kwargs.setdefault("dpi", 110)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", **savefig_kwargs)
    return Path(path)
