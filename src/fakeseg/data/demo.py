"""The built-in demo dataset: bundled photos and render-look simulations of them.

Real images are colour photos that ship inside installed packages (scikit-image,
scikit-learn, matplotlib). Each synthetic partner is the same photo with a few localized
regions re-rendered by a simple "render-look simulator" (flat shading, aliasing, banding,
...). This is demo and test data; it makes no claim about what real renders look like.
"""

from __future__ import annotations

import importlib.util
import json
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from fakeseg.data.pairs import CLASSES_JSON, LABELS_DIR, MASKS_DIR, REAL_DIR, SYNTHETIC_DIR
from fakeseg.errors import FakesegError
from fakeseg.io import read_image, to_uint8, write_image, write_json
from fakeseg.progress import progress_bar

ARTIFACT_FAMILIES: tuple[str, ...] = (
    "flat_shading",
    "nn_aliasing",
    "no_sensor_noise",
    "colour_banding",
    "game_saturation",
    "tiled_texture",
    "checkerboard",
)
CLASS_NAMES: tuple[str, ...] = ("dark", "mid-dark", "mid-bright", "bright")
DEMO_KIND = "fakeseg-demo-dataset"
DEMO_JSON = "demo.json"
DISCLAIMER = (
    "This is demo/test data: real images are bundled sample photos and the synthetic images "
    "are a simple render-look simulation of them; it is not a claim about real renders."
)
_LAYOUT = (REAL_DIR, SYNTHETIC_DIR, MASKS_DIR, LABELS_DIR)
_COVERAGE = (0.15, 0.45)


@dataclass
class DemoSummary:
    root: Path
    n_pairs: int
    families: dict[str, int]
    seed: int


@dataclass(frozen=True)
class PhotoSource:
    name: str
    package: str
    locate: Callable[[], Path]


def _package_file(package: str, *parts: str) -> Callable[[], Path]:
    """Locate a data file inside an installed package without importing the package."""

    def locate() -> Path:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(f"{package} is not installed")
        return Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)

    return locate


def _skimage_file(filename: str) -> Callable[[], Path]:
    return _package_file("skimage", "data", filename)


def _sklearn_file(filename: str) -> Callable[[], Path]:
    return _package_file("sklearn", "datasets", "images", filename)


def _matplotlib_file(filename: str) -> Callable[[], Path]:
    return _package_file("matplotlib", "mpl-data", "sample_data", filename)


PHOTO_SOURCES: tuple[PhotoSource, ...] = (
    PhotoSource("astronaut", "scikit-image", _skimage_file("astronaut.png")),
    PhotoSource("chelsea", "scikit-image", _skimage_file("chelsea.png")),
    PhotoSource("coffee", "scikit-image", _skimage_file("coffee.png")),
    PhotoSource("rocket", "scikit-image", _skimage_file("rocket.jpg")),
    PhotoSource("motorcycle", "scikit-image", _skimage_file("motorcycle_left.png")),
    PhotoSource("hubble_deep_field", "scikit-image", _skimage_file("hubble_deep_field.jpg")),
    PhotoSource("immunohistochemistry", "scikit-image", _skimage_file("ihc.png")),
    PhotoSource("retina", "scikit-image", _skimage_file("retina.jpg")),
    PhotoSource("china", "scikit-learn", _sklearn_file("china.jpg")),
    PhotoSource("flower", "scikit-learn", _sklearn_file("flower.jpg")),
    PhotoSource("grace_hopper", "matplotlib", _matplotlib_file("grace_hopper.jpg")),
)


