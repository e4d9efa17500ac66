"""Pixel- and image-level metrics as pure functions (torchmetrics-functional style).

Every function takes numpy arrays (torch tensors are converted with
``np.asarray(x.detach().cpu())``) and returns plain Python floats / dicts, so the
results can be averaged and written to JSON directly.

Conventions
-----------
* A prediction is either a boolean mask (used as is) or an array of scores /
  probabilities that is binarised as ``pred >= threshold`` (default 0.5); this is
  the same ``>=`` rule that scikit-learn's curves use, so a threshold returned by
  :func:`best_threshold` reproduces its F1 exactly.
* A target is a boolean mask; non-boolean targets are positive where ``> 0.5``
  (so 0/1, 0/255 and soft masks all work).
* "Empty" means "no positive pixels".

Pixel-metric edge cases (``tp, fp, fn`` from :func:`confusion_counts`)
----------------------------------------------------------------------

==============  ===================  ============================  ============================
metric          target & pred empty  target empty, pred non-empty  target non-empty, pred empty
==============  ===================  ============================  ============================
dice (= F1)     ``empty_value`` 1.0  0.0                           0.0
iou (Jaccard)   ``empty_value`` 1.0  0.0                           0.0
precision       ``empty_value`` 1.0  0.0                           0.0 (no predicted positives)
recall          ``empty_value`` 1.0  0.0 (no positives to find)    0.0
==============  ===================  ============================  ============================

Otherwise the usual formulas hold: dice = 2tp / (2tp + fp + fn), iou = tp / (tp + fp + fn),
precision = tp / (tp + fp), recall = tp / (tp + fn). No metric ever returns NaN.

Two-class pixel metrics (real = 0 and synthetic = 1 both count):

* ``pixel_accuracy`` = (tp + tn) / all pixels (sklearn ``accuracy_score``); never undefined.
* ``miou`` = mean of the synthetic-class IoU tp / (tp + fp + fn) and the real-class IoU
  tn / (tn + fn + fp). A class absent from both masks scores ``empty_value`` (1.0), which gives
  sklearn's ``jaccard_score(average="macro")`` value (it averages over the classes present).

Other documented values
-----------------------
* :func:`best_threshold` with no positive pixels at all returns
  ``(nextafter(max score, +inf), 1.0)``: the threshold that flags nothing, whose F1 is
  the both-empty value 1.0.
* ``pixel_auc`` (:func:`segmentation_report`) and ``roc_auc`` / ``average_precision`` /
  ``eer`` / ``eer_threshold`` (:func:`image_report`) are ``None`` when only one class
  is present, because they are undefined there.
* :func:`image_report`: precision / recall / f1 are 0.0 when undefined (sklearn
  ``zero_division=0``); with one class present ``balanced_accuracy`` is that class's recall.
* :func:`pixel_curves` returns empty arrays when only one class is present.
* :func:`oracle_f1_per_image`: an image with an empty target contributes 1.0.
* ROC AUC and curves use at most :data:`MAX_AUC_PIXELS` pixels (fixed-seed subsample,
  recorded in the report).
* Empty inputs (no images, no pixels, mismatched lengths or shapes) raise ``ValueError``:
  they are caller errors, not data edge cases.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from fakeseg.numbers import at_or_above
from fakeseg.registry import Registry

__all__ = [
    "DEFAULT_NUM_THRESHOLDS",
    "EXACT_THRESHOLD_MAX_PIXELS",
    "MAX_AUC_PIXELS",
    "METRICS",
    "best_threshold",
    "confusion_counts",
    "dice",
    "false_positive_fraction",
    "get_metric",
    "grouped_image_report",
    "image_report",
    "iou",
    "miou",
    "oracle_f1_per_image",
    "pixel_accuracy",
    "pixel_curves",
    "precision",
    "recall",
    "segmentation_report",
    "threshold_sweep",
]

#: Pixels above this many are subsampled (fixed seed) before ROC AUC / curves.
MAX_AUC_PIXELS = 2_000_000
#: Seed of that deterministic subsample.
AUC_SUBSAMPLE_SEED = 0
#: ``best_threshold(num_thresholds=None)`` is exact up to this many pixels, histogram above.
EXACT_THRESHOLD_MAX_PIXELS = 4_000_000
#: Candidate thresholds of the histogram search used above that (a step of 1/1024 on [0, 1]).
DEFAULT_NUM_THRESHOLDS = 1025

ImageSet = Sequence[Any] | np.ndarray


# --------------------------------------------------------------------------- helpers


def _to_numpy(x: Any) -> np.ndarray:
    """Return ``x`` as a numpy array (torch tensors are detached and moved to CPU)."""
    if hasattr(x, "detach"):
        t = x.detach().cpu()
        if str(getattr(t, "dtype", "")) in {"torch.bfloat16", "torch.float16"}:
            t = t.float()
        return np.asarray(t)
    return np.asarray(x)


def _binarize(pred: Any, threshold: float) -> np.ndarray:
    """Boolean masks pass through; anything else becomes ``pred >= threshold``, compared
    exactly (:func:`~fakeseg.numbers.at_or_above`: NumPy would round the threshold to a
    float32 map's precision, so "the threshold that flags nothing" flagged the top pixel)."""
    p = _to_numpy(pred)
    return p if p.dtype == np.bool_ else at_or_above(p, threshold)


def _as_mask(target: Any) -> np.ndarray:
    """Boolean targets pass through; anything else becomes ``target > 0.5``."""
    t = _to_numpy(target)
    return t if t.dtype == np.bool_ else t > 0.5


def _check_shapes(a: np.ndarray, b: np.ndarray, what: str = "pred and target") -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what} shapes differ: {a.shape} vs {b.shape}")


