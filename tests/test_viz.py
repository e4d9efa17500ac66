"""viz's fast paths give exactly what the slow definitions give: colours, overlays, regions."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import colormaps
from scipy import ndimage

from fakeseg.inference.localizer import HeatMap
from fakeseg.viz import colorize, overlay, top_regions


def _edge_values(dtype: type) -> np.ndarray:
    rng = np.random.default_rng(0)
    edges = [0.0, 1.0, np.nextafter(1.0, 0.0), 0.5, 255 / 256, 1 / 256, -0.2, 1.7, np.nan]
    return np.concatenate([rng.random(4000), np.arange(257) / 256, edges]).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cmap", ["inferno", "magma"])
def test_colorize_is_the_colormap_itself(dtype: type, cmap: str) -> None:
    values = _edge_values(dtype).reshape(-1, 9)
    expected = colormaps[cmap](np.clip(values, 0.0, 1.0))[..., :3].astype(np.float32)
    got = colorize(values, cmap)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    scaled = colorize(values * 3 - 1, cmap, vmin=-1.0, vmax=2.0)  # the same after rescaling
    reference = colormaps[cmap](np.clip((values * 3 - 1 + 1) / 3.0, 0.0, 1.0))
    np.testing.assert_array_equal(scaled, reference[..., :3].astype(np.float32))


def test_overlay_is_the_blend_of_image_and_colours() -> None:
    rng = np.random.default_rng(1)
    heat = rng.random((30, 40)).astype(np.float32)
    image = rng.random((30, 40, 3)).astype(np.float32)
    alpha = (np.float32(0.7) * heat)[..., None]
    colours = colormaps["inferno"](heat)[..., :3].astype(np.float32)
    np.testing.assert_array_equal(overlay(image, heat), image + alpha * (colours - image))
    np.testing.assert_allclose(overlay(image, heat), (1 - alpha) * image + alpha * colours,
                               atol=1e-6)


def test_top_regions_compare_and_average_in_float64() -> None:
    rng = np.random.default_rng(2)
    heat = ndimage.gaussian_filter(rng.random((120, 160)), 4).astype(np.float32)
    heat = (heat - heat.min()) / (heat.max() - heat.min())
    threshold = float(np.float32(0.55)) - 1e-9  # float32(threshold) would round up past it
    heat[0, 0] = np.float32(0.55)  # flagged in float64, not in a float32 comparison
    labels, count = ndimage.label(heat.astype(np.float64) >= threshold)
    index = np.arange(1, count + 1)
    areas = ndimage.sum_labels(np.ones(heat.shape), labels, index)
    means = ndimage.mean(heat.astype(np.float64), labels, index)
    best = np.argsort(-(areas * means), kind="stable")[:3]
    regions = top_regions(heat, threshold)
    assert [r.area_px for r in regions] == [int(areas[i]) for i in best]
    assert [r.mean_score for r in regions] == [float(means[i]) for i in best]
    assert any(r.bbox[:2] == (0, 0) for r in top_regions(heat, threshold, k=count))


@pytest.mark.parametrize("threshold", [0.7, float(np.float32(0.55)) - 1e-9])
def test_heat_map_mask_score_and_regions_flag_the_same_pixels(threshold: float) -> None:
    """float32(0.7) is below 0.7 but NumPy rounds 0.7 to it: the score, the mask and the
    regions must still agree on the pixels at exactly that value."""
    probability = np.zeros((8, 8), np.float32)
    probability[2:4, 2:5] = np.float32(threshold)  # the float32 nearest the threshold
    probability[6, 6] = 0.9
    heat = HeatMap(probability, threshold)
    flagged = probability.astype(np.float64) >= threshold  # the exact rule
    np.testing.assert_array_equal(heat.mask, flagged)
    assert heat.score == flagged.mean()
    assert sum(r.area_px for r in top_regions(probability, threshold, k=10)) == flagged.sum()