def _square(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square and resize (anti-aliased Lanczos) to uint8 ``size``×``size``."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crop = to_uint8(image[top:top + side, left:left + side])
    pil = Image.fromarray(crop).resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(pil, dtype=np.uint8)


def load_photos(size: int) -> list[tuple[PhotoSource, Path, np.ndarray]]:
    """The bundled photos that can be read offline, each square uint8 (size, size, 3)."""
    photos = []
    for source in PHOTO_SOURCES:
        try:
            path = source.locate()
            image = read_image(path)
        except (ImportError, OSError, ValueError, FakesegError):
            continue
        photos.append((source, path, _square(image, size)))
    return photos


# ----------------------------------------------------------------------------- regions


def _rectangle(height: int, width: int, area: float,
               rng: np.random.Generator) -> np.ndarray:
    aspect = float(np.exp(rng.uniform(-0.7, 0.7)))
    h = int(np.clip(round(np.sqrt(area / aspect)), 4, height - 2))
    w = int(np.clip(round(area / h), 4, width - 2))
    top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
    shape = np.zeros((height, width), dtype=bool)
    shape[top:top + h, left:left + w] = True
    return shape


def _blob(height: int, width: int, area: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth star-shaped blob: radius r(θ) = r0·(1 + Σ a_k cos(kθ + φ_k))."""
    aspect = float(np.exp(rng.uniform(-0.5, 0.5)))
    r0 = np.sqrt(area / np.pi)
    cy = rng.uniform(0.15, 0.85) * height
    cx = rng.uniform(0.15, 0.85) * width
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    dy, dx = (yy - cy) * np.sqrt(aspect), (xx - cx) / np.sqrt(aspect)
    theta, radius = np.arctan2(dy, dx), np.hypot(dy, dx)
    limit = np.ones_like(theta)
    for k in (2, 3, 4, 5):
        limit += rng.uniform(0.0, 0.3 / (k - 1)) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return radius <= r0 * limit


def soft_alpha(shape: np.ndarray, feather: float) -> np.ndarray:
    """Feathered alpha: 0 outside ``shape``, ramping from just above 0.5 at its edge to 1."""
    if not shape.any():
        return np.zeros(shape.shape, dtype=np.float32)
    distance = ndimage.distance_transform_edt(shape)
    ramp = np.clip(distance / max(feather, 1.0), 0.0, 1.0)
    ramp = ramp * ramp * (3.0 - 2.0 * ramp)
    alpha = np.where(shape, 0.5 + 0.5 * np.maximum(ramp, 1e-3), 0.0)
    return alpha.astype(np.float32)


def random_regions(height: int, width: int, rng: np.random.Generator,
                   ) -> list[tuple[str, np.ndarray]]:
    """2–4 non-overlapping rectangles or blobs covering 15–45 % of the image together."""
    best: list[tuple[str, np.ndarray]] = []
    best_gap = np.inf
    for _ in range(40):
        count = int(rng.integers(2, 5))
        target = rng.uniform(*_COVERAGE)
        weights = rng.dirichlet(np.full(count, 3.0))
        union = np.zeros((height, width), dtype=bool)
        regions: list[tuple[str, np.ndarray]] = []
        for weight in weights:
            area = float(weight * target * height * width)
            taken = ndimage.binary_dilation(union, iterations=2)
            for _ in range(30):
                kind = "rectangle" if rng.random() < 0.5 else "blob"
                maker = _rectangle if kind == "rectangle" else _blob
                shape = maker(height, width, area, rng)
                if shape.sum() >= 16 and not (shape & taken).any():
                    regions.append((kind, shape))
                    union |= shape
                    break
        coverage = float(union.mean())
        gap = max(_COVERAGE[0] - coverage, coverage - _COVERAGE[1], 0.0)
        if len(regions) >= 2 and gap < best_gap:
            best, best_gap = regions, gap
            if gap == 0.0:
                break
    return best


# ----------------------------------------------------------------------------- artifacts


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(image, sigma=(sigma, sigma, 0), mode="reflect")


def _flat_shading(crop: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    from skimage.segmentation import slic

    pixels_per_segment = float(rng.uniform(60.0, 160.0))
    n_segments = max(4, int(crop.shape[0] * crop.shape[1] / pixels_per_segment))
    segments = slic(crop, n_segments=n_segments, compactness=10.0, start_label=0,
                    channel_axis=-1, enforce_connectivity=True)
    counts = np.maximum(np.bincount(segments.ravel()), 1)
    means = np.stack([np.bincount(segments.ravel(), weights=crop[..., c].ravel()) / counts
                      for c in range(3)], axis=1)
    flat = means[segments].astype(np.float32)
    return _blur(flat, 0.6), {"segments": n_segments}


def _nn_aliasing(crop: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    factor = int(rng.integers(3, 6))
    offset = int(rng.integers(0, factor))
    small = crop[offset::factor, offset::factor]
    big = np.repeat(np.repeat(small, factor, axis=0), factor, axis=1)
    pad = ((0, max(crop.shape[0] - big.shape[0], 0)), (0, max(crop.shape[1] - big.shape[1], 0)),
           (0, 0))
    big = np.pad(big, pad, mode="edge")[: crop.shape[0], : crop.shape[1]]
    return big, {"factor": factor}


def _no_sensor_noise(crop: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Noise-free, over-smoothed look: an edge-preserving guided filter (grey guide)."""
    radius = int(rng.integers(2, 5))
    eps = float(rng.uniform(0.002, 0.008))
    size = 2 * radius + 1
    guide = crop.mean(axis=2)
    mean_g = ndimage.uniform_filter(guide, size, mode="reflect")
    var_g = ndimage.uniform_filter(guide * guide, size, mode="reflect") - mean_g**2
    out = np.empty_like(crop)
    for c in range(3):
        channel = crop[..., c]
        mean_p = ndimage.uniform_filter(channel, size, mode="reflect")
        cov = ndimage.uniform_filter(guide * channel, size, mode="reflect") - mean_g * mean_p
        a = cov / (var_g + eps)
        b = mean_p - a * mean_g
        out[..., c] = (ndimage.uniform_filter(a, size, mode="reflect") * guide
                       + ndimage.uniform_filter(b, size, mode="reflect"))
    return _blur(out, 0.7), {"radius": radius, "eps": round(eps, 4)}


def _colour_banding(crop: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    levels = int(rng.integers(5, 10))
    smooth = _blur(crop, 1.2)
    return np.round(smooth * (levels - 1)) / (levels - 1), {"levels": levels}


def _game_saturation(crop: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    from skimage.color import hsv2rgb, rgb2hsv

    gain = float(rng.uniform(1.7, 2.4))
    contrast = float(rng.uniform(1.2, 1.4))
    hsv = rgb2hsv(np.clip(crop, 0.0, 1.0))
    hsv[..., 1] = np.clip(hsv[..., 1] * gain + 0.08, 0.0, 1.0)
    hsv[..., 2] = np.clip((hsv[..., 2] - 0.5) * contrast + 0.53, 0.0, 1.0)
    params = {"saturation_gain": round(gain, 3), "contrast": round(contrast, 3)}
    return hsv2rgb(hsv).astype(np.float32), params


def _tiled_texture(crop: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    height, width = crop.shape[:2]
    side = int(np.clip(min(height, width) // 4, 6, 16))
    patches = []
    for _ in range(5):
        top = int(rng.integers(0, max(height - side, 0) + 1))
        left = int(rng.integers(0, max(width - side, 0) + 1))
        patches.append(crop[top:top + side, left:left + side])
    patch = sorted(patches, key=lambda p: float(p.std()))[len(patches) // 2]
    reps = (-(-height // patch.shape[0]), -(-width // patch.shape[1]), 1)
    tiled = np.tile(patch, reps)[:height, :width]
    sigma = max(side / 2.0, 2.0)
    shaded = tiled + 0.8 * (_blur(crop, sigma) - _blur(tiled, sigma))
    return shaded.astype(np.float32), {"tile": side}


def _checkerboard(crop: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """2× average-pool, then a stride-2 transposed conv with a slightly uneven 3-tap kernel."""
    height, width = crop.shape[:2]
    even = np.pad(crop, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    low = even.reshape(even.shape[0] // 2, 2, even.shape[1] // 2, 2, 3).mean(axis=(1, 3))
    excess = float(rng.uniform(0.02, 0.045))
    kernel = np.array([0.5 + excess, 1.0, 0.5 + excess])
    stuffed = np.zeros_like(even)
    stuffed[::2, ::2] = low
    up = ndimage.correlate1d(stuffed, kernel, axis=0, mode="mirror")
    up = ndimage.correlate1d(up, kernel, axis=1, mode="mirror")
    up /= (1.0 + excess) ** 2
    return up[:height, :width], {"kernel_excess": round(excess, 3)}


_EFFECTS: dict[str, Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, dict]]] = {
    "flat_shading": _flat_shading,
    "nn_aliasing": _nn_aliasing,
    "no_sensor_noise": _no_sensor_noise,
    "colour_banding": _colour_banding,
    "game_saturation": _game_saturation,
    "tiled_texture": _tiled_texture,
    "checkerboard": _checkerboard,
}


def _apply(image: np.ndarray, alpha: np.ndarray, family: str,
           rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    if family not in _EFFECTS:
        raise FakesegError(f"unknown artifact family '{family}'; "
                           f"use one of {', '.join(ARTIFACT_FAMILIES)}")
    image = np.asarray(image, dtype=np.float32)
    alpha = np.asarray(alpha, dtype=np.float32)
    if alpha.shape != image.shape[:2]:
        raise FakesegError(f"alpha shape {alpha.shape} does not match image {image.shape[:2]}")
    inside = alpha > 0
    if not inside.any():
        return image.copy(), {}
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    margin = 4
    top, bottom = max(rows[0] - margin, 0), min(rows[-1] + 1 + margin, image.shape[0])
    left, right = max(cols[0] - margin, 0), min(cols[-1] + 1 + margin, image.shape[1])
    crop = image[top:bottom, left:right]
    effect, params = _EFFECTS[family](crop, rng)
    a = alpha[top:bottom, left:right, None]
    blended = np.clip(crop * (1.0 - a) + np.clip(effect, 0.0, 1.0) * a, 0.0, 1.0)
    out = image.copy()
    out[top:bottom, left:right] = np.where(a > 0, blended, crop)
    return out, params


def apply_artifact(image: np.ndarray, alpha: np.ndarray, family: str,
                   rng: np.random.Generator) -> np.ndarray:
    """Blend one artifact family into ``image`` (float RGB in [0, 1]) where ``alpha`` > 0.

    Pixels with alpha == 0 are returned unchanged, bit for bit.
    """
    return _apply(image, alpha, family, rng)[0]


# ----------------------------------------------------------------------------- labels


def coarse_labels(image: np.ndarray, n_classes: int = len(CLASS_NAMES)) -> np.ndarray:
    """Deterministic k-means on blurred Lab colour; class ids sorted by mean brightness."""
    from skimage.color import rgb2lab

    array = np.asarray(image)
    rgb = array.astype(np.float64) / (255.0 if array.dtype == np.uint8 else 1.0)
    height, width = rgb.shape[:2]
    lab = rgb2lab(_blur(rgb, max(height / 96.0, 1.0)))
    features = np.stack([lab[..., 0] / 100.0, lab[..., 1] / 200.0, lab[..., 2] / 200.0],
                        axis=-1).reshape(-1, 3)
    sample = features[:: max(len(features) // 4096, 1)]
    order = np.argsort(sample[:, 0], kind="stable")
    centres = np.stack([chunk.mean(axis=0) for chunk in np.array_split(sample[order], n_classes)])
    for _ in range(25):
        assign = _nearest(sample, centres)
        updated = np.stack([sample[assign == k].mean(axis=0) if np.any(assign == k)
                            else centres[k] for k in range(n_classes)])
        if np.allclose(updated, centres, atol=1e-6):
            break
        centres = updated
    assign = _nearest(features, centres)
    rank = np.empty(n_classes, dtype=np.int64)
    rank[np.argsort(centres[:, 0], kind="stable")] = np.arange(n_classes)
    labels = rank[assign].reshape(height, width)
    return _clean_labels(labels, n_classes)


def _nearest(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    return ((points[:, None, :] - centres[None, :, :]) ** 2).sum(axis=-1).argmin(axis=1)


def _clean_labels(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Majority-filter, then give components under 1 % of the image to their nearest class."""
    votes = np.stack([ndimage.uniform_filter((labels == k).astype(np.float32), size=5)
                      for k in range(n_classes)])
    labels = votes.argmax(axis=0)
    min_size = max(int(0.01 * labels.size), 4)
    unknown = np.zeros(labels.shape, dtype=bool)
    for k in range(n_classes):
        components, count = ndimage.label(labels == k)
        if count:
            sizes = np.bincount(components.ravel())
            small = sizes < min_size
            small[0] = False
            unknown |= small[components]
    if unknown.any() and not unknown.all():
        _, (iy, ix) = ndimage.distance_transform_edt(unknown, return_indices=True)
        labels = labels[iy, ix]
    return labels.astype(np.uint8)


# ----------------------------------------------------------------------------- build


def _previous_demo(out: Path) -> dict[str, Any] | None:
    try:
        payload = json.loads((out / DEMO_JSON).read_text())
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) and payload.get("kind") == DEMO_KIND else None


def _check_target(out: Path) -> dict[str, Any] | None:
    if out.exists() and not out.is_dir():
        raise FakesegError(f"{out}: exists and is not a folder; pass a new folder for the demo")
    if out.is_dir() and any(out.iterdir()):
        previous = _previous_demo(out)
        if previous is None:
            raise FakesegError(
                f"{out}: folder is not empty and is not a previous demo dataset; "
                "pass a new or empty folder"
            )
        return previous
    return None


def _seeded_rng(seed: int, name: str, variant: int) -> np.random.Generator:
    entropy = [abs(int(seed)), int(seed < 0), zlib.crc32(name.encode()), variant]
    return np.random.default_rng(entropy)


def _package_version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def build_demo_dataset(out: str | Path, *, seed: int = 0, size: int = 192, variants: int = 2,
                       progress: bool = True) -> DemoSummary:
    """Build a paired demo dataset (real/, synthetic/, masks/, labels/, demo.json) in ``out``."""
    out = Path(out)
    if size < 32:
        raise FakesegError(f"--size {size} is too small for the demo; use at least 32")
    if variants < 1:
        raise FakesegError(f"--variants {variants} must be at least 1")
    previous = _check_target(out)
    photos = load_photos(size)
    if not photos:
        names = ", ".join(source.name for source in PHOTO_SOURCES)
        raise FakesegError(
            f"{out}: no demo photos could be loaded ({names}); "
            "reinstall scikit-image, scikit-learn and matplotlib"
        )
    out.mkdir(parents=True, exist_ok=True)
    header: dict[str, Any] = {"kind": DEMO_KIND, "complete": False, "seed": int(seed),
                              "size": int(size), "variants": int(variants)}
    write_json(out / DEMO_JSON, header)

    feather = max(2.0, size / 64.0)
    families = dict.fromkeys(ARTIFACT_FAMILIES, 0)
    records: list[dict[str, Any]] = []
    sources: list[dict[str, Any]] = []
    total = len(photos) * variants
    with progress_bar(total=total, desc="building demo dataset", enabled=progress) as bar:
        for source, path, real in photos:
            sources.append({"name": source.name, "package": source.package,
                            "version": _package_version(source.package), "file": path.name})
            labels = coarse_labels(real)
            real_float = real.astype(np.float32) / 255.0
            for variant in range(variants):
                stem = f"{source.name}_{variant}"
                rng = _seeded_rng(seed, source.name, variant)
                regions = random_regions(size, size, rng)
                chosen = rng.choice(len(ARTIFACT_FAMILIES), size=len(regions), replace=False)
                synthetic = real_float
                mask = np.zeros((size, size), dtype=bool)
                applied = []
                for (kind, shape), index in zip(regions, chosen, strict=True):
                    family = ARTIFACT_FAMILIES[int(index)]
                    alpha = soft_alpha(shape, feather)
                    synthetic, params = _apply(synthetic, alpha, family, rng)
                    mask |= alpha > 0.5
                    families[family] += 1
                    ys, xs = np.nonzero(shape)
                    applied.append({
                        "family": family, "shape": kind,
                        "bbox_xyxy": [int(xs.min()), int(ys.min()), int(xs.max()) + 1,
                                      int(ys.max()) + 1],
                        "area_fraction": round(float(shape.mean()), 4), "params": params,
                    })
                synthetic_u8 = np.where(mask[..., None], to_uint8(synthetic), real)
                write_image(out / REAL_DIR / f"{stem}.png", real)
                write_image(out / SYNTHETIC_DIR / f"{stem}.png", synthetic_u8)
                write_image(out / MASKS_DIR / f"{stem}.png", mask.astype(np.uint8) * 255)
                write_image(out / LABELS_DIR / f"{stem}.png", labels)
                records.append({"stem": stem, "photo": source.name, "variant": variant,
                                "coverage": round(float(mask.mean()), 4), "regions": applied})
                bar.update(1)

    if previous is not None:
        _remove_stale(out, {record["stem"] for record in records})
    manifest = {
        "kind": DEMO_KIND, "complete": True, "note": DISCLAIMER, "seed": int(seed),
        "size": int(size), "variants": int(variants), "layout": list(_LAYOUT),
        "classes": {str(k): name for k, name in enumerate(CLASS_NAMES)},
        "classes_note": "colour clusters of the real photo sorted by brightness, not objects",
        "families": families, "sources": sources, "pairs": records,
    }
    write_json(out / "labels" / CLASSES_JSON, manifest["classes"])
    write_json(out / DEMO_JSON, manifest)
    return DemoSummary(root=out, n_pairs=len(records), families=families, seed=int(seed))


def _remove_stale(out: Path, keep: set[str]) -> None:
    """Delete demo-named pairs (``<photo>_<k>.png``) that a previous build left behind."""
    pattern = re.compile(
        "^(" + "|".join(re.escape(source.name) for source in PHOTO_SOURCES) + r")_\d+$"
    )
    for folder in _LAYOUT:
        if not (out / folder).is_dir():
            continue
        for path in sorted((out / folder).glob("*.png")):
            if path.stem not in keep and pattern.match(path.stem):
                path.unlink(missing_ok=True)
