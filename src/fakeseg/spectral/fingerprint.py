"""Generator fingerprints: where in the spectrum synthetic images differ from real ones.

The fingerprint of a synthetic set S against a real set R (Wimmer et al., Eq. 1) is

    FP(R, S) = mean_i log(|T(S_i)| + EPS) − mean_i log(|T(R_i)| + EPS)

computed per channel (R, G, B) and on luminance Y = 0.299 R + 0.587 G + 0.114 B, on images
scaled to 0–255, where T is either the 2-D FFT with the zero frequency moved to the centre
(``np.fft.fft2`` + ``np.fft.fftshift``) or the orthonormal 2-D DCT-II (``scipy.fft.dctn(...,
norm="ortho")``, zero frequency at the top-left corner). Positive values are frequencies where
the synthetic images carry more energy than the real ones; a clean generator gives ~0.

Means are streamed (running sums), so memory stays flat in the number of images. The FFT
path transforms with ``scipy.fft.rfft2`` (the same pocketfft as ``np.fft``) and restores the
other half from the conjugate symmetry of real images; the result equals the magnitudes of
``fftshift(fft2(x))`` (the tests check this).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import numpy as np
import scipy.fft
from scipy import ndimage, stats

from fakeseg.errors import FakesegError, ImageReadError, Skipped
from fakeseg.io import LUMA_WEIGHTS, read_image, write_csv, write_json, write_npy
from fakeseg.progress import progress_bar, warn
from fakeseg.viz import new_figure, save_figure

Transform = Literal["fft", "dct"]
CropMode = Literal["center", "tiles"]
Statistic = Callable[[np.ndarray], np.ndarray]

#: Added to |T| before the log. Images are on the 0–255 scale, where 8-bit quantisation alone
#: leaves a spectral noise floor of ~0.29 per orthonormal DCT coefficient (~0.29·N per FFT
#: coefficient), so EPS only bounds log(0) for perfectly flat crops and never touches content.
EPS = 1e-3
CHANNEL_NAMES = ("R", "G", "B")
TRANSFORM_LABELS: dict[str, str] = {"fft": "FFT (fftshift)", "dct": "DCT-II ortho"}
#: Radial frequency bands in cycles/pixel: thirds of the Nyquist range (periods > 6 px, 3–6 px,
#: < 3 px). The corners of the 2-D spectrum (radius 0.5–0.71) count as "high".
BANDS: dict[str, tuple[float, float]] = {
    "low": (0.0, 1.0 / 6.0),
    "mid": (1.0 / 6.0, 1.0 / 3.0),
    "high": (1.0 / 3.0, math.inf),
}
ENERGY_DEFINITION = (
    "mean |FP| over all luminance coefficients except the zero frequency (DC), in natural-log "
    "units (0 = identical mean log-spectra); band energies restrict the mean to radial "
    "frequency bands in cycles/pixel"
)
#: Side of the median window that estimates the local background of a fingerprint for peaks.
PEAK_BACKGROUND_WINDOW = 9
_LOG_SPECTRUM = "log_spectrum"


# --------------------------------------------------------------------------- transforms


def _check_transform(transform: str) -> None:
    if transform not in TRANSFORM_LABELS:
        raise FakesegError(f"unknown transform '{transform}'; use 'fft' or 'dct'")


def crops(image: np.ndarray, size: int, mode: CropMode = "center",
          source: str | Path = "image") -> list[np.ndarray]:
    """Square crops of an (H, W, 3) [0, 1] image as (3, size, size) float64 on the 0–255 scale.

    ``center``: the one centred crop. ``tiles``: every non-overlapping tile of a grid centred in
    the image. Raises FakesegError naming ``source`` if the image is smaller than ``size``.
    """
    if mode not in ("center", "tiles"):
        raise FakesegError(f"unknown crop mode '{mode}'; use 'center' or 'tiles'")
    height, width = image.shape[:2]
    if height < size or width < size:
        raise FakesegError(
            f"{source}: image is {width}x{height}, smaller than the crop size {size}; "
            f"pass a smaller --size (at most {min(height, width)}) or remove the image"
        )
    rows, cols = (1, 1) if mode == "center" else (height // size, width // size)
    top, left = (height - rows * size) // 2, (width - cols * size) // 2
    chw = np.moveaxis(image, 2, 0)
    return [
        chw[:, top + i * size: top + (i + 1) * size, left + j * size: left + (j + 1) * size]
        .astype(np.float64) * 255.0
        for i in range(rows) for j in range(cols)
    ]


def spectrum(chw: np.ndarray, transform: Transform) -> np.ndarray:
    """Per-channel 2-D transform over the last two axes: shifted FFT (complex) or ortho DCT-II."""
    _check_transform(transform)
    if transform == "fft":
        return np.fft.fftshift(np.fft.fft2(chw, axes=(-2, -1)), axes=(-2, -1))
    return scipy.fft.dctn(chw, axes=(-2, -1), norm="ortho")


def inverse_dct(coeffs: np.ndarray) -> np.ndarray:
    """Inverse of ``spectrum(x, "dct")``."""
    return scipy.fft.idctn(coeffs, axes=(-2, -1), norm="ortho")


def log_magnitude(coeffs: np.ndarray) -> np.ndarray:
    """log(|c| + EPS)."""
    return np.log(np.abs(coeffs) + EPS)


def with_luminance(chw: np.ndarray) -> np.ndarray:
    """(3, ...) R, G, B → (4, ...) R, G, B, Y. Works on pixels and on (linear) transforms alike."""
    out = np.empty((4, *chw.shape[1:]), dtype=np.result_type(chw, np.float64))
    out[:3] = chw
    np.multiply(chw[0], LUMA_WEIGHTS[0], out=out[3])
    out[3] += LUMA_WEIGHTS[1] * chw[1]
    out[3] += LUMA_WEIGHTS[2] * chw[2]
    return out


def log_spectrum_statistic(transform: Transform) -> Statistic:
    """Per-crop statistic for fingerprints: log|T| of R, G, B, Y, shape (4, S, S) for the DCT.

    For the FFT only the non-redundant half (4, S, S//2 + 1) of the unshifted spectrum is
    returned; :func:`expand_half_spectrum` restores the full, shifted array from the mean.
    """
    _check_transform(transform)
    if transform == "fft":
        # scipy's pocketfft: the same transform as np.fft, faster for batched real input
        return lambda chw: log_magnitude(scipy.fft.rfft2(with_luminance(chw), axes=(-2, -1)))
    return lambda chw: log_magnitude(spectrum(with_luminance(chw), "dct"))


def expand_half_spectrum(half: np.ndarray, width: int) -> np.ndarray:
    """A function of |rfft2| of real images, (..., H, W//2+1) → full fftshifted (..., H, W).

    Uses |F(-u, -v)| = |F(u, v)|, which holds for the magnitudes of real-valued inputs.
    """
    height = half.shape[-2]
    full = np.empty((*half.shape[:-1], width), dtype=half.dtype)
    n_half = width // 2 + 1
    full[..., :n_half] = half
    if width > n_half:
        cols = np.arange(n_half, width)
        rows = (-np.arange(height)) % height
        full[..., cols] = half[..., rows, :][..., width - cols]
    return np.fft.fftshift(full, axes=(-2, -1))


def frequency_grid(shape: tuple[int, int], transform: Transform) -> tuple[np.ndarray, np.ndarray]:
    """(fy, fx) in cycles/pixel for every coefficient: signed for the shifted FFT, ≥ 0 for DCT."""
    _check_transform(transform)
    height, width = shape
    if transform == "fft":
        fy = np.fft.fftshift(np.fft.fftfreq(height))
        fx = np.fft.fftshift(np.fft.fftfreq(width))
    else:  # DCT-II basis k has cos(pi k (2n+1) / 2N): k / (2N) cycles per pixel
        fy = np.arange(height) / (2.0 * height)
        fx = np.arange(width) / (2.0 * width)
    return np.meshgrid(fy, fx, indexing="ij")


def _radius(shape: tuple[int, int], transform: Transform) -> np.ndarray:
    fy, fx = frequency_grid(shape, transform)
    return np.hypot(fy, fx)


# --------------------------------------------------------------------------- streaming means


class RunningMean:
    """Streaming mean and variance of equally shaped arrays: float64 running sums.

    Sums are shifted by the first sample, which keeps the variance free of cancellation
    (log-spectra are O(10) with variances O(1)).
    """

    def __init__(self) -> None:
        self.count = 0
        self._shift: np.ndarray | None = None
        self._sum: np.ndarray | None = None
        self._sum_sq: np.ndarray | None = None

    def add(self, value: np.ndarray) -> None:
        value = np.asarray(value, dtype=np.float64)
        if self._shift is None or self._sum is None or self._sum_sq is None:
            self._shift = value.copy()
            self._sum = np.zeros_like(value)
            self._sum_sq = np.zeros_like(value)
        elif value.shape != self._shift.shape:
            raise FakesegError(f"shape {value.shape} differs from {self._shift.shape}")
        else:
            delta = value - self._shift
            self._sum += delta
            delta *= delta
            self._sum_sq += delta
        self.count += 1

    @property
    def mean(self) -> np.ndarray:
        if self._shift is None or self._sum is None:
            raise FakesegError("no samples were added")
        return self._shift + self._sum / self.count

    @property
    def variance(self) -> np.ndarray:
        """Unbiased sample variance; NaN with fewer than two samples."""
        if self._sum is None or self._sum_sq is None or self.count < 2:
            return np.full_like(self.mean, np.nan)
        return (self._sum_sq - self._sum**2 / self.count) / (self.count - 1)


@dataclass
class StreamResult:
    """Per-statistic running means over the crops of one image set."""

    stats: dict[str, RunningMean]
    n_images: int
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def n_crops(self) -> int:
        return next(iter(self.stats.values())).count if self.stats else 0


_T = TypeVar("_T")
_R = TypeVar("_R")


def map_ordered(fn: Callable[[_T], _R], items: Iterable[_T], workers: int
                ) -> Iterator[tuple[_T, _R | Exception]]:
    """Apply ``fn`` in a thread pool, yielding (item, result or raised exception) in input order.

    At most ``2 * workers`` items are in flight, so memory stays bounded.
    """
    if workers <= 1:
        for item in items:
            try:
                yield item, fn(item)
            except Exception as exc:  # handed to the caller, which decides
                yield item, exc
        return
    pending: deque[tuple[_T, Future[_R]]] = deque()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for item in items:
            pending.append((item, pool.submit(fn, item)))
            if len(pending) >= 2 * workers:
                yield _resolve(*_split(pending.popleft()))
        while pending:
            yield _resolve(*_split(pending.popleft()))


def _split(entry: tuple[_T, Future[_R]]) -> tuple[_T, Future[_R | Exception]]:
    item, future = entry
    return item, cast("Future[_R | Exception]", future)


def _resolve(item: _T, future: Future[_R]) -> tuple[_T, _R | Exception]:
    try:
        return item, future.result()
    except Exception as exc:
        return item, exc


def default_workers() -> int:
    """Reader/transform threads: one fewer than the usable CPUs, at most 4 (1 on ≤ 2 CPUs)."""
    import os

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(4, (usable or 1) - 1))


def stream_statistics(
    paths: Sequence[str | Path],
    statistics: Mapping[str, Statistic],
    *,
    size: int,
    crop: CropMode = "center",
    desc: str = "images",
    progress: bool = True,
    workers: int | None = None,
) -> StreamResult:
    """Running means of ``statistics`` over every crop of every image in ``paths``.

    Each statistic maps a (3, size, size) 0–255 crop to an array. Unreadable images are logged
    and skipped (listed in the result); an image smaller than ``size`` raises, since it means
    the chosen size does not fit the data. Results do not depend on ``workers``.
    """
    if size < 2:
        raise FakesegError(f"--size must be at least 2, got {size}")
    if not paths:
        raise FakesegError(f"no images in the {desc} set; point it at a folder that holds images")
    accumulators = {name: RunningMean() for name in statistics}

    def per_image(path: str | Path) -> list[dict[str, np.ndarray]]:
        image = read_image(path)
        return [{name: fn(c) for name, fn in statistics.items()}
                for c in crops(image, size, crop, path)]

    n_images, skipped = 0, []
    results = map_ordered(per_image, paths, workers or default_workers())
    for path, result in progress_bar(results, total=len(paths), desc=desc, unit="img",
                             enabled=progress):
        if isinstance(result, Exception):
            if not isinstance(result, ImageReadError):
                raise result
            skipped.append(Skipped(str(path), str(result)))
            warn(f"fakeseg: skipped: {skipped[-1]}")
            continue
        for values in result:
            for name, value in values.items():
                accumulators[name].add(value)
        n_images += 1
    if n_images == 0:
        raise FakesegError(
            f"none of the {len(paths)} images in the {desc} set could be read "
            f"(first problem: {skipped[0]})"
        )
    return StreamResult(accumulators, n_images, skipped)


# --------------------------------------------------------------------------- fingerprint


@dataclass(frozen=True)
class Peak:
    """A local maximum of a fingerprint: array position, frequency and strength."""

    row: int
    col: int
    fy: float  # cycles/pixel; signed for the shifted FFT (in (-0.5, 0.5]), ≥ 0 for the DCT
    fx: float
    magnitude: float  # fingerprint value at the peak
    prominence: float  # value minus the local median background (the ranking key)
    #: magnitude / standard error of FP at this coefficient (None if unknown). Under "same
    #: distribution" z ~ N(0, 1); with ~S²/2 independent coefficients the largest |z| from
    #: chance alone is about 4.5 for S = 256, so trust peaks well above that.
    z: float | None = None

    @property
    def frequency(self) -> float:
        """Radial frequency in cycles/pixel."""
        return float(math.hypot(self.fy, self.fx))

    def to_json(self) -> dict[str, float | int | None]:
        return {"row": self.row, "col": self.col, "fy": self.fy, "fx": self.fx,
                "frequency": self.frequency, "magnitude": self.magnitude,
                "prominence": self.prominence, "z": self.z}


@dataclass
class Fingerprint:
    """FP(R, S) of a synthetic set against a real set, with the pieces needed to explain it."""

    per_channel: np.ndarray  # (3, size, size): FP of R, G, B
    luminance: np.ndarray  # (size, size): FP of Y
    mean_log_real: np.ndarray  # (size, size): mean log(|T| + EPS) of real Y
    mean_log_synthetic: np.ndarray  # (size, size): same for synthetic Y
    radial_freqs: np.ndarray  # cycles/pixel, 0..0.5
    radial_real: np.ndarray  # azimuthal mean of the mean log-power ln|T|² (= 2·mean_log), real Y
    radial_synthetic: np.ndarray  # same for synthetic Y
    n_real: int  # images
    n_synthetic: int
    n_real_crops: int  # crops that entered the means (= images for crop="center")
    n_synthetic_crops: int
    transform: Transform
    crop: CropMode
    size: int
    energy: float  # see ENERGY_DEFINITION
    band_energy: dict[str, float]
    #: Expected energy if both sets came from one distribution: mean over coefficients of
    #: E|N(0, var_r/n_r + var_s/n_s)| from the per-coefficient sample variances. None if a set
    #: has fewer than two crops. Tiles of one image are correlated, so with crop="tiles" this
    #: underestimates the chance level.
    energy_null: float | None
    #: (size, size) standard error of the luminance FP, sqrt(var_r/n_r + var_s/n_s) from the
    #: per-coefficient sample variances of log|T|; None if a set has fewer than two crops.
    stderr: np.ndarray | None = None
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def transform_label(self) -> str:
        return TRANSFORM_LABELS[self.transform]

    def peaks(self, k: int = 10, exclude_radius: int = 2) -> list[Peak]:
        return spectral_peaks(self.luminance, k, exclude_radius, transform=self.transform,
                              stderr=self.stderr)

    @property
    def z_threshold(self) -> float | None:
        """|z| a peak needs to beat chance at 5 % family-wise error.

        Bonferroni over the independent coefficients (size²/2 for the FFT, whose halves mirror
        each other; size² for the DCT), Student t with n_real + n_synthetic − 2 degrees of
        freedom (crops). None without a standard error. Optimistic for crop="tiles".
        """
        if self.stderr is None:
            return None
        independent = self.size**2 / (2 if self.transform == "fft" else 1)
        dof = max(self.n_real_crops + self.n_synthetic_crops - 2, 1)
        return float(stats.t.isf(0.05 / independent, dof))

    def is_significant(self, peak: Peak) -> bool:
        threshold = self.z_threshold
        return threshold is not None and peak.z is not None and peak.z > threshold

    def summary(self, k: int = 10) -> dict[str, Any]:
        """JSON-ready description (no arrays)."""
        return {
            "definition": "FP(R,S) = mean log(|T(S)|+eps) - mean log(|T(R)|+eps), 0-255 images",
            "transform": self.transform,
            "transform_label": self.transform_label,
            "eps": EPS,
            "crop": self.crop,
            "size": self.size,
            "n_real": self.n_real,
            "n_synthetic": self.n_synthetic,
            "n_real_crops": self.n_real_crops,
            "n_synthetic_crops": self.n_synthetic_crops,
            "energy": self.energy,
            "energy_null": self.energy_null,
            "band_energy": self.band_energy,
            "bands_cycles_per_pixel": {name: [lo, None if math.isinf(hi) else hi]
                                       for name, (lo, hi) in BANDS.items()},
            "energy_definition": ENERGY_DEFINITION,
            "z_threshold": self.z_threshold,
            "peaks": [{**peak.to_json(), "significant": self.is_significant(peak)}
                      for peak in self.peaks(k)],
            "skipped": [s.to_json() for s in self.skipped],
        }


def fingerprint_energy(fp2d: np.ndarray, transform: Transform) -> tuple[float, dict[str, float]]:
    """(energy, band energies) of a 2-D fingerprint; see ENERGY_DEFINITION."""
    radius = _radius(fp2d.shape, transform)
    magnitude = np.abs(fp2d)
    not_dc = radius > 0
    bands = {name: float(magnitude[not_dc & (radius >= lo) & (radius < hi)].mean())
             for name, (lo, hi) in BANDS.items()}
    return float(magnitude[not_dc].mean()), bands


def _full(mean: np.ndarray, transform: Transform, size: int) -> np.ndarray:
    return expand_half_spectrum(mean, size) if transform == "fft" else mean


def fingerprint_from_streams(real: StreamResult, synthetic: StreamResult, *,
                             transform: Transform, crop: CropMode, size: int) -> Fingerprint:
    """Assemble a Fingerprint from two streams that carry ``log_spectrum_statistic(transform)``."""
    r_stat, s_stat = real.stats[_LOG_SPECTRUM], synthetic.stats[_LOG_SPECTRUM]
    mean_real = _full(r_stat.mean, transform, size)
    mean_syn = _full(s_stat.mean, transform, size)
    fp = mean_syn - mean_real
    energy, band_energy = fingerprint_energy(fp[3], transform)
    energy_null, stderr = None, None
    if r_stat.count > 1 and s_stat.count > 1:
        stderr = np.sqrt(_full(r_stat.variance[3], transform, size) / r_stat.count
                         + _full(s_stat.variance[3], transform, size) / s_stat.count)
        not_dc = _radius(fp[3].shape, transform) > 0
        energy_null = float(np.sqrt(2.0 / np.pi) * stderr[not_dc].mean())
    freqs, radial_real = radial_profile(2.0 * mean_real[3], transform=transform)
    _, radial_syn = radial_profile(2.0 * mean_syn[3], transform=transform)
    return Fingerprint(
        per_channel=fp[:3], luminance=fp[3], mean_log_real=mean_real[3],
        mean_log_synthetic=mean_syn[3], radial_freqs=freqs, radial_real=radial_real,
        radial_synthetic=radial_syn, n_real=real.n_images, n_synthetic=synthetic.n_images,
        n_real_crops=r_stat.count, n_synthetic_crops=s_stat.count, transform=transform,
        crop=crop, size=size, energy=energy, band_energy=band_energy, energy_null=energy_null,
        stderr=stderr,
        skipped=[*real.skipped, *synthetic.skipped],
    )


def stream_log_spectra(paths: Sequence[str | Path], *, size: int, transform: Transform = "fft",
                       crop: CropMode = "center", desc: str = "images", progress: bool = True,
                       extra: Mapping[str, Statistic] | None = None,
                       workers: int | None = None) -> StreamResult:
    """Stream the fingerprint statistic (plus any ``extra`` ones) over one image set."""
    statistics = {_LOG_SPECTRUM: log_spectrum_statistic(transform), **(extra or {})}
    return stream_statistics(paths, statistics, size=size, crop=crop, desc=desc,
                             progress=progress, workers=workers)


def compute_fingerprint(
    real: Sequence[str | Path],
    synthetic: Sequence[str | Path],
    *,
    size: int = 256,
    transform: Transform = "fft",
    crop: CropMode = "center",
    progress: bool = True,
    workers: int | None = None,
) -> Fingerprint:
    """FP(R, S) = mean log|T(S)| − mean log|T(R)| on ``size``-pixel crops (see module docs)."""
    _check_transform(transform)
    kwargs: dict[str, Any] = {"size": size, "transform": transform, "crop": crop,
                              "progress": progress, "workers": workers}
    real_stream = stream_log_spectra(real, desc="real", **kwargs)
    synthetic_stream = stream_log_spectra(synthetic, desc="synthetic", **kwargs)
    return fingerprint_from_streams(real_stream, synthetic_stream, transform=transform,
                                    crop=crop, size=size)


# --------------------------------------------------------------------------- analysis


def radial_profile(power2d: np.ndarray, *, transform: Transform = "fft"
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Azimuthal average around the zero frequency → (freqs in cycles/pixel 0..0.5, profile).

    The zero frequency is the centre for a shifted FFT (index H//2, W//2) and the top-left
    corner for a DCT. Coefficients are binned by rounded radius with one-coefficient-wide
    bins; corners beyond 0.5 cycles/pixel are left out. Empty bins are NaN.
    """
    shape = power2d.shape
    step = 1.0 / min(shape) if transform == "fft" else 1.0 / (2.0 * min(shape))
    bins = np.rint(_radius(shape, transform) / step).astype(np.int64)
    n_bins = round(0.5 / step) + 1
    keep = bins < n_bins
    counts = np.bincount(bins[keep], minlength=n_bins).astype(np.float64)
    sums = np.bincount(bins[keep], weights=np.asarray(power2d, np.float64)[keep],
                       minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        profile = np.where(counts > 0, sums / counts, np.nan)
    return np.arange(n_bins) * step, profile


def spectral_peaks(fp2d: np.ndarray, k: int = 10, exclude_radius: int = 2, *,
                   transform: Transform = "fft", min_distance: int = 2,
                   stderr: np.ndarray | None = None) -> list[Peak]:
    """The ``k`` most prominent local maxima of a 2-D fingerprint, strongest first.

    A peak is a frequency where the synthetic set carries extra energy: FP > 0 there and it
    stands out from its surroundings.

    Prominence = value − median over a PEAK_BACKGROUND_WINDOW² neighbourhood, so broad trends
    (e.g. less high-frequency energy overall) do not hide narrow generator peaks. For the FFT,
    the fx = 0 and fy = 0 lines use a median along the line instead: the crop border's
    wrap-around discontinuity puts a ridge there, and only peaks on top of it count. Non-maximum
    suppression keeps one peak per (2·min_distance+1)² window; coefficients within
    ``exclude_radius`` (in coefficients) of the zero frequency are ignored. The FFT spectrum
    wraps around at its edges; for real images it is point-symmetric, so each conjugate pair
    is reported once, as the member with fy > 0 (or fy = 0, fx > 0); Nyquist is +0.5.
    ``stderr`` (the fingerprint's standard error) adds a z-score to each peak.
    """
    _check_transform(transform)
    fp2d = np.asarray(fp2d, dtype=np.float64)
    height, width = fp2d.shape
    mode = "wrap" if transform == "fft" else "mirror"
    background = ndimage.median_filter(fp2d, size=PEAK_BACKGROUND_WINDOW, mode=mode)
    if transform == "fft":
        centre_r, centre_c = height // 2, width // 2
        background[centre_r, :] = ndimage.median_filter(fp2d[centre_r, :],
                                                        size=PEAK_BACKGROUND_WINDOW, mode=mode)
        background[:, centre_c] = ndimage.median_filter(fp2d[:, centre_c],
                                                        size=PEAK_BACKGROUND_WINDOW, mode=mode)
    else:
        centre_r = centre_c = 0
    prominence = fp2d - background
    is_max = ndimage.maximum_filter(prominence, size=2 * min_distance + 1, mode=mode) == prominence
    rr, cc = np.indices(fp2d.shape)
    near_dc = np.hypot(rr - centre_r, cc - centre_c) <= exclude_radius
    candidates = np.flatnonzero(is_max & ~near_dc & (prominence > 0) & (fp2d > 0))
    order = candidates[np.argsort(-prominence.ravel()[candidates], kind="stable")]
    fy_grid, fx_grid = frequency_grid(fp2d.shape, transform)

    peaks: list[Peak] = []
    seen: set[tuple[int, int]] = set()
    for flat in order:
        row, col = divmod(int(flat), width)
        if (row, col) in seen:
            continue
        fy, fx = float(fy_grid[row, col]), float(fx_grid[row, col])
        if transform == "fft":
            fy, fx = _wrap_nyquist(fy), _wrap_nyquist(fx)
            partner = ((2 * centre_r - row) % height, (2 * centre_c - col) % width)
            seen.add(partner)
            pfy, pfx = _wrap_nyquist(-fy), _wrap_nyquist(-fx)
            if (pfy, pfx) > (fy, fx):  # report the canonical member of the pair
                row, col, fy, fx = *partner, pfy, pfx
        seen.add((row, col))
        value = float(fp2d[row, col])
        z = None if stderr is None or not stderr[row, col] > 0 else value / float(stderr[row, col])
        peaks.append(Peak(row, col, fy, fx, value, float(prominence[row, col]), z))
        if len(peaks) >= k:
            break
    return peaks


def _wrap_nyquist(f: float) -> float:
    """Map a frequency into (-0.5, 0.5] (so the Nyquist frequency reads +0.5), no -0.0."""
    f = (f + 0.5) % 1.0 - 0.5
    return 0.5 if f == -0.5 else f + 0.0


# --------------------------------------------------------------------------- outputs


def _symmetric_limit(values: np.ndarray, transform: Transform) -> float:
    not_dc = _radius(values.shape[-2:], transform) > 0
    limit = float(np.percentile(np.abs(values[..., not_dc]), 99.5))
    return limit if limit > 0 else 1e-6


def _extent(size: int, transform: Transform) -> tuple[float, float, float, float]:
    fy, _ = frequency_grid((size, size), transform)
    f = fy[:, 0]
    half = (f[1] - f[0]) / 2.0
    return (f[0] - half, f[-1] + half, f[-1] + half, f[0] - half)


def _caption(fp: Fingerprint) -> str:
    crop = f"center crop {fp.size} px" if fp.crop == "center" else f"all {fp.size} px tiles"
    counts = f"real n={fp.n_real}, synthetic n={fp.n_synthetic}"
    if fp.crop == "tiles":
        counts += f" ({fp.n_real_crops} / {fp.n_synthetic_crops} tiles)"
    return f"transform: {fp.transform_label} · {crop} · {counts} · energy {fp.energy:.3f}"


def save_fingerprint_outputs(fp: Fingerprint, out_dir: str | Path, *, k: int = 10
                             ) -> dict[str, Path]:
    """Write the fingerprint figures, ``peaks.csv``, ``fingerprint.npy`` and ``.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    peaks = fp.peaks(k)
    axis_label = "cycles/pixel" + (" (DCT index / 2N)" if fp.transform == "dct" else "")
    extent = _extent(fp.size, fp.transform)
    title = "FP(R,S) = mean log|T(S)| − mean log|T(R)|"
    paths: dict[str, Path] = {}

    figure = new_figure(6.4, 6.0)
    ax = figure.add_subplot()
    limit = _symmetric_limit(fp.luminance, fp.transform)
    image = ax.imshow(fp.luminance, cmap="RdBu_r", vmin=-limit, vmax=limit, extent=extent,
                      interpolation="nearest")
    fy_grid, fx_grid = frequency_grid(fp.luminance.shape, fp.transform)
    for rank, peak in enumerate(peaks, 1):  # marked where the coefficient sits in the array
        at = (fx_grid[peak.row, peak.col], fy_grid[peak.row, peak.col])
        style: dict[str, Any] = ({"mec": "black", "mew": 1.5} if fp.is_significant(peak)
                 else {"mec": "dimgray", "mew": 0.8, "ls": "none", "alpha": 0.7})
        ax.plot(*at, "o", mfc="none", ms=9, **style)
        ax.annotate(str(rank), at, xytext=(5, 5), textcoords="offset points", fontsize=7)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_xlabel(f"fx, {axis_label}")
    ax.set_ylabel(f"fy, {axis_label}")
    threshold = "n/a" if fp.z_threshold is None else f"{fp.z_threshold:.1f}"
    ax.set_title(f"{title}, luminance (red: synthetic has more energy)\ncircles: top {k} peaks, "
                 f"black = z > {threshold} (beats chance), grey = within chance\n"
                 f"{_caption(fp)}", fontsize=8)
    figure.colorbar(image, ax=ax, shrink=0.8, label="log-magnitude difference")
    paths["luminance_png"] = save_figure(figure, out / "fingerprint.png", bbox_inches="tight")

    figure = new_figure(14.0, 5.0)
    axes = figure.subplots(1, 3)
    limit = _symmetric_limit(fp.per_channel, fp.transform)
    for ax, name, channel in zip(axes, CHANNEL_NAMES, fp.per_channel, strict=True):
        image = ax.imshow(channel, cmap="RdBu_r", vmin=-limit, vmax=limit, extent=extent,
                          interpolation="nearest")
        ax.set_title(f"channel {name}", fontsize=10)
        ax.set_xlabel(f"fx, {axis_label}")
    axes[0].set_ylabel(f"fy, {axis_label}")
    figure.colorbar(image, ax=list(axes), shrink=0.8, label="log-magnitude difference")
    figure.suptitle(f"{title} per channel\n{_caption(fp)}", fontsize=10)
    paths["channels_png"] = save_figure(figure, out / "fingerprint_channels.png",
                                        bbox_inches="tight")

    figure = new_figure(7.0, 6.0)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    for ax in (top, bottom):
        for (name, (lo, hi)), shade in zip(BANDS.items(), ("#eeeeee", "#dddddd", "#cccccc"),
                                           strict=True):
            ax.axvspan(lo, min(hi, 0.5), color=shade, zorder=0)
            if ax is top:
                ax.text((lo + min(hi, 0.5)) / 2, 1.0, name, transform=ax.get_xaxis_transform(),
                        ha="center", va="bottom", fontsize=8)
    top.plot(fp.radial_freqs, fp.radial_real, label=f"real (n={fp.n_real})", color="tab:blue")
    top.plot(fp.radial_freqs, fp.radial_synthetic, label=f"synthetic (n={fp.n_synthetic})",
             color="tab:red")
    top.set_ylabel("mean log power ln|T|²")
    top.legend(fontsize=8)
    bottom.plot(fp.radial_freqs, fp.radial_synthetic - fp.radial_real, color="black")
    bottom.axhline(0.0, color="gray", lw=0.8)
    bottom.set_ylabel("synthetic − real")
    bottom.set_xlabel("radial frequency, cycles/pixel")
    bottom.set_xlim(0.0, 0.5)
    figure.suptitle(f"Azimuthally averaged spectra (luminance)\n{_caption(fp)}", fontsize=9)
    paths["radial_png"] = save_figure(figure, out / "radial_spectra.png", bbox_inches="tight")

    paths["peaks_csv"] = write_csv(
        out / "peaks.csv", ["rank", "row", "col", "fy", "fx", "frequency", "magnitude",
                            "prominence", "z", "significant"],
        ([rank, peak.row, peak.col, f"{peak.fy:.6f}", f"{peak.fx:.6f}", f"{peak.frequency:.6f}",
          f"{peak.magnitude:.6f}", f"{peak.prominence:.6f}",
          None if peak.z is None else f"{peak.z:.3f}", int(fp.is_significant(peak))]
         for rank, peak in enumerate(peaks, 1)))
    paths["npy"] = write_npy(out / "fingerprint.npy", fp.luminance.astype(np.float32))
    paths["json"] = write_json(out / "fingerprint.json", fp.summary(k))
    return paths
