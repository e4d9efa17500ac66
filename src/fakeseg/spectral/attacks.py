"""Fingerprint-removal attacks of Wesselkamp et al. (2022), as tried by Wimmer et al.

Both act on the per-channel orthonormal 2-D DCT-II, D(x), of images on the 0–255 scale:

* Mean-Spectrum Attack (MSA): F = mean_fake(D) − mean_real(D); x' = idct(D(x) − k·F).
* Frequency-Peaks Attack (FPA): F = exp(mean_fake(log|D|) − mean_real(log|D|)), divided by its
  maximum (over all channels and coefficients), values below t set to 0;
  x' = idct(D(x) ⊙ (1 − clip(k·F, −1, 1))).

x' is clipped to [0, 255]. Filters are fitted on ``size``-pixel centre crops; an image larger
than the fitted size is centre-cropped to it before the attack (the output has the fitted
size), a smaller one raises. Fitting streams through the same machinery as the fingerprints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from skimage.metrics import peak_signal_noise_ratio

from fakeseg.errors import FakesegError, Skipped
from fakeseg.io import read_image, write_image, write_json, write_npy
from fakeseg.progress import progress_bar, warn
from fakeseg.spectral.fingerprint import (
    EPS,
    Fingerprint,
    Statistic,
    StreamResult,
    crops,
    fingerprint_from_streams,
    inverse_dct,
    log_magnitude,
    spectrum,
    stream_log_spectra,
    stream_statistics,
)

Method = Literal["msa", "fpa"]
#: Default FPA threshold. Wesselkamp et al. tuned t per GAN and dataset to 0.15–0.7 (their
#: README, at 50 dB PSNR) and use 0.3 in their example; 0.3 sits in that range and leaves the
#: coefficients where synthetic and real agree (normalised F ≈ exp(−max log ratio), often
#: 0.05–0.2) untouched, so the attack only damps the peaks.
DEFAULT_T = 0.3
_DCT, _LOG_DCT = "dct", "log_dct"


def _dct(chw: np.ndarray) -> np.ndarray:
    return spectrum(chw, "dct")


def _log_dct(chw: np.ndarray) -> np.ndarray:
    return log_magnitude(spectrum(chw, "dct"))


_FIT_STATISTIC: dict[str, tuple[str, Statistic]] = {
    "msa": (_DCT, _dct),
    "fpa": (_LOG_DCT, _log_dct),
}


def _check_method(method: str) -> None:
    if method not in _FIT_STATISTIC:
        raise FakesegError(f"unknown attack '{method}'; use 'msa' or 'fpa'")


def _check_t(t: float) -> None:
    if not 0.0 <= t <= 1.0:
        raise FakesegError(f"threshold t must lie in [0, 1], got {t}")


def _filter(method: Method, real: StreamResult, synthetic: StreamResult, t: float) -> np.ndarray:
    """The attack's F from two fitted streams."""
    key = _FIT_STATISTIC[method][0]
    difference = synthetic.stats[key].mean - real.stats[key].mean
    if method == "msa":
        return difference
    peaks = np.exp(difference)
    peaks /= peaks.max()
    peaks[peaks < t] = 0.0
    return peaks


def _fit(method: Method, real: Sequence[str | Path], synthetic: Sequence[str | Path], size: int,
         t: float, progress: bool) -> np.ndarray:
    _check_method(method)
    _check_t(t)
    key, statistic = _FIT_STATISTIC[method]
    streams = [stream_statistics(paths, {key: statistic}, size=size, desc=desc,
                                 progress=progress)
               for paths, desc in ((real, "real"), (synthetic, "synthetic"))]
    real_stream, synthetic_stream = streams
    return _filter(method, real_stream, synthetic_stream, t)


def fit_msa(real: Sequence[str | Path], synthetic: Sequence[str | Path], size: int = 256, *,
            progress: bool = True) -> np.ndarray:
    """MSA filter F = mean_fake(D) − mean_real(D), shape (3, size, size)."""
    return _fit("msa", real, synthetic, size, 0.0, progress)


def fit_fpa(real: Sequence[str | Path], synthetic: Sequence[str | Path], size: int = 256,
            t: float = DEFAULT_T, *, progress: bool = True) -> np.ndarray:
    """FPA filter: exp of the mean log|D| difference, max-normalised, zero below ``t``."""
    return _fit("fpa", real, synthetic, size, t, progress)


def _prepare(image: np.ndarray, F: np.ndarray, source: str | Path) -> np.ndarray:
    if F.ndim != 3 or F.shape[0] != 3 or F.shape[1] != F.shape[2]:
        raise FakesegError(f"attack filter must have shape (3, S, S), got {F.shape}")
    return crops(image, F.shape[1], "center", source)[0]


def _to_image(chw: np.ndarray) -> np.ndarray:
    return np.moveaxis(np.clip(chw, 0.0, 255.0) / 255.0, 0, 2)


def apply_msa(image: np.ndarray, F: np.ndarray, k: float = 1.0, *,
              source: str | Path = "image") -> np.ndarray:
    """x' = idct(D(x) − k·F) on the centre crop of an (H, W, 3) [0, 1] image.

    Returns (S, S, 3) float64 in [0, 1] (clipped at 0 and 255 before scaling).
    """
    x = _prepare(image, F, source)
    return _to_image(inverse_dct(spectrum(x, "dct") - k * F))


def apply_fpa(image: np.ndarray, F: np.ndarray, k: float = 1.0, *,
              source: str | Path = "image") -> np.ndarray:
    """x' = idct(D(x) ⊙ (1 − clip(k·F, −1, 1))) on the centre crop; same I/O as apply_msa."""
    x = _prepare(image, F, source)
    return _to_image(inverse_dct(spectrum(x, "dct") * (1.0 - np.clip(k * F, -1.0, 1.0))))