def _as_image_list(x: Any) -> list[np.ndarray]:
    """A sequence of per-image arrays, a stacked ``(N, H, W)`` array, or one 2-D image."""
    if isinstance(x, list | tuple):
        return [_to_numpy(a) for a in x]
    arr = _to_numpy(x)
    return list(arr) if arr.ndim >= 3 else [arr]


def _paired_images(probs: Any, targets: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
    ps, ts = _as_image_list(probs), _as_image_list(targets)
    if len(ps) != len(ts):
        raise ValueError(f"got {len(ps)} prediction images but {len(ts)} targets")
    if not ps:
        raise ValueError("no images given")
    for i, (p, t) in enumerate(zip(ps, ts, strict=True)):
        _check_shapes(p, t, f"image {i}: prediction and target")
    if sum(p.size for p in ps) == 0:
        raise ValueError("no pixels given")
    return ps, ts


def _sample_pixels(
    probs: list[np.ndarray],
    targets: list[np.ndarray],
    max_pixels: int | None,
    seed: int = AUC_SUBSAMPLE_SEED,
) -> tuple[np.ndarray, np.ndarray]:
    """Flatten all pixels to ``(scores, labels)``; above ``max_pixels`` draw a fixed-seed
    uniform subsample without replacement (without concatenating everything first)."""
    sizes = np.array([p.size for p in probs], dtype=np.int64)
    total = int(sizes.sum())
    if max_pixels is None or total <= max_pixels:
        scores = np.concatenate([_to_numpy(p).ravel() for p in probs]).astype(np.float64)
        labels = np.concatenate([_as_mask(t).ravel() for t in targets])
        return scores, labels
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(total, size=max_pixels, replace=False))
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    bounds = np.searchsorted(idx, offsets)
    s_parts, l_parts = [], []
    for i, (p, t) in enumerate(zip(probs, targets, strict=True)):
        local = idx[bounds[i] : bounds[i + 1]] - offsets[i]
        if local.size:
            s_parts.append(p.ravel()[local])
            l_parts.append(_as_mask(t).ravel()[local])
    return np.concatenate(s_parts).astype(np.float64), np.concatenate(l_parts)


# --------------------------------------------------------------------------- counts -> metric


def _dice_from_counts(tp: int, fp: int, fn: int, empty_value: float) -> float:
    denom = 2 * tp + fp + fn
    return float(empty_value) if denom == 0 else 2.0 * tp / denom


