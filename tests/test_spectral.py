"""Generator fingerprints and fingerprint-removal attacks on tiny generated image sets."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.fft
from scipy import ndimage

from fakeseg.errors import FakesegError
from fakeseg.io import read_image, write_image
from fakeseg.spectral import (
    DEFAULT_T,
    EPS,
    apply_fpa,
    apply_msa,
    compute_fingerprint,
    defingerprint,
    fit_fpa,
    fit_msa,
    radial_profile,
    save_fingerprint_outputs,
    spectral_peaks,
)
from fakeseg.spectral.fingerprint import crops

SIZE = 64
N = 8
#: Output of a stride-2 "transposed convolution" with uneven phases: every 2×2 output block is
#: one input pixel times these gains. Its Fourier series has energy at (0, 0.5), (0.5, 0) and
#: (0.5, 0.5) cycles/pixel (gains 0.04, 0.02, 0.02 of the image mean).
PHASE_GAINS = np.array([[1.08, 0.96], [1.00, 0.96]])
CHECKERBOARD = {(0.5, 0.5), (0.0, 0.5), (0.5, 0.0)}


def _smooth(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random smooth RGB image in [0.25, 0.75] (no clipping anywhere downstream)."""
    noise = ndimage.gaussian_filter(rng.standard_normal((size, size)), 2.0, mode="wrap")
    noise = noise / (np.abs(noise).max() + 1e-9)
    tint = rng.uniform(-0.05, 0.05, size=3)
    return np.clip(0.5 + 0.2 * noise[:, :, None] + tint, 0.0, 1.0)


