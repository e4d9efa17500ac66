"""Spectral scorer: per-image features of the noise residual's log-spectrum, the quantity whose
class means ``fakeseg fingerprint`` subtracts, fed to a standardised logistic regression.

Per window (native resolution, ``detection.common``): luminance on the 0–255 scale minus its
3×3 median (the noise residual, where generator traces live), a Hann window, the 2-D FFT and
``log(|F| + EPS)`` (``spectral.fingerprint.log_magnitude``). Features:

* the azimuthal profile (``spectral.fingerprint.radial_profile``) resampled to ``bins`` radii
  from 0 to 0.5 cycles/pixel, so images of any size share one feature layout;
* the prominence of the log-spectrum at the frequencies that 2× and 4× upsampling leave peaks
  at (0.5, 0.25 and their combinations in cycles/pixel): value − median of its 5×5
  neighbourhood;
* the log-variance of the residual.

Window features are averaged over the image's windows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy import ndimage

from fakeseg.detection.common import (
    MAX_TILES,
    NATIVE_TILE,
    FeatureScorer,
    native_tiles,
    read_rgb,
)
from fakeseg.io import LUMA_WEIGHTS
from fakeseg.progress import progress_bar
from fakeseg.spectral.fingerprint import log_magnitude, radial_profile

#: (fy, fx) in cycles/pixel where upsampling by 2 or 4 leaves periodic peaks.
UPSAMPLING_FREQUENCIES: tuple[tuple[float, float], ...] = (
    (0.0, 0.5), (0.5, 0.0), (0.5, 0.5), (0.0, 0.25), (0.25, 0.0), (0.25, 0.25),
    (0.25, 0.5), (0.5, 0.25))
MIN_SIDE = 32


def _peak_prominence(log_spec: np.ndarray, fy: float, fx: float) -> float:
    height, width = log_spec.shape
    row = (height // 2 + round(fy * height)) % height
    col = (width // 2 + round(fx * width)) % width
    rows = [(row + d) % height for d in range(-2, 3)]
    cols = [(col + d) % width for d in range(-2, 3)]
    return float(log_spec[row, col] - np.median(log_spec[np.ix_(rows, cols)]))


def window_features(window: np.ndarray, bins: int) -> np.ndarray:
    """Spectral features of one (H, W, 3) [0, 1] window (see the module docstring)."""
    luma = window[..., :3].astype(np.float64) @ np.asarray(LUMA_WEIGHTS) * 255.0
    residual = luma - ndimage.median_filter(luma, size=3, mode="reflect")
    taper = np.outer(np.hanning(residual.shape[0]), np.hanning(residual.shape[1]))
    log_spec = log_magnitude(np.fft.fftshift(np.fft.fft2(residual * taper)))
    freqs, profile = radial_profile(log_spec, transform="fft")
    valid = np.isfinite(profile)
    resampled = np.interp(np.linspace(0.0, 0.5, bins), freqs[valid], profile[valid])
    peaks = [_peak_prominence(log_spec, fy, fx) for fy, fx in UPSAMPLING_FREQUENCIES]
    return np.concatenate([resampled, peaks, [np.log(residual.var() + 1e-6)]])


def spectral_features(paths: Sequence[str | Path], *, bins: int = 48, tile: int = NATIVE_TILE,
                      progress: bool = False) -> np.ndarray:
    rows = []
    for path in progress_bar(paths, desc="spectra", unit="img", enabled=progress):
        windows = native_tiles(read_rgb(path, MIN_SIDE), tile, MAX_TILES)
        rows.append(np.mean([window_features(w, bins) for w in windows], axis=0))
    return np.stack(rows) if rows else np.zeros((0, bins + len(UPSAMPLING_FREQUENCIES) + 1))


class SpectralScorer(FeatureScorer):
    family = "spectral"
    defaults: ClassVar[dict[str, Any]] = {"bins": 48, "C": 0.1, "tile": NATIVE_TILE, "seed": 0}

    @classmethod
    def features(cls, paths: Sequence[str | Path], options: Mapping[str, Any], *,
                 progress: bool = False) -> np.ndarray:
        return spectral_features(paths, bins=int(options["bins"]), tile=int(options["tile"]),
                                 progress=progress)

    def describe(self) -> str:
        return (f"{self.method}: logistic regression on residual log-spectrum profile "
                f"({self.options['bins']} radii) and upsampling-peak prominences")