def _iou_from_counts(tp: int, fp: int, fn: int, empty_value: float) -> float:
    denom = tp + fp + fn
    return float(empty_value) if denom == 0 else tp / denom


def _precision_from_counts(tp: int, fp: int, fn: int, empty_value: float) -> float:
    if tp + fp == 0:  # nothing predicted: right only if there was nothing to find
        return float(empty_value) if fn == 0 else 0.0
    return tp / (tp + fp)


def _recall_from_counts(tp: int, fp: int, fn: int, empty_value: float) -> float:
    if tp + fn == 0:  # nothing to find: right only if nothing was predicted
        return float(empty_value) if fp == 0 else 0.0
    return tp / (tp + fn)


def _accuracy_from_counts(tp: int, fp: int, fn: int, tn: int) -> float:
    return (tp + tn) / (tp + fp + fn + tn)


def _miou_from_counts(tp: int, fp: int, fn: int, tn: int, empty_value: float) -> float:
    # the real class's IoU is the synthetic formula with the roles swapped: tn, fn, fp
    return (_iou_from_counts(tp, fp, fn, empty_value)
            + _iou_from_counts(tn, fn, fp, empty_value)) / 2.0


def _all_from_counts(tp: int, fp: int, fn: int, tn: int, empty_value: float
                     ) -> dict[str, float]:
    d = _dice_from_counts(tp, fp, fn, empty_value)
    return {
        "dice": d,
        "iou": _iou_from_counts(tp, fp, fn, empty_value),
        "precision": _precision_from_counts(tp, fp, fn, empty_value),
        "recall": _recall_from_counts(tp, fp, fn, empty_value),
        "f1": d,
        "pixel_accuracy": _accuracy_from_counts(tp, fp, fn, tn),
        "miou": _miou_from_counts(tp, fp, fn, tn, empty_value),
    }


# --------------------------------------------------------------------------- pixel metrics


def confusion_counts(
    pred: Any, target: Any, *, threshold: float = 0.5
) -> tuple[int, int, int, int]:
    """Pixel counts ``(tp, fp, fn, tn)`` of a mask (or scores ``>= threshold``) vs a target."""
    p, t = _binarize(pred, threshold), _as_mask(target)
    _check_shapes(p, t)
    tp = int(np.count_nonzero(p & t))
    fp = int(np.count_nonzero(p & ~t))
    fn = int(np.count_nonzero(~p & t))
    return tp, fp, fn, int(p.size) - tp - fp - fn


def dice(pred: Any, target: Any, *, threshold: float = 0.5, empty_value: float = 1.0) -> float:
    """Dice coefficient (= pixel F1); ``empty_value`` when both masks are empty."""
    tp, fp, fn, _ = confusion_counts(pred, target, threshold=threshold)
    return _dice_from_counts(tp, fp, fn, empty_value)


def iou(pred: Any, target: Any, *, threshold: float = 0.5, empty_value: float = 1.0) -> float:
    """Intersection over union (Jaccard); ``empty_value`` when both masks are empty."""
    tp, fp, fn, _ = confusion_counts(pred, target, threshold=threshold)
    return _iou_from_counts(tp, fp, fn, empty_value)


def precision(pred: Any, target: Any, *, threshold: float = 0.5, empty_value: float = 1.0) -> float:
    """Pixel precision; no predicted positives gives ``empty_value`` if the target is empty
    too, else 0.0."""
    tp, fp, fn, _ = confusion_counts(pred, target, threshold=threshold)
    return _precision_from_counts(tp, fp, fn, empty_value)


def recall(pred: Any, target: Any, *, threshold: float = 0.5, empty_value: float = 1.0) -> float:
    """Pixel recall; an empty target gives ``empty_value`` if the prediction is empty too,
    else 0.0."""
    tp, fp, fn, _ = confusion_counts(pred, target, threshold=threshold)
    return _recall_from_counts(tp, fp, fn, empty_value)


def pixel_accuracy(pred: Any, target: Any, *, threshold: float = 0.5,
                   empty_value: float = 1.0) -> float:
    """Share of pixels whose class (real or synthetic) is right; ``empty_value`` is unused
    (accuracy is defined for any non-empty image) and kept for the shared signature."""
    tp, fp, fn, tn = confusion_counts(pred, target, threshold=threshold)
    return _accuracy_from_counts(tp, fp, fn, tn)