_APPLY = {"msa": apply_msa, "fpa": apply_fpa}


def _energy(fp: Fingerprint) -> dict[str, Any]:
    return {"energy": fp.energy, "band_energy": fp.band_energy, "energy_null": fp.energy_null,
            "n_real": fp.n_real, "n_images": fp.n_synthetic}


def defingerprint(
    method: Method,
    real: Sequence[str | Path],
    synthetic: Sequence[str | Path],
    apply_to: Sequence[str | Path] | None,
    out_dir: str | Path,
    *,
    k: float = 1.0,
    t: float = DEFAULT_T,
    size: int = 256,
    progress: bool = True,
) -> dict[str, Any]:
    """Fit ``method`` on (real, synthetic), attack ``apply_to`` (None: the synthetic set).

    Writes ``out_dir/images/<stem>.png`` (size×size centre crops, 8-bit), ``filter.npy`` (F)
    and ``attack.json``, and returns the JSON payload: per-image and mean PSNR (dB) of each
    written image against its cropped input (None when identical), and the FFT fingerprint
    energy of real vs ``apply_to`` before and real vs attacked after, with its chance level.
    An unreadable image is reported and skipped; one smaller than ``size`` raises FakesegError
    naming it (pick a smaller ``size``).
    """
    _check_method(method)
    _check_t(t)
    if not math.isfinite(k):
        raise FakesegError(f"attack strength k must be a finite number, got {k}")
    targets = [Path(p) for p in (synthetic if apply_to is None else apply_to)]
    stems = [p.stem for p in targets]
    duplicates = sorted({s for s in stems if stems.count(s) > 1})
    if duplicates:
        raise FakesegError(
            f"several inputs share the file stem(s) {', '.join(duplicates[:5])}; outputs are "
            "named by stem, so rename them or attack them in separate runs"
        )
    out = Path(out_dir)
    key, statistic = _FIT_STATISTIC[method]
    common: dict[str, Any] = {"size": size, "transform": "fft", "crop": "center",
                              "progress": progress}
    real_stream = stream_log_spectra(real, desc="real", extra={key: statistic}, **common)
    synthetic_stream = stream_log_spectra(synthetic, desc="synthetic", extra={key: statistic},
                                          **common)
    F = _filter(method, real_stream, synthetic_stream, t)
    write_npy(out / "filter.npy", F.astype(np.float32))
    before_stream = (synthetic_stream if apply_to is None
                     else stream_log_spectra(targets, desc="apply_to (before)", **common))
    before = fingerprint_from_streams(real_stream, before_stream, transform="fft",
                                      crop="center", size=size)

    images: list[dict[str, Any]] = []
    skipped: list[Skipped] = []
    written: list[Path] = []
    for path in progress_bar(targets, desc=f"{method.upper()} attack", unit="img",
                             enabled=progress):
        try:
            image = read_image(path)
            attacked = _APPLY[method](image, F, k, source=path)
            original = crops(image, size, "center", path)[0]
        except FakesegError as exc:
            skipped.append(Skipped(str(path), str(exc)))
            warn(f"fakeseg: skipped: {skipped[-1]}")
            continue
        target = write_image(out / "images" / f"{path.stem}.png", attacked)
        stored = crops(read_image(target), size, "center", target)[0]  # what a user gets
        identical = np.array_equal(original, stored)
        psnr = None if identical else float(peak_signal_noise_ratio(original, stored,
                                                                    data_range=255.0))
        images.append({"input": str(path), "output": str(target), "psnr_db": psnr})
        written.append(target)
    if not written:
        raise FakesegError(f"no image could be attacked (first problem: {skipped[0]})")

    after = fingerprint_from_streams(
        real_stream, stream_log_spectra(written, desc="attacked (after)", **common),
        transform="fft", crop="center", size=size)
    finite = [item["psnr_db"] for item in images if item["psnr_db"] is not None]
    payload: dict[str, Any] = {
        "method": method,
        "definition": ("MSA: x' = idct(D(x) - k*F), F = mean_fake(D) - mean_real(D)" if method
                       == "msa" else "FPA: x' = idct(D(x) * (1 - clip(k*F, -1, 1))), F = "
                       "exp(mean_fake(log|D|) - mean_real(log|D|)) / max, zero below t"),
        "domain": "per-channel orthonormal 2-D DCT-II of 0-255 images, centre crops",
        "k": k,
        "t": t if method == "fpa" else None,
        "size": size,
        "eps": EPS,
        "n_fit_real": real_stream.n_images,
        "n_fit_synthetic": synthetic_stream.n_images,
        "n_attacked": len(written),
        "mean_psnr_db": float(np.mean(finite)) if finite else None,
        "n_identical": len(images) - len(finite),
        "psnr_note": ("PSNR of each written 8-bit image against its cropped input, data range "
                      "255; null where they are identical"),
        "fingerprint": {
            "transform": "FFT (fftshift), luminance, centre crops",
            "before": _energy(before),
            "after": _energy(after),
            "energy_change": after.energy - before.energy,
            "note": ("energy = mean |FP| of real vs these images, excluding DC (0 = same mean "
                     "log-spectrum); energy_null = the energy sampling noise alone gives at "
                     "these set sizes, so an energy near it means no detectable fingerprint"),
        },
        "images": images,
        "skipped": [s.to_json() for s in skipped],
        "fit_skipped": [s.to_json() for s in (*real_stream.skipped, *synthetic_stream.skipped)],
        "filter": str(out / "filter.npy"),
    }
    payload["attack_json"] = str(write_json(out / "attack.json", payload))
    return payload
