"""Composites: labels are 0 where M = 0; masks cover what they promise; deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from fakeseg.data.composites import (
    blob_mask,
    classwise_mask,
    feather,
    label_from,
    make_composite,
    rectangle_mask,
)
from fakeseg.errors import FakesegError


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