def miou(pred: Any, target: Any, *, threshold: float = 0.5, empty_value: float = 1.0) -> float:
    """Mean IoU over the two classes, real and synthetic; a class absent from both masks
    scores ``empty_value``."""
    tp, fp, fn, tn = confusion_counts(pred, target, threshold=threshold)
    return _miou_from_counts(tp, fp, fn, tn, empty_value)


def _float_scores(probs: list[np.ndarray]) -> list[np.ndarray]:
    """Boolean masks as 0/1 scores (the curves sort and subtract them); others unchanged."""
    return [p.astype(np.float64) if p.dtype == np.bool_ else p for p in probs]


def _subsampled_auc(probs: list[np.ndarray], targets: list[np.ndarray]
                    ) -> tuple[float | None, int]:
    """ROC AUC over at most :data:`MAX_AUC_PIXELS` pixels (None with one class), and how many
    pixels it used."""
    scores, labels = _sample_pixels(probs, targets, MAX_AUC_PIXELS)
    two_classes = bool(labels.any() and not labels.all())
    return (float(roc_auc_score(labels, scores)) if two_classes else None), int(scores.size)


def _score_curve(scores: np.ndarray, labels: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct scores descending, true positives, false positives) flagged at each: the one
    sort behind both the exact F1 search and the ROC AUC (sklearn's binary curve)."""
    order = np.argsort(scores, kind="mergesort")[::-1]
    ordered = scores[order]
    last = np.r_[np.flatnonzero(np.diff(ordered)), ordered.size - 1]
    tps = np.cumsum(labels[order], dtype=np.int64)[last]
    return ordered[last], tps, 1 + last - tps


def _best_f1(thresholds: np.ndarray, tps: np.ndarray, fps: np.ndarray) -> tuple[float, float]:
    """The F1-maximising threshold of a :func:`_score_curve` (as ``precision_recall_curve``
    computes precision and recall); ties go to the lowest threshold."""
    prec = (tps / (tps + fps))[::-1]
    rec = (tps / tps[-1])[::-1]
    denom = prec + rec
    f1 = np.divide(2 * prec * rec, denom, out=np.zeros_like(denom), where=denom > 0)
    i = int(np.argmax(f1))  # ascending thresholds: the first maximum is the lowest
    return float(thresholds[::-1][i]), float(f1[i])


def _curve_auc(tps: np.ndarray, fps: np.ndarray) -> float | None:
    """ROC AUC of a :func:`_score_curve` (trapezoids from (0, 0)); None with one class."""
    if tps[-1] == 0 or fps[-1] == 0:
        return None
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    return float(np.trapezoid(tpr, fpr))


def _best_threshold_exact(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    return _best_f1(*_score_curve(scores, labels))


def _best_threshold_hist(
    probs: list[np.ndarray], targets: list[np.ndarray], num_thresholds: int
) -> tuple[float, float]:
    lo = min(0.0, min(float(np.min(p)) for p in probs if p.size))
    hi = max(1.0, max(float(np.max(p)) for p in probs if p.size))
    n = num_thresholds - 1
    # lo + (hi - lo) * k / n (not linspace's lo + k * step) keeps edges like 3/10 exact;
    # compare in the scores' own float dtype so "p >= float(edge)" later agrees bit for bit
    dt = np.result_type(*(p.dtype for p in probs))
    dt = dt if dt.kind == "f" else np.dtype(np.float64)
    edges = (lo + (hi - lo) * (np.arange(num_thresholds) / n)).astype(dt)
    pos = np.zeros(num_thresholds, dtype=np.int64)
    cnt = np.zeros(num_thresholds, dtype=np.int64)
    for p, t in zip(probs, targets, strict=True):
        # bin k holds edges[k] <= p < edges[k+1] (last bin: p >= hi), so
        # "p >= edges[k]" <=> "bin >= k" exactly
        b = np.searchsorted(edges[1:], p.ravel().astype(dt, copy=False), side="right")
        m = _as_mask(t).ravel()
        cnt += np.bincount(b, minlength=num_thresholds)
        pos += np.bincount(b[m], minlength=num_thresholds)
    tp = np.cumsum(pos[::-1])[::-1]  # positives flagged at threshold edges[k]
    flagged = np.cumsum(cnt[::-1])[::-1]
    n_pos = tp[0]
    f1 = 2.0 * tp / (flagged + n_pos)  # = 2tp / (2tp + fp + fn); n_pos > 0 here
    k = int(np.argmax(f1))
    return float(edges[k]), float(f1[k])


def best_threshold(
    probs: ImageSet, targets: ImageSet, *, num_thresholds: int | None = None
) -> tuple[float, float]:
    """Threshold maximising micro (dataset-level) pixel F1, and that F1.

    Fit it on the validation split and apply it (``probs >= threshold``) to test.
    ``num_thresholds=None`` searches every distinct score exactly
    (``precision_recall_curve``) up to :data:`EXACT_THRESHOLD_MAX_PIXELS` pixels and falls
    back to a histogram search with :data:`DEFAULT_NUM_THRESHOLDS` candidates above that.
    An int forces the histogram search: that many evenly spaced candidate thresholds from
    ``min(0, lowest score)`` to ``max(1, highest score)`` (both included), counted in one
    streaming pass without concatenating the images. Its F1 is exact for the threshold it
    returns and can miss the optimum only by what lies between two neighbouring candidates.
    Ties go to the lowest threshold. With no positive pixels the result is
    ``(nextafter(max score, inf), 1.0)``.
    """
    ps, ts = _paired_images(probs, targets)
    ps = _float_scores(ps)
    n_pos = sum(int(np.count_nonzero(_as_mask(t))) for t in ts)
    if n_pos == 0:
        top = max(float(np.max(p)) for p in ps if p.size)
        return float(np.nextafter(top, np.inf)), 1.0
    total = sum(p.size for p in ps)
    if num_thresholds is None:
        if total <= EXACT_THRESHOLD_MAX_PIXELS:
            return _best_threshold_exact(*_sample_pixels(ps, ts, max_pixels=None))
        num_thresholds = DEFAULT_NUM_THRESHOLDS
    if num_thresholds < 2:
        raise ValueError(f"num_thresholds must be >= 2, got {num_thresholds}")
    return _best_threshold_hist(ps, ts, num_thresholds)


def threshold_sweep(probs: ImageSet, targets: ImageSet) -> tuple[float, float, float | None]:
    """``(threshold, F1)`` of :func:`best_threshold` and the pixel ROC AUC of
    :func:`segmentation_report`, from one sort of the scores where the exact search applies
    (there the AUC uses every pixel, not a subsample); validation calls this every epoch."""
    ps, ts = _paired_images(probs, targets)
    has_positive = any(np.count_nonzero(_as_mask(t)) for t in ts)
    if not has_positive or sum(p.size for p in ps) > EXACT_THRESHOLD_MAX_PIXELS:
        return (*best_threshold(ps, ts), _subsampled_auc(ps, ts)[0])
    scores, labels = _sample_pixels(_float_scores(ps), ts, None)
    thresholds, tps, fps = _score_curve(scores, labels)
    return (*_best_f1(thresholds, tps, fps), _curve_auc(tps, fps))


def segmentation_report(
    probs: ImageSet, targets: ImageSet, *, threshold: float, empty_value: float = 1.0
) -> dict[str, Any]:
    """Micro (dataset-level counts) and macro image-wise (mean of per-image) pixel metrics.

    Returns ``{"micro": {dice, iou, precision, recall, f1, pixel_accuracy, miou, pixel_auc},
    "macro_imagewise": {dice, iou, precision, recall, f1, pixel_accuracy, miou}, "n_images",
    "threshold",
    "n_pixels", "pixel_auc_n_pixels", "pixel_auc_subsampled"}``. ``f1`` equals ``dice``.
    Per-image edge cases follow the module table (an empty image predicted empty scores
    ``empty_value``). ``pixel_auc`` is ROC AUC over all pixels, computed on a fixed-seed
    subsample of :data:`MAX_AUC_PIXELS` pixels when there are more (recorded in
    ``pixel_auc_n_pixels`` / ``pixel_auc_subsampled``), and ``None`` when only one class is
    present among those pixels.
    """
    ps, ts = _paired_images(probs, targets)
    totals = np.zeros(4, dtype=np.int64)
    per_image: list[dict[str, float]] = []
    for p, t in zip(ps, ts, strict=True):
        counts = confusion_counts(p, t, threshold=threshold)
        totals += counts
        per_image.append(_all_from_counts(*counts, empty_value))
    tp, fp, fn, tn = (int(v) for v in totals)
    micro: dict[str, float | None] = dict(_all_from_counts(tp, fp, fn, tn, empty_value))
    micro["pixel_auc"], auc_pixels = _subsampled_auc(ps, ts)
    macro = {k: float(np.mean([m[k] for m in per_image])) for k in per_image[0]}
    n_pixels = int(sum(p.size for p in ps))
    return {
        "micro": micro,
        "macro_imagewise": macro,
        "n_images": len(ps),
        "threshold": float(threshold),
        "n_pixels": n_pixels,
        "pixel_auc_n_pixels": auc_pixels,
        "pixel_auc_subsampled": auc_pixels < n_pixels,
    }


def oracle_f1_per_image(
    probs: ImageSet, targets: ImageSet, *, num_thresholds: int | None = None
) -> float:
    """Per-image ORACLE F1: mean over images of each image's own best-threshold F1.

    Optimistic (the threshold is tuned on each test image's ground truth), reported by
    some peers; use it only for comparison with them, never as the headline number.
    An image with an empty target scores 1.0 (its oracle flags nothing).
    """
    ps, ts = _paired_images(probs, targets)
    return float(
        np.mean(
            [
                best_threshold(p, t, num_thresholds=num_thresholds)[1]
                for p, t in zip(ps, ts, strict=True)
            ]
        )
    )


def false_positive_fraction(probs_on_real_images: ImageSet, threshold: float) -> float:
    """Fraction of pixels flagged (``>= threshold``) over images with no synthetic pixels.

    Pixel-weighted over all the given images; 0.0 means no false alarm anywhere.
    """
    ps = _as_image_list(probs_on_real_images)
    total = sum(p.size for p in ps)
    if total == 0:
        raise ValueError("no pixels given")
    flagged = sum(int(np.count_nonzero(_binarize(p, threshold))) for p in ps)
    return flagged / total


def _thin(n: int, max_points: int) -> np.ndarray:
    """Evenly spaced indices into ``range(n)``, at most ``max_points``, endpoints kept."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))


def pixel_curves(probs: ImageSet, targets: ImageSet, max_points: int = 2000) -> dict[str, Any]:
    """Pixel ROC (``fpr``, ``tpr``) and PR (``precision``, ``recall``) curves for plotting.

    Each curve is thinned to at most ``max_points`` points (endpoints kept); pixels are
    subsampled as in :func:`segmentation_report`. With only one class present all four
    arrays are empty. ``n_pixels`` is the number of pixels the curves were computed on.
    """
    if max_points < 2:
        raise ValueError(f"max_points must be >= 2, got {max_points}")
    ps, ts = _paired_images(probs, targets)
    scores, labels = _sample_pixels(ps, ts, MAX_AUC_PIXELS)
    empty = np.zeros(0, dtype=np.float64)
    out: dict[str, Any] = {
        "fpr": empty,
        "tpr": empty,
        "precision": empty,
        "recall": empty,
        "n_pixels": int(scores.size),
    }
    if labels.any() and not labels.all():
        fpr, tpr, _ = roc_curve(labels, scores)
        prec, rec, _ = precision_recall_curve(labels, scores)
        i, j = _thin(fpr.size, max_points), _thin(prec.size, max_points)
        out.update(fpr=fpr[i], tpr=tpr[i], precision=prec[j], recall=rec[j])
    return out


# --------------------------------------------------------------------------- image level


def _eer(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """Equal error rate (FPR = FNR, linearly interpolated on the ROC) and the ROC
    threshold whose operating point is nearest to it."""
    fpr, tpr, thr = roc_curve(labels, scores, drop_intermediate=False)
    fnr = 1.0 - tpr
    d = fnr - fpr  # starts at +1 (flag nothing), ends at -1 (flag everything)
    i = int(np.argmax(d <= 0))
    if d[i] == 0 or i == 0:
        eer = float(fpr[i])
    else:
        a = d[i - 1] / (d[i - 1] - d[i])
        eer = float(fpr[i - 1] + a * (fpr[i] - fpr[i - 1]))
    finite = np.isfinite(thr)
    k = int(np.argmin(np.where(finite, np.abs(d), np.inf)))
    return eer, float(thr[k])


def image_report(scores: Any, labels: Any, *, threshold: float = 0.5) -> dict[str, Any]:
    """Image-level detection metrics (label 1 = synthetic, predicted as ``score >= threshold``).

    Keys: accuracy, precision, recall, f1, balanced_accuracy, roc_auc, average_precision,
    eer, eer_threshold, threshold, n, n_positive. precision / recall / f1 are 0.0 when
    undefined (sklearn ``zero_division=0``); with one class present balanced_accuracy is
    that class's recall, and roc_auc, average_precision, eer and eer_threshold are ``None``.
    """
    s = _to_numpy(scores).astype(np.float64).ravel()
    y = _to_numpy(labels).ravel()
    if s.shape != y.shape:
        raise ValueError(f"got {s.size} scores but {y.size} labels")
    if s.size == 0:
        raise ValueError("no images given")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0 (real) or 1 (synthetic), got {np.unique(y)}")
    y = y.astype(np.int64)
    pred = (s >= threshold).astype(np.int64)
    n_pos = int(y.sum())
    two_classes = 0 < n_pos < y.size
    with warnings.catch_warnings():  # single-class balanced accuracy warns; value documented
        warnings.simplefilter("ignore")
        bal = float(balanced_accuracy_score(y, pred))
    out: dict[str, Any] = {
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "balanced_accuracy": bal,
        "roc_auc": None,
        "average_precision": None,
        "eer": None,
        "eer_threshold": None,
        "threshold": float(threshold),
        "n": int(y.size),
        "n_positive": n_pos,
    }
    if two_classes:
        eer, eer_thr = _eer(y, s)
        out.update(
            roc_auc=float(roc_auc_score(y, s)),
            average_precision=float(average_precision_score(y, s)),
            eer=eer,
            eer_threshold=eer_thr,
        )
    return out


def grouped_image_report(
    scores: Any, labels: Any, groups: Sequence[str], *, threshold: float = 0.5
) -> dict[str, dict[str, Any]]:
    """:func:`image_report` per group (e.g. source / generator, sorted by name) plus
    ``"all"``. Single-class groups get ``None`` for the ranking metrics."""
    s = _to_numpy(scores).ravel()
    y = _to_numpy(labels).ravel()
    g = np.asarray([str(x) for x in groups], dtype=object)
    if not (s.size == y.size == g.size):
        raise ValueError(f"got {s.size} scores, {y.size} labels and {g.size} groups")
    if "all" in set(g.tolist()):
        raise ValueError("group name 'all' is reserved for the overall report")
    out = {
        name: image_report(s[g == name], y[g == name], threshold=threshold)
        for name in sorted(set(g.tolist()))
    }
    out["all"] = image_report(s, y, threshold=threshold)
    return out


# --------------------------------------------------------------------------- registry

#: Pixel metrics by name; all share ``(pred, target, *, threshold, empty_value) -> float``.
METRICS: Registry[Callable[..., float]] = Registry("metric")
for _name, _metric in (("dice", dice), ("iou", iou), ("precision", precision),
                       ("recall", recall), ("pixel_accuracy", pixel_accuracy), ("miou", miou)):
    METRICS.register(_name, _metric)


def get_metric(name: str) -> Callable[..., float]:
    """Look a pixel metric up by name; unknown names raise :class:`FakesegError`."""
    return METRICS[name]
