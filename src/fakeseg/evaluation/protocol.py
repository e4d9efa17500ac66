"""The composite evaluation protocol (seed 000, Section 3.6) and mask mode.

Paired mode: composites of held-out pairs, ground truth = the synthetic regions. The threshold
is chosen on composites of the validation pairs and applied to the test composites. Two
composite sets are scored: with shortcut controls (blended edges, both sources re-encoded
alike) and without (hard edges, files as stored). Every set is saved to disk so that other
tools can be scored on exactly the same images.

Mask mode: any folder of images with binary ground-truth masks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fakeseg.data.composites import CompositeItem, composite_set
from fakeseg.data.pairs import LoadedPair
from fakeseg.errors import FakesegError
from fakeseg.evaluation import metrics as M
from fakeseg.inference.localizer import DECISION_COVERAGE
from fakeseg.io import write_image, write_json
from fakeseg.numbers import at_or_above

Scorer = Callable[[CompositeItem], np.ndarray]


@dataclass
class ProtocolConfig:
    seed: int = 2024
    kinds: tuple[str, ...] = ("rectangles", "blobs", "classwise")
    per_pair: int = 4
    coverage: tuple[float, float] = (0.2, 0.6)
    blend_sigma: float = 2.0
    reencode_quality: int = 90
    max_side: int | None = 512


def protocol_sets(val_pairs: Sequence[LoadedPair], test_pairs: Sequence[LoadedPair],
                  config: ProtocolConfig) -> dict[str, dict[str, list[CompositeItem]]]:
    """{"controlled": {"val": [...], "test": [...]}, "raw": {...}}, all deterministic."""
    def build(pairs: Sequence[LoadedPair], offset: int, controlled: bool) -> list[CompositeItem]:
        return composite_set(
            pairs, seed=config.seed + offset, kinds=config.kinds, per_pair=config.per_pair,
            coverage=config.coverage, blend_sigma=config.blend_sigma if controlled else 0.0,
            reencode_quality=config.reencode_quality if controlled else None,
            max_side=config.max_side)

    return {name: {"val": build(val_pairs, 0, controlled), "test": build(test_pairs, 1,
                                                                          controlled)}
            for name, controlled in (("controlled", True), ("raw", False))}


def save_items(items: Sequence[CompositeItem], folder: Path) -> None:
    """images/, masks/ (0/255) and labels/ so other tools can be scored on the same images."""
    for item in items:
        write_image(folder / "images" / f"{item.name}.png", item.image)
        write_image(folder / "masks" / f"{item.name}.png", item.mask.astype(np.uint8) * 255)
        if item.label is not None:
            write_image(folder / "labels" / f"{item.name}.png", item.label.astype(np.uint8))
    write_json(folder / "manifest.json", [
        {"name": i.name, "pair": i.stem, "kind": i.kind, "coverage": float(i.mask.mean())}
        for i in items])


# ----------------------------------------------------------------------------- scorers

@torch.no_grad()
def probability_map(prob_fn: Callable[[torch.Tensor], torch.Tensor],
                    image: np.ndarray) -> np.ndarray:
    """``prob_fn`` (``(1, 3, H, W) → (1, 1, H, W)`` probabilities) on one (H, W, 3) image, as
    a float32 (H, W) array."""
    from fakeseg.features.target import to_batch

    return prob_fn(to_batch(image))[0, 0].float().cpu().numpy()


def probability_scorer(prob_fn: Callable[[torch.Tensor], torch.Tensor]) -> Scorer:
    """Wrap ``(1, 3, H, W) → (1, 1, H, W)`` probabilities as a scorer of composite items."""
    return lambda item: probability_map(prob_fn, item.image)


def model_scorer(model: Any) -> Scorer:
    """Any loaded segmenter with ``predict_tensor`` (FakeSegment or a baseline)."""
    return probability_scorer(model.predict_tensor)


def constant_scorer(value: float) -> Scorer:
    """The trivial answers: 1.0 = "all synthetic", 0.0 = "all real"."""
    return lambda item: np.full(item.mask.shape, value, dtype=np.float32)


LayerMapCache = dict[str, dict[str, torch.Tensor]]  # composite name → per-layer maps


def _oracle_maps(extractor: torch.nn.Module, item: CompositeItem,
                 cache: LayerMapCache | None) -> dict[str, torch.Tensor]:
    from fakeseg.features.target import pair_layer_maps

    if cache is None:
        return pair_layer_maps(extractor, item.real, item.image)
    if item.name not in cache:
        cache[item.name] = pair_layer_maps(extractor, item.real, item.image)
    return cache[item.name]


def oracle_scorer(extractor: torch.nn.Module, scales: dict[str, float] | None = None, *,
                  cache: LayerMapCache | None = None) -> Scorer:
    """The pair oracle |F(R) − F(C)|: needs the real image, so it is an upper reference.

    ``cache`` (shared with :func:`fit_oracle_scales`) computes each item's maps only once.
    """
    from fakeseg.features.target import heat_map

    def score(item: CompositeItem) -> np.ndarray:
        maps = _oracle_maps(extractor, item, cache)
        return heat_map(maps, item.mask.shape, scales=scales or {k: 1.0 for k in maps})
    return score


def fit_oracle_scales(extractor: torch.nn.Module, items: Sequence[CompositeItem],
                      percentile: float = 99.0, *,
                      cache: LayerMapCache | None = None) -> dict[str, float]:
    from fakeseg.features.target import fit_scales

    return fit_scales([_oracle_maps(extractor, i, cache) for i in items], percentile)


# ----------------------------------------------------------------------------- scoring

def is_mixed(item: CompositeItem) -> bool:
    """Pixel metrics are computed on images that mix real and synthetic content."""
    return item.kind not in ("pure_real", "pure_synthetic")


@dataclass
class MethodScores:
    name: str
    threshold: float
    threshold_source: str
    overall: dict[str, Any]
    per_class: dict[str, dict[str, float]]
    per_kind: dict[str, dict[str, Any]]
    image_level: dict[str, Any]
    fp_real: float | None
    oracle_f1_per_image: float | None
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)
    dice_per_image: list[float] = field(default_factory=list)
    curves: dict[str, Any] = field(default_factory=dict)
    # pair stem → Dice, IoU (micro over its mixed composites), FP real (its pure-real ones)
    per_pair: dict[str, dict[str, float | None]] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("curves", "dice_per_image")}

    @property
    def pixels_defined(self) -> bool:
        """False for a set without synthetic pixels: its pixel metrics are undefined."""
        return PIXELS_UNDEFINED_KEY not in self.overall


PIXELS_UNDEFINED_KEY = "undefined"
PIXELS_UNDEFINED = ("no test image of this set contains synthetic pixels (all real): Dice, "
                    "IoU, pixel accuracy, mIoU and pixel AUC are undefined; FP real and the "
                    "image-level metrics still hold")


def _micro(probs: list[np.ndarray], masks: list[np.ndarray],
           threshold: float) -> dict[str, float | None]:
    report = M.segmentation_report(probs, masks, threshold=threshold)
    return {"dice": report["micro"]["dice"], "iou": report["micro"]["iou"],
            "dice_macro": report["macro_imagewise"]["dice"],
            "iou_macro": report["macro_imagewise"]["iou"],
            "pixel_accuracy": report["micro"]["pixel_accuracy"], "miou": report["micro"]["miou"],
            "pixel_auc": report["micro"]["pixel_auc"], "n_images": report["n_images"]}


def _undefined_pixels() -> dict[str, Any]:
    """``overall`` of a set without synthetic pixels: every pixel metric is None."""
    return {**dict.fromkeys(("dice", "iou", "dice_macro", "iou_macro", "pixel_accuracy", "miou",
                             "pixel_auc")), "n_images": 0, PIXELS_UNDEFINED_KEY: PIXELS_UNDEFINED}


def validation_threshold(scorer: Scorer, val: Sequence[CompositeItem]) -> float:
    """The threshold a method is scored at: micro-F1 optimal on the mixed ``val`` composites."""
    mixed_val = [i for i in val if is_mixed(i)]
    threshold, _ = M.best_threshold([scorer(i) for i in mixed_val], [i.mask for i in mixed_val])
    return float(threshold)


def score_items(name: str, scorer: Scorer, val: Sequence[CompositeItem],
                test: Sequence[CompositeItem], *, threshold: float | None = None,
                class_names: dict[int, str] | None = None,
                allow_all_real: bool = False) -> MethodScores:
    """Score one method: threshold from ``val`` (unless given), metrics on ``test``.

    A ``test`` set without synthetic pixels is an error, unless ``allow_all_real`` (a
    per-source table of mask mode): then the pixel metrics are None, marked undefined.
    """
    started = time.time()
    source = "given"
    if threshold is None:
        threshold = validation_threshold(scorer, val)
        source = "validation composites (micro F1)"
    probs = [scorer(i) for i in test]
    seconds = time.time() - started
    mixed = [(p, i) for p, i in zip(probs, test, strict=True) if is_mixed(i)]
    mixed_probs, mixed_masks = [p for p, _ in mixed], [i.mask for _, i in mixed]
    if not mixed and not allow_all_real:
        raise FakesegError(f"{name}: no test image contains synthetic pixels; add pairs or "
                           "masks with synthetic regions")
    overall = _micro(mixed_probs, mixed_masks, threshold) if mixed else _undefined_pixels()
    per_kind = {kind: _micro([p for p, i in mixed if i.kind == kind],
                             [i.mask for _, i in mixed if i.kind == kind], threshold)
                for kind in sorted({i.kind for _, i in mixed})}
    per_class: dict[str, dict[str, float]] = {}
    labelled = [(p, i.mask, i.label) for p, i in mixed if i.label is not None]
    if mixed and len(labelled) == len(mixed):
        for cls in sorted(set(np.unique(np.concatenate([lab.ravel() for _, _, lab in labelled])))):
            selected = [(p[lab == cls], mask[lab == cls]) for p, mask, lab in labelled
                        if np.any(lab == cls)]
            report = M.segmentation_report([s[0] for s in selected], [s[1] for s in selected],
                                           threshold=threshold)
            label = (class_names or {}).get(int(cls), f"class {int(cls)}")
            per_class[label] = {"dice": report["micro"]["dice"], "iou": report["micro"]["iou"]}
    real_probs = [p for p, i in zip(probs, test, strict=True) if i.kind == "pure_real"]
    per_pair = {stem: _pair_scores([(p, i) for p, i in zip(probs, test, strict=True)
                                    if i.stem == stem], threshold)
                for stem in sorted({i.stem for i in test})}
    image_scores = [float(np.mean(at_or_above(p, threshold))) for p in probs]
    image_labels = [int(i.mask.any()) for i in test]
    return MethodScores(
        name=name, threshold=float(threshold), threshold_source=source, overall=overall,
        per_class=per_class, per_kind=per_kind,
        image_level=M.image_report(np.array(image_scores), np.array(image_labels),
                                   threshold=DECISION_COVERAGE),
        fp_real=M.false_positive_fraction(real_probs, threshold) if real_probs else None,
        oracle_f1_per_image=M.oracle_f1_per_image(mixed_probs, mixed_masks) if mixed else None,
        seconds=seconds,
        dice_per_image=[M.dice(p, m, threshold=threshold) for p, m in zip(
            mixed_probs, mixed_masks, strict=True)],
        curves=M.pixel_curves(mixed_probs, mixed_masks, max_points=400) if mixed else {},
        per_pair=per_pair,
    )


def _pair_scores(scored: Sequence[tuple[np.ndarray, CompositeItem]],
                 threshold: float) -> dict[str, float | None]:
    """One pair's Dice and IoU (micro over its mixed composites) and FP on its pure-real ones."""
    mixed = [(p, i.mask) for p, i in scored if is_mixed(i)]
    real = [p for p, i in scored if i.kind == "pure_real"]
    micro = _micro([p for p, _ in mixed], [m for _, m in mixed], threshold) if mixed else {}
    return {"dice": micro.get("dice"), "iou": micro.get("iou"),
            "fp_real": M.false_positive_fraction(real, threshold) if real else None}

