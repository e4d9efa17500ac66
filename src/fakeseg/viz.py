"""Small picture helpers shared by predict, featdiff and the report: colours, overlays, flagged
regions, figures."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from fakeseg.io import atomic_path, to_uint8
from fakeseg.numbers import at_or_above

#: box colours of the flagged regions, in rank order (overlays and the report)
REGION_COLORS = ((0, 229, 255), (124, 252, 0), (255, 79, 216))


@functools.cache
def _colour_table(cmap: str) -> tuple[np.ndarray, int]:
    """A colormap's own lookup table as float32 RGB: its N entries, then its "bad" colour."""
    colormap = colormaps[cmap]
    table = np.vstack([colormap(np.arange(colormap.N)), colormap(np.nan)])
    return table[:, :3].astype(np.float32), colormap.N


def colorize(values: np.ndarray, cmap: str = "inferno", vmin: float = 0.0,
             vmax: float = 1.0) -> np.ndarray:
    """(H, W) values → (H, W, 3) float32 RGB through a matplotlib colormap.

    The same colours as calling the colormap (it indexes its table with ⌊value × N⌋, 1.0 → the
    last entry, NaN → its "bad" colour), looked up directly in float32: no float64 RGBA copy.
    """
    values = np.asarray(values)
    if values.dtype.kind != "f" or (vmin, vmax) != (0.0, 1.0):  # (x - 0) / 1 is x
        values = (values - vmin) / max(vmax - vmin, 1e-12)
    position = np.clip(values, 0.0, 1.0)
    position *= _colour_table(cmap)[1]  # the colormap's own arithmetic, in the values' dtype
    return _look_up(position, cmap)


def _look_up(position: np.ndarray, cmap: str) -> np.ndarray:
    """Table entries at ⌊position⌋ (position in [0, N], or NaN for "bad")."""
    table, n = _colour_table(cmap)
    bad = np.isnan(position)
    index = np.where(bad, n, position).astype(np.int32) if bad.any() else position.astype(
        np.int32)
    np.minimum(index, n - 1, out=index, where=~bad)
    # each RGB row as one 12-byte item: one flat take instead of a 2-D one (about 2x faster)
    rows = np.ascontiguousarray(table).view(np.dtype((np.void, table.shape[1] * 4))).ravel()
    return np.take(rows, index).view(np.float32).reshape(*index.shape, table.shape[1])


def overlay(image: np.ndarray, heat: np.ndarray, *, cmap: str = "inferno",
            strength: float = 0.7) -> np.ndarray:
    """Blend a [0, 1] heat map over an RGB image; cold pixels leave the image visible."""
    alpha = np.clip(heat, 0.0, 1.0)
    alpha *= strength
    blend = colorize(heat, cmap)  # image + alpha · (colour − image), in place
    blend -= image
    blend *= alpha[..., None]
    blend += image
    return blend


def new_figure(width: float, height: float) -> Figure:
    """A bare Figure: renders with Agg, never touches pyplot's global state or backend."""
    return Figure(figsize=(width, height), layout="constrained")


def save_figure(figure: Figure, path: str | Path, **savefig_kwargs: Any) -> Path:
    """Write a figure as PNG atomically (dpi 110 unless given)."""
    savefig_kwargs.setdefault("dpi", 110)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", **savefig_kwargs)
    return Path(path)


@dataclass(frozen=True)
class Region:
    """A connected component of the thresholded heat map (bbox: x0, y0, x1, y1; end exclusive)."""

    area_px: int
    area_fraction: float
    mean_score: float
    bbox: tuple[int, int, int, int]

    @property
    def weight(self) -> float:
        return self.area_px * self.mean_score


def top_regions(heat: np.ndarray, threshold: float, k: int = 3) -> list[Region]:
    """The ``k`` components of ``heat >= threshold`` with the largest area × mean score
    (compared and averaged in float64)."""
    from scipy import ndimage

    heat = np.asarray(heat)
    flagged = at_or_above(heat, threshold)
    labels, count = ndimage.label(flagged)
    if count == 0:
        return []
    flat = labels[flagged]  # only the labelled pixels count
    areas = np.bincount(flat, minlength=count + 1)[1:].astype(np.float64)
    means = np.bincount(flat, weights=heat[flagged], minlength=count + 1)[1:] / areas
    order = np.argsort(-(areas * means), kind="stable")[:k]
    slices = ndimage.find_objects(labels)
    regions = []
    for i in order:
        rows, cols = slices[i]
        regions.append(Region(int(areas[i]), float(areas[i] / heat.size), float(means[i]),
                              (cols.start, rows.start, cols.stop, rows.stop)))
    return regions


def annotated_overlay(image: np.ndarray, heat: np.ndarray, threshold: float, *,
                      cmap: str = "inferno", max_boxes: int = 3) -> np.ndarray:
    """The heat-map overlay at the image's own resolution, with boxes round the ``max_boxes``
    largest flagged regions and, on the right, a colour bar marked with the threshold.

    Returns uint8 (H, W + bar, 3).
    """
    from PIL import Image, ImageDraw, ImageFont

    height, width = heat.shape
    base = Image.fromarray(to_uint8(overlay(image, heat, cmap=cmap), overwrite=True))
    draw = ImageDraw.Draw(base)
    line = max(1, round(min(height, width) / 200))
    for rank, region in enumerate(top_regions(heat, threshold, k=max_boxes)):
        x0, y0, x1, y1 = region.bbox
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=REGION_COLORS[rank % 3], width=line)
    font_px = max(10, min(48, round(height / 28)))
    font = ImageFont.load_default(size=font_px)
    bar_w = max(12, font_px)
    label_w = round(font_px * 3.2)
    pad = max(4, font_px // 2)
    canvas = Image.new("RGB", (width + pad + bar_w + label_w, height), (255, 255, 255))
    canvas.paste(base, (0, 0))
    top, bottom = pad + font_px // 2, height - pad - font_px // 2
    span = max(bottom - top, 2)
    ramp = np.linspace(1.0, 0.0, span, dtype=np.float32)[:, None].repeat(bar_w, axis=1)
    canvas.paste(Image.fromarray(to_uint8(colorize(ramp, cmap))), (width + pad, top))
    draw = ImageDraw.Draw(canvas)
    text_x = width + pad + bar_w + 3
    for value in (0.0, 0.5, 1.0):
        y = top + round((1.0 - value) * (span - 1))
        draw.text((text_x, y), f"{value:g}", fill=(0, 0, 0), font=font, anchor="lm")
    y = top + round((1.0 - min(max(threshold, 0.0), 1.0)) * (span - 1))
    draw.line((width + pad - 2, y, width + pad + bar_w + 1, y), fill=(0, 200, 255),
              width=max(2, line))
    if abs(threshold - 0.5) > 0.08 and threshold > 0.08 and threshold < 0.92:
        draw.text((text_x, y), f"t={threshold:.2f}", fill=(0, 120, 200), font=font, anchor="lm")
    return np.asarray(canvas)