def _upsampled(rng: np.random.Generator, size: int) -> np.ndarray:
    half = _smooth(rng, size // 2)
    up = np.repeat(np.repeat(half, 2, axis=0), 2, axis=1)
    return up * np.tile(PHASE_GAINS, (size // 2, size // 2))[:, :, None]


def _write_set(folder: Path, images: list[np.ndarray]) -> list[Path]:
    return [write_image(folder / f"img_{i:02d}.png", image) for i, image in enumerate(images)]


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    root = tmp_path_factory.mktemp("spectral")
    rng = np.random.default_rng(0)
    return {
        "real": _write_set(root / "real", [_smooth(rng, SIZE) for _ in range(N)]),
        "synthetic": _write_set(root / "synthetic", [_upsampled(rng, SIZE) for _ in range(N)]),
        "large": _write_set(root / "large", [_smooth(rng, 2 * SIZE + 2) for _ in range(3)]),
    }


def _batch_fingerprint(real: list[np.ndarray], synthetic: list[np.ndarray]) -> np.ndarray:
    """Reference: stack every (3, S, S) 0–255 crop, transform in one go, no streaming."""
    def mean_log(chws: list[np.ndarray]) -> np.ndarray:
        stack = np.stack(chws)
        luminance = np.tensordot(stack, [0.299, 0.587, 0.114], axes=([1], [0]))[:, None]
        rgby = np.concatenate([stack, luminance], axis=1)
        spec = np.fft.fftshift(np.fft.fft2(rgby, axes=(-2, -1)), axes=(-2, -1))
        return np.log(np.abs(spec) + EPS).mean(axis=0)

    return mean_log(synthetic) - mean_log(real)


# --------------------------------------------------------------------------- fingerprints


def test_checkerboard_peaks_at_nyquist(sets: dict[str, list[Path]]) -> None:
    fp = compute_fingerprint(sets["real"], sets["synthetic"], size=SIZE, progress=False)
    top = fp.peaks(3)
    assert {(p.fy, p.fx) for p in top} == CHECKERBOARD
    for peak in top:
        assert peak.magnitude > 1.0 and fp.is_significant(peak)
        assert fp.luminance[peak.row, peak.col] == pytest.approx(peak.magnitude)
    assert fp.energy > fp.energy_null


def test_checkerboard_peaks_dct(sets: dict[str, list[Path]]) -> None:
    fp = compute_fingerprint(sets["real"], sets["synthetic"], size=SIZE, transform="dct",
                             progress=False)
    assert fp.transform == "dct" and fp.per_channel.shape == (3, SIZE, SIZE)
    top = fp.peaks(3)
    assert len(top) == 3
    for peak in top:  # DCT index N-1 is (N-1)/(2N) cycles/pixel, just below Nyquist
        assert max(peak.fy, peak.fx) >= (SIZE - 2) / (2 * SIZE)
        assert 0 <= peak.fy <= 0.5 and 0 <= peak.fx <= 0.5


def test_fingerprint_of_a_set_against_itself_is_zero(sets: dict[str, list[Path]]) -> None:
    fp = compute_fingerprint(sets["real"], sets["real"], size=SIZE, progress=False)
    assert np.abs(fp.per_channel).max() < 1e-12 and np.abs(fp.luminance).max() < 1e-12
    assert fp.energy < 1e-12 and fp.energy_null is not None and fp.energy_null > 0
    assert fp.peaks() == []


def test_two_real_like_sets_show_no_significant_peak(sets: dict[str, list[Path]],
                                                    tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    other = _write_set(tmp_path, [_smooth(rng, SIZE) for _ in range(N)])
    fp = compute_fingerprint(sets["real"], other, size=SIZE, progress=False)
    assert fp.z_threshold is not None and fp.peaks()
    assert not any(fp.is_significant(peak) for peak in fp.peaks())
    assert fp.energy < 2 * fp.energy_null  # type: ignore[operator]


@pytest.mark.parametrize("crop", ["center", "tiles"])
def test_streaming_equals_batch(sets: dict[str, list[Path]], crop: str) -> None:
    real, synthetic = sets["large"], sets["synthetic"]
    fp = compute_fingerprint(real, synthetic, size=SIZE, crop=crop, progress=False, workers=3)
    crops_of = [[c for p in paths for c in crops(read_image(p), SIZE, crop)]  # type: ignore[arg-type]
                for paths in (real, synthetic)]
    expected = _batch_fingerprint(*crops_of)
    np.testing.assert_allclose(fp.per_channel, expected[:3], atol=1e-9)
    np.testing.assert_allclose(fp.luminance, expected[3], atol=1e-9)
    assert (fp.n_real, fp.n_synthetic) == (3, N)
    assert fp.n_real_crops == (3 if crop == "center" else 3 * 4)
    single = compute_fingerprint(real, synthetic, size=SIZE, crop=crop, progress=False,
                                 workers=1)
    np.testing.assert_array_equal(single.luminance, fp.luminance)


def test_crop_offsets_are_centred() -> None:
    image = np.arange(5 * 7 * 3, dtype=np.float64).reshape(5, 7, 3) / 255.0
    (centre,) = crops(image, 3, "center")
    np.testing.assert_allclose(centre, np.moveaxis(image[1:4, 2:5], 2, 0) * 255.0)
    tiles = crops(image, 2, "tiles")
    assert len(tiles) == 2 * 3
    np.testing.assert_allclose(tiles[0], np.moveaxis(image[0:2, 0:2], 2, 0) * 255.0)


def test_fft_and_dct_outputs_record_the_transform(sets: dict[str, list[Path]],
                                                  tmp_path: Path) -> None:
    for transform, label in (("fft", "FFT (fftshift)"), ("dct", "DCT-II ortho")):
        fp = compute_fingerprint(sets["real"], sets["synthetic"], size=SIZE,
                                 transform=transform, progress=False)  # type: ignore[arg-type]
        paths = save_fingerprint_outputs(fp, tmp_path / transform)
        assert all(path.is_file() and path.stat().st_size > 0 for path in paths.values())
        summary = json.loads(paths["json"].read_text())
        assert summary["transform"] == transform and summary["transform_label"] == label
        assert summary["n_real"] == N and summary["crop"] == "center"
        assert summary["energy"] == pytest.approx(fp.energy)
        assert np.load(paths["npy"]).shape == (SIZE, SIZE)
        rows = list(csv.DictReader(paths["peaks_csv"].open()))
        assert len(rows) == len(summary["peaks"]) > 0 and set(rows[0]) >= {"fy", "fx", "z"}
        assert not list((tmp_path / transform).glob(".*.tmp*"))  # atomic writes left no debris


def test_image_smaller_than_size_names_the_file(sets: dict[str, list[Path]],
                                                tmp_path: Path) -> None:
    small = write_image(tmp_path / "tiny_one.png", np.full((32, 40, 3), 0.5))
    with pytest.raises(FakesegError, match=r"tiny_one\.png.*smaller.*--size"):
        compute_fingerprint([*sets["real"], small], sets["synthetic"], size=SIZE,
                            progress=False)
    with pytest.raises(FakesegError, match=r"tiny_one\.png"):
        defingerprint("msa", sets["real"], sets["synthetic"], [small], tmp_path / "out",
                      size=SIZE, progress=False)


def test_unreadable_image_in_a_fit_set_is_skipped(sets: dict[str, list[Path]],
                                                  tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"definitely not a png")
    fp = compute_fingerprint([*sets["real"], broken], sets["synthetic"], size=SIZE,
                             progress=False)
    assert fp.n_real == N and [s.input for s in fp.skipped] == [str(broken)]


# --------------------------------------------------------------------------- analysis


def test_radial_profile_of_known_images() -> None:
    freqs, profile = radial_profile(np.full((64, 64), 3.0))
    assert freqs[0] == 0 and freqs[-1] == pytest.approx(0.5) and len(freqs) == 33
    np.testing.assert_allclose(profile, 3.0)

    x = np.arange(64)
    stripes = np.cos(2 * np.pi * 0.25 * x)[None, :] * np.ones((64, 1))
    power = np.abs(np.fft.fftshift(np.fft.fft2(stripes))) ** 2
    freqs, profile = radial_profile(power)
    assert freqs[int(np.argmax(profile))] == pytest.approx(0.25)

    dct_freqs, dct_profile = radial_profile(np.full((64, 64), 1.0), transform="dct")
    assert dct_freqs[1] == pytest.approx(1 / 128) and dct_freqs[-1] == pytest.approx(0.5)
    np.testing.assert_allclose(dct_profile, 1.0)


def test_peaks_report_a_conjugate_pair_once() -> None:
    fp2d = np.zeros((64, 64))
    for row, col in ((32 + 16, 32 + 8), (32 - 16, 32 - 8)):  # (±0.25, ±0.125)
        fp2d[row, col] = 2.0
    fp2d[32, 32] = 9.0  # DC is excluded
    peaks = spectral_peaks(fp2d, k=5)
    assert [(p.fy, p.fx, p.magnitude) for p in peaks] == [(0.25, 0.125, 2.0)]
    assert peaks[0].frequency == pytest.approx(np.hypot(0.25, 0.125))


# --------------------------------------------------------------------------- attacks


def _dct(image: np.ndarray) -> np.ndarray:
    return scipy.fft.dctn(np.moveaxis(image, 2, 0) * 255.0, axes=(-2, -1), norm="ortho")


def test_msa_moves_the_mean_spectrum_to_the_real_mean(sets: dict[str, list[Path]]) -> None:
    F = fit_msa(sets["real"], sets["synthetic"], size=SIZE, progress=False)
    real = [read_image(p).astype(np.float64) for p in sets["real"]]
    synthetic = [read_image(p).astype(np.float64) for p in sets["synthetic"]]
    np.testing.assert_allclose(F, np.mean([_dct(x) for x in synthetic], axis=0)
                               - np.mean([_dct(x) for x in real], axis=0), atol=1e-9)
    attacked = [apply_msa(x, F, 1.0) for x in synthetic]
    assert min(a.min() for a in attacked) > 0 and max(a.max() for a in attacked) < 1  # no clip
    np.testing.assert_allclose(np.mean([_dct(a) for a in attacked], axis=0),
                               np.mean([_dct(x) for x in real], axis=0), atol=1e-9)


def test_fpa_filter_and_identity_at_k0(sets: dict[str, list[Path]]) -> None:
    F = fit_fpa(sets["real"], sets["synthetic"], size=SIZE, t=DEFAULT_T, progress=False)
    assert F.shape == (3, SIZE, SIZE) and F.max() == pytest.approx(1.0)
    assert np.all((F == 0) | (F >= DEFAULT_T)) and (F == 0).any()
    image = read_image(sets["synthetic"][0])
    np.testing.assert_allclose(apply_fpa(image, F, 0.0), image, atol=1e-9)
    assert not np.allclose(apply_fpa(image, F, 1.0), image, atol=1e-3)


def test_attack_centre_crops_larger_images(sets: dict[str, list[Path]]) -> None:
    F = fit_msa(sets["real"], sets["synthetic"], size=SIZE, progress=False)
    large = read_image(sets["large"][0])
    out = apply_msa(large, F, 0.0)
    offset = (large.shape[0] - SIZE) // 2
    np.testing.assert_allclose(out, large[offset:offset + SIZE, offset:offset + SIZE], atol=1e-9)
    with pytest.raises(FakesegError, match="smaller than the crop size"):
        apply_msa(large[:32], F, 1.0)


@pytest.mark.parametrize("method", ["msa", "fpa"])
def test_defingerprint_reports_psnr_energy_and_skips_corrupt(
        sets: dict[str, list[Path]], tmp_path: Path, method: str) -> None:
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    apply_to = [*sets["synthetic"][:4], corrupt]
    result = defingerprint(method, sets["real"], sets["synthetic"], apply_to,  # type: ignore[arg-type]
                           tmp_path / "out", size=SIZE, progress=False)
    written = sorted(p.name for p in (tmp_path / "out" / "images").iterdir())
    assert written == [p.with_suffix(".png").name for p in sets["synthetic"][:4]]
    assert [s["input"] for s in result["skipped"]] == [str(corrupt)]
    assert result["n_attacked"] == 4
    saved = json.loads((tmp_path / "out" / "attack.json").read_text())
    assert saved["method"] == method and saved["k"] == 1.0
    assert saved["t"] == (DEFAULT_T if method == "fpa" else None)
    assert np.isfinite(saved["mean_psnr_db"]) and saved["mean_psnr_db"] > 20
    assert all(np.isfinite(item["psnr_db"]) for item in saved["images"])
    before, after = saved["fingerprint"]["before"], saved["fingerprint"]["after"]
    assert before["n_images"] == after["n_images"] == 4
    if method == "msa":  # the checkerboard is a mean-spectrum feature: MSA removes most of it
        assert after["energy"] < before["energy"]
    assert np.load(tmp_path / "out" / "filter.npy").shape == (3, SIZE, SIZE)


def test_defingerprint_defaults_to_the_synthetic_set(sets: dict[str, list[Path]],
                                                     tmp_path: Path) -> None:
    result = defingerprint("fpa", sets["real"], sets["synthetic"], None, tmp_path, k=0.0,
                           size=SIZE, progress=False)
    assert result["n_attacked"] == N
    assert result["mean_psnr_db"] is None and result["n_identical"] == N  # k=0: identity
    with pytest.raises(FakesegError, match="unknown attack"):
        defingerprint("blur", sets["real"], sets["synthetic"], None, tmp_path,  # type: ignore[arg-type]
                      size=SIZE, progress=False)
