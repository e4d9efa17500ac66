"""Composites: labels are 0 where M = 0; masks cover what they promise; deterministic; the
training sampler's scale and colour jitter."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fakeseg.config import TrainConfig
from fakeseg.data.composites import (
    blob_mask,
    classwise_mask,
    feather,
    label_from,
    make_composite,
    rectangle_mask,
)
from fakeseg.data.pairs import LoadedPair
from fakeseg.errors import FakesegError
from fakeseg.training.sampler import _jitter_colors, sample_composite


@pytest.mark.parametrize("maker", [rectangle_mask, blob_mask])
def test_masks_cover_roughly_the_requested_share(maker) -> None:
    rng = np.random.default_rng(0)
    shares = [maker(64, 96, rng, (0.2, 0.6)).mean() for _ in range(30)]
    assert 0.1 < np.mean(shares) < 0.7 and min(shares) > 0


def test_classwise_flips_whole_classes() -> None:
    label = np.repeat(np.arange(4), 16).reshape(8, 8)
    mask = classwise_mask(label, np.random.default_rng(1))
    for cls in range(4):
        assert len(np.unique(mask[label == cls])) == 1
    assert 0 < mask.mean() < 1


@pytest.mark.parametrize("mode", ["mask", "heatmap", "hybrid"])
def test_label_is_zero_where_mask_is_zero(mode: str) -> None:
    rng = np.random.default_rng(2)
    mask = rng.random((16, 16)) > 0.5
    heat = rng.random((16, 16)).astype(np.float32)
    label = label_from(mask, heat, mode)
    assert np.all(label[~mask] == 0) and label.max() <= 1
    assert np.all(label[mask] > 0) or mode == "heatmap"


def test_composite_mixes_sources_and_is_deterministic() -> None:
    real = np.zeros((32, 32, 3), np.float32)
    synthetic = np.ones((32, 32, 3), np.float32)
    a = make_composite(real, synthetic, np.random.default_rng(5), kind="rectangles",
                       blend_sigma=0)
    b = make_composite(real, synthetic, np.random.default_rng(5), kind="rectangles",
                       blend_sigma=0)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.image[..., 0] > 0.5, a.mask)
    soft = make_composite(real, synthetic, np.random.default_rng(5), kind="rectangles",
                          blend_sigma=2)
    assert ((soft.image > 0.01) & (soft.image < 0.99)).any()  # feathered seams
    pure = make_composite(real, synthetic, np.random.default_rng(0), kind="pure_real")
    assert pure.mask.sum() == 0
    with pytest.raises(FakesegError, match="unknown"):
        make_composite(real, synthetic, np.random.default_rng(0), kind="stars")


def test_reencoding_treats_both_sources_alike() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((32, 32, 3)).astype(np.float32)
    comp = make_composite(image, image, rng, kind="blobs", reencode_quality=70)
    assert not np.allclose(comp.image, image)  # JPEG changed it
    assert feather(comp.mask, 0).dtype == np.float32


def test_pair_mask_limits_the_ground_truth_to_where_the_pair_differs() -> None:
    real = np.zeros((32, 32, 3), np.float32)
    synthetic = real.copy()
    differs = np.zeros((32, 32), bool)
    differs[:, :16] = True
    synthetic[differs] = 1.0
    comp = make_composite(real, synthetic, np.random.default_rng(3), kind="blobs",
                          blend_sigma=0, pair_mask=differs)
    assert comp.mask.any() and not comp.mask[:, 16:].any()
    pure = make_composite(real, synthetic, np.random.default_rng(3), kind="pure_synthetic",
                          pair_mask=differs)
    np.testing.assert_array_equal(pure.mask, differs)


def _gradient_pair(size: int = 256) -> LoadedPair:
    """A synthetic side whose red channel is x / width, and a pair mask of its left half."""
    ramp = np.broadcast_to(np.linspace(0, 1, size, dtype=np.float32), (size, size))
    synthetic = np.stack([ramp, np.zeros_like(ramp), np.zeros_like(ramp)], axis=-1)
    mask = np.zeros((size, size), bool)
    mask[:, : size // 2] = True
    return LoadedPair("p", np.zeros_like(synthetic), synthetic, None, mask)


def test_scale_jitter_resizes_windows_of_both_sizes_and_keeps_labels_aligned() -> None:
    config = TrainConfig(crop_size=64, scale_jitter=1.0, p_pure_real=0.0, p_pure_synthetic=1.0,
                         p_reencode=0.0)
    pair, slopes = _gradient_pair(), []
    for seed in range(40):
        comp, label = sample_composite(pair, None, np.random.default_rng(seed), config)
        assert comp.image.shape == (64, 64, 3) and label.shape == (64, 64)
        row = comp.image[32, :, 0]
        if comp.image[32, 0, 0] > row[-1]:  # flipped
            row = row[::-1]
        slopes.append((row[-8] - row[8]) / (64 - 16) * 255)  # window side ÷ crop side
        edge = comp.mask[32] != comp.mask[32, 0]
        if edge.any():  # the mask's edge sits where the ramp crosses the pair mask's edge
            assert abs(float(comp.image[32, int(np.argmax(edge)), 0]) - 0.5) < 2 * slopes[-1] / 255
    assert min(slopes) < 0.8 and max(slopes) > 1.25  # windows smaller and larger than 64
    assert max(slopes) < 2.05 and min(slopes) > 0.48  # within [1/2, 2]


def test_color_jitter_changes_both_sides_alike() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((16, 16, 3)).astype(np.float32)
    image[0, 0] = 0.4  # a grey pixel
    real, synthetic = _jitter_colors((image, image.copy()), np.random.default_rng(1), 0.5)
    np.testing.assert_array_equal(real, synthetic)
    assert not np.allclose(real, image) and real.min() >= 0 and real.max() <= 1
    np.testing.assert_allclose(real[0, 0], real[0, 0, 0], atol=1e-6)  # greys stay grey
    config = TrainConfig(crop_size=64, color_jitter=0.5, p_pure_real=1.0, p_reencode=0.0)
    plain = dataclasses.replace(config, color_jitter=0.0)
    pair = _gradient_pair()
    jittered = sample_composite(pair, None, np.random.default_rng(2), config)[0].image
    assert not np.allclose(jittered, sample_composite(pair, None, np.random.default_rng(2),
                                                      plain)[0].image)
