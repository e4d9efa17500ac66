"""Fréchet distance between two image sets, in a named feature space.

FD = ||μ_a − μ_b||² + Tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^½) between Gaussians fitted to the globally
pooled features of each set (Heusel et al. 2017). Only InceptionV3 pool3 features with ImageNet
weights make it an "FID"; every other space is reported as ``FD[<trunk>]`` and random weights
as ``FD[<trunk>, random]``, so a number is never passed off as an FID that is not one.

``features="auto"`` picks InceptionV3 when its torchvision weights are already in the torch hub
cache (or ``weights`` is a file), else the package-shipped MobileNetV2 (1280-d), else
EfficientNet-Lite0 (1280-d); nothing is downloaded. Images are resized to ``size``×``size``
(bilinear, antialiased; the whole image, no crop), as the reference implementations do. Means
and covariances are streamed in float64 (Chan et al.'s pairwise update), and the matrix square
root follows pytorch-fid: ``scipy.linalg.sqrtm``, retried on Σ + eps·I when the product is
singular, imaginary parts below tolerance dropped.

Torchvision's InceptionV3 weights are not the TensorFlow graph behind published FID numbers,
so our FID ranks sets the same way but does not match published values to the decimal.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F

from fakeseg.errors import FakesegError
from fakeseg.features.trunks import Trunk
from fakeseg.io import expand_inputs, list_images, read_image
from fakeseg.progress import progress_bar

log = logging.getLogger(__name__)

#: Tried in this order by ``features="auto"``.
AUTO_FEATURES: tuple[str, ...] = ("inception_v3", "mobilenet_v2", "efficientnet_lite0")
DEFAULT_SIZES: dict[str, int] = {"inception_v3": 299}
DEFAULT_SIZE = 224
#: Added to both covariances' diagonals when Σ_a Σ_b is singular (pytorch-fid's choice).
SQRTM_EPS = 1e-6
#: Random feature spaces are built under this torch seed, so their FDs are reproducible.
RANDOM_FEATURES_SEED = 0
#: Largest imaginary part of the square root's diagonal that counts as round-off.
IMAG_TOLERANCE = 1e-3


@dataclass(frozen=True)
class FrechetResult:
    """A Fréchet distance, the space it was measured in and the set sizes."""

    value: float
    feature_space: str  # e.g. "inception_v3 pool3, 2048-d, imagenet:torchvision"
    n_a: int
    n_b: int
    dims: int
    name: str = "FD"  # "FID", "FD[mobilenet_v2]" or "FD[mobilenet_v2, random]"
    backbone: str = ""
    weights: str = ""
    size: int = 0
    note: str = ""
    a: str = ""  # what set A was: a folder, a glob, or "N paths"
    b: str = ""

    def __str__(self) -> str:
        return (f"{self.name} = {self.value:.4f} ({self.feature_space}; n_a={self.n_a}, "
                f"n_b={self.n_b}, {self.size}x{self.size})")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class RunningMoments:
    """Streamed mean and covariance in float64 (pairwise merge of batch moments)."""

    def __init__(self, dims: int) -> None:
        self.n = 0
        self.mean = np.zeros(dims, dtype=np.float64)
        self.m2 = np.zeros((dims, dims), dtype=np.float64)  # sum of centred outer products

    def add(self, batch: np.ndarray) -> None:
        """Add a (B, dims) batch of feature vectors."""
        x = np.asarray(batch, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.mean.size:
            raise ValueError(f"expected (B, {self.mean.size}) features, got {x.shape}")
        nb = x.shape[0]
        if nb == 0:
            return
        mean_b = x.mean(axis=0)
        centred = x - mean_b
        m2_b = centred.T @ centred
        total = self.n + nb
        delta = mean_b - self.mean
        self.m2 += m2_b + np.outer(delta, delta) * (self.n * nb / total)
        self.mean += delta * (nb / total)
        self.n = total

    @property
    def covariance(self) -> np.ndarray:
        """Unbiased covariance (n − 1), as ``np.cov``."""
        if self.n < 2:
            raise ValueError("a covariance needs at least two samples")
        return self.m2 / (self.n - 1)


def sqrtm_product(sigma_a: np.ndarray, sigma_b: np.ndarray, *,
                  eps: float = SQRTM_EPS) -> np.ndarray:
    """Real (Σ_a Σ_b)^½ by ``scipy.linalg.sqrtm``; retried with eps·I added when singular."""
    with warnings.catch_warnings():  # singular products are expected (n < dims) and handled
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(sigma_a @ sigma_b)
        if not np.isfinite(covmean).all() or _imaginary(covmean) > IMAG_TOLERANCE:
            log.info("Σ_a Σ_b is singular; adding %g to the covariance diagonals", eps)
            offset = np.eye(sigma_a.shape[0]) * eps
            covmean = scipy.linalg.sqrtm((sigma_a + offset) @ (sigma_b + offset))
    if not np.isfinite(covmean).all():
        raise FakesegError("the covariance square root is not finite even after regularising; "
                           "use more images per set")
    if np.iscomplexobj(covmean):
        if _imaginary(covmean) > IMAG_TOLERANCE:
            raise FakesegError(f"the covariance square root has an imaginary part of "
                               f"{_imaginary(covmean):.3g}; use more images per set")
        covmean = covmean.real
    return np.asarray(covmean, dtype=np.float64)


def _imaginary(matrix: np.ndarray) -> float:
    if not np.iscomplexobj(matrix):
        return 0.0
    return float(np.abs(np.diagonal(matrix).imag).max(initial=0.0))


def frechet_from_moments(mu_a: np.ndarray, sigma_a: np.ndarray, mu_b: np.ndarray,
                         sigma_b: np.ndarray, *, eps: float = SQRTM_EPS) -> float:
    """||μ_a − μ_b||² + Tr(Σ_a) + Tr(Σ_b) − 2 Tr((Σ_a Σ_b)^½); round-off below 0 gives 0."""
    mu_a, mu_b = np.atleast_1d(mu_a).astype(np.float64), np.atleast_1d(mu_b).astype(np.float64)
    sigma_a = np.atleast_2d(sigma_a).astype(np.float64)
    sigma_b = np.atleast_2d(sigma_b).astype(np.float64)
    if mu_a.shape != mu_b.shape or sigma_a.shape != sigma_b.shape or (
            sigma_a.shape != (mu_a.size, mu_a.size)):
        raise ValueError(f"moment shapes differ: mu {mu_a.shape}/{mu_b.shape}, sigma "
                         f"{sigma_a.shape}/{sigma_b.shape}")
    diff = mu_a - mu_b
    covmean = sqrtm_product(sigma_a, sigma_b, eps=eps)
    value = float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * np.trace(covmean))
    return max(value, 0.0)


# --------------------------------------------------------------------------- features


def _paths(images: Sequence[str | Path] | str | Path, what: str) -> list[Path]:
    if isinstance(images, str | Path):
        path = Path(images)
        return list_images(path) if path.exists() else expand_inputs([str(images)])
    paths = [Path(p) for p in images]
    if not paths:
        raise FakesegError(f"set {what} is empty; give at least two images")
    return paths


def _load(path: Path, size: int) -> torch.Tensor:
    image = torch.from_numpy(read_image(path)).permute(2, 0, 1)[None]
    if image.shape[-2:] != (size, size):
        image = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False,
                              antialias=True)
    return image.clamp_(0.0, 1.0)


@torch.no_grad()
def stream_moments(trunk: Trunk, paths: Sequence[Path], *, size: int,
                   batch_size: int = 16, desc: str = "images",
                   progress: bool = True) -> RunningMoments:
    """Feed ``paths`` through ``trunk`` (pooled features) and accumulate their moments."""
    moments = RunningMoments(int(trunk.dims))
    bar = progress_bar(total=len(paths), desc=desc, unit="img", enabled=progress)
    for start in range(0, len(paths), max(1, batch_size)):
        chunk = paths[start:start + batch_size]
        batch = torch.cat([_load(p, size) for p in chunk])
        moments.add(trunk(batch).double().cpu().numpy())
        bar.update(len(chunk))
    bar.close()
    return moments


def resolve_feature_space(features: str = "auto", weights: str = "auto") -> Any:
    """The :class:`~fakeseg.features.trunks.Trunk` that ``features`` / ``weights`` name.

    ``auto``: InceptionV3 if its weights are local (or ``weights`` is a file), then the
    package-shipped MobileNetV2, then EfficientNet-Lite0; ``weights="random"`` picks
    MobileNetV2, initialised under :data:`RANDOM_FEATURES_SEED` (reproducible values).
    Raises with every reason when nothing is available.
    """
    from fakeseg.features.trunks import build_trunk, get_trunk_spec

    word = str(weights).strip().lower()
    if word == "random":
        name = "mobilenet_v2" if features == "auto" else get_trunk_spec(features).name
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_FEATURES_SEED)
            return build_trunk(name, "random")
    if features != "auto":
        get_trunk_spec(features)
        return build_trunk(features, weights)
    if word not in ("auto", "imagenet"):  # a file or a source tag: it must fit InceptionV3
        return build_trunk("inception_v3", weights)
    reasons: list[str] = []
    for name in AUTO_FEATURES:
        try:
            return build_trunk(name, word)
        except FakesegError as exc:
            reasons.append(str(exc))
            log.info("FD features: %s unavailable (%s)", name, exc)
    raise FakesegError("no feature space with pretrained weights is available ("
                       + " | ".join(reasons) + "); or pass weights='random' explicitly")


def feature_space_name(trunk: Any) -> tuple[str, str]:
    """(short name, description): "FID" only for InceptionV3 with pretrained weights."""
    random = trunk.weights_tag == "random"
    if trunk.name == "inception_v3" and not random:
        name = "FID"
    else:
        name = f"FD[{trunk.name}{', random' if random else ''}]"
    layer = "pool3" if trunk.name == "inception_v3" else "global average pool"
    return name, f"{trunk.name} {layer}, {trunk.dims}-d, weights {trunk.weights_tag}"


def frechet_distance(
    a: Sequence[str | Path] | str | Path,
    b: Sequence[str | Path] | str | Path,
    *,
    features: str = "auto",
    weights: str = "auto",
    batch_size: int = 16,
    size: int | None = None,
    progress: bool = True,
) -> FrechetResult:
    """Fréchet distance between image sets ``a`` and ``b`` (folders, globs or path lists).

    ``size`` defaults to 299 for InceptionV3 and 224 otherwise. The result's ``name`` says
    which space it was measured in ("FID" only for pretrained InceptionV3; see module docs).
    """
    paths_a, paths_b = _paths(a, "A"), _paths(b, "B")
    for what, paths in (("A", paths_a), ("B", paths_b)):
        if len(paths) < 2:
            raise FakesegError(f"set {what} has {len(paths)} image(s); a covariance needs at "
                               "least two (FD is only meaningful with hundreds)")
    trunk = resolve_feature_space(features, weights).eval()
    side = int(size or DEFAULT_SIZES.get(trunk.name, DEFAULT_SIZE))
    if side < trunk.min_size:
        raise FakesegError(f"size {side} is too small for {trunk.name}; use at least "
                           f"{trunk.min_size}")
    moments_a = stream_moments(trunk, paths_a, size=side, batch_size=batch_size, desc="set A",
                               progress=progress)
    moments_b = stream_moments(trunk, paths_b, size=side, batch_size=batch_size, desc="set B",
                               progress=progress)
    value = frechet_from_moments(moments_a.mean, moments_a.covariance, moments_b.mean,
                                 moments_b.covariance)
    name, description = feature_space_name(trunk)
    notes = []
    if min(len(paths_a), len(paths_b)) <= trunk.dims:
        notes.append(f"fewer images than feature dimensions ({trunk.dims}): the covariances "
                     "are rank-deficient and FD is biased upward; compare only values computed "
                     "with the same set sizes")
    if name == "FID":
        notes.append("torchvision InceptionV3 weights: comparable across fakeseg runs, not to "
                     "the decimal with published (TensorFlow-Inception) FIDs")
    if not math.isfinite(value):
        raise FakesegError(f"{name} is not finite; check the images")
    return FrechetResult(value=value, feature_space=description, n_a=moments_a.n,
                         n_b=moments_b.n, dims=trunk.dims, name=name, backbone=trunk.name,
                         weights=trunk.weights_tag, size=side, note="; ".join(notes),
                         a=_describe_set(a), b=_describe_set(b))


def _describe_set(images: Sequence[str | Path] | str | Path) -> str:
    return str(images) if isinstance(images, str | Path) else f"{len(images)} paths"
