"""Metric functions vs scikit-learn, plus every documented edge case."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    jaccard_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)

from fakeseg.errors import FakesegError
from fakeseg.evaluation import metrics as M

SETTINGS = settings(max_examples=60, deadline=None)

shapes = hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=8)


@st.composite
def mask_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    shape = draw(shapes)
    pred = draw(hnp.arrays(np.bool_, shape))
    target = draw(hnp.arrays(np.bool_, shape))
    return pred, target


@st.composite
def score_sets(draw: st.DrawFn) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A few images of probabilities on a coarse grid (to create ties) and masks."""
    n = draw(st.integers(1, 3))
    probs, targets = [], []
    for _ in range(n):
        shape = draw(shapes)
        probs.append(draw(hnp.arrays(np.int64, shape, elements=st.integers(0, 20))) / 20.0)
        targets.append(draw(hnp.arrays(np.bool_, shape)))
    return probs, targets


def _sk(y: np.ndarray) -> np.ndarray:
    return y.ravel().astype(int)


# --------------------------------------------------------------------------- vs sklearn


@SETTINGS
@given(mask_pairs())
def test_pixel_metrics_match_sklearn(pair: tuple[np.ndarray, np.ndarray]) -> None:
    pred, target = pair
    yt, yp = _sk(target), _sk(pred)
    assert M.dice(pred, target) == pytest.approx(f1_score(yt, yp, zero_division=1.0))
    assert M.iou(pred, target) == pytest.approx(jaccard_score(yt, yp, zero_division=1.0))
    if pred.any():
        assert M.precision(pred, target) == pytest.approx(precision_score(yt, yp))
    if target.any():
        assert M.recall(pred, target) == pytest.approx(recall_score(yt, yp))
    assert M.pixel_accuracy(pred, target) == pytest.approx(accuracy_score(yt, yp))
    assert M.miou(pred, target) == pytest.approx(jaccard_score(yt, yp, average="macro"))
    tp, fp, fn, tn = M.confusion_counts(pred, target)
    assert tp + fp + fn + tn == pred.size
    assert (tp, fp) == (int((pred & target).sum()), int((pred & ~target).sum()))


@SETTINGS
@given(mask_pairs(), st.floats(0.05, 0.95))
def test_probabilities_are_thresholded_with_ge(
    pair: tuple[np.ndarray, np.ndarray], thr: float
) -> None:
    pred, target = pair
    rng = np.random.default_rng(pred.size)
    probs = rng.random(pred.shape)
    probs.flat[0] = thr  # exactly at the threshold counts as positive
    mask = probs >= thr
    for name, fn in M.METRICS.items():
        assert fn(probs, target, threshold=thr) == fn(mask, target), name
    assert M.confusion_counts(probs, target, threshold=thr) == M.confusion_counts(mask, target)


def test_accepts_torch_tensors_and_int_targets() -> None:
    torch = pytest.importorskip("torch")
    probs = torch.tensor([[0.9, 0.2], [0.7, 0.1]], requires_grad=True)
    target = np.array([[1, 0], [0, 255]], dtype=np.uint8)  # non-bool target: > 0.5
    # tp=1 (0.9), fp=1 (0.7), fn=1 (the 255 pixel)
    assert M.confusion_counts(probs, target) == (1, 1, 1, 1)
    assert M.dice(probs.to(torch.bfloat16), torch.from_numpy(target)) == pytest.approx(0.5)


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        M.dice(np.zeros((2, 2), bool), np.zeros((2, 3), bool))


# --------------------------------------------------------------------------- edge cases


EMPTY = np.zeros((3, 3), dtype=bool)
FULL = np.ones((3, 3), dtype=bool)
SOME = np.eye(3, dtype=bool)


@pytest.mark.parametrize(
    ("pred", "target", "expected"),
    [
        # (dice, iou, precision, recall) as in the module docstring table
        (EMPTY, EMPTY, (1.0, 1.0, 1.0, 1.0)),  # both empty -> empty_value
        (SOME, EMPTY, (0.0, 0.0, 0.0, 0.0)),  # target empty, prediction non-empty
        (EMPTY, SOME, (0.0, 0.0, 0.0, 0.0)),  # prediction empty, target non-empty
        (FULL, FULL, (1.0, 1.0, 1.0, 1.0)),  # all-one masks
        (FULL, SOME, (0.5, 1 / 3, 1 / 3, 1.0)),
        (SOME, FULL, (0.5, 1 / 3, 1.0, 1 / 3)),
    ],
)
def test_documented_edge_values(
    pred: np.ndarray, target: np.ndarray, expected: tuple[float, ...]
) -> None:
    got = tuple(M.get_metric(n)(pred, target) for n in ("dice", "iou", "precision", "recall"))
    assert got == pytest.approx(expected)
    assert not any(math.isnan(v) for v in got)


@pytest.mark.parametrize(
    ("pred", "target", "accuracy", "miou"),
    [
        (EMPTY, EMPTY, 1.0, 1.0),  # the synthetic class is absent from both: empty_value
        (FULL, FULL, 1.0, 1.0),  # the real class is absent from both
        (SOME, EMPTY, 6 / 9, (0.0 + 6 / 9) / 2),
        (FULL, SOME, 3 / 9, (1 / 3 + 0.0) / 2),
    ],
)
def test_two_class_metrics_edge_values(pred: np.ndarray, target: np.ndarray, accuracy: float,
                                       miou: float) -> None:
    assert M.pixel_accuracy(pred, target) == pytest.approx(accuracy)
    assert M.miou(pred, target) == pytest.approx(miou)
    assert M.miou(EMPTY, EMPTY, empty_value=0.0) == 0.5  # the real class is still perfect


def test_segmentation_report_two_class_metrics_vs_sklearn() -> None:
    probs, targets = _crafted()
    r = M.segmentation_report(probs, targets, threshold=0.5)
    yt = np.concatenate([t.ravel() for t in targets]).astype(int)
    yp = np.concatenate([(p >= 0.5).ravel() for p in probs]).astype(int)
    assert r["micro"]["pixel_accuracy"] == pytest.approx(accuracy_score(yt, yp))
    assert r["micro"]["miou"] == pytest.approx(jaccard_score(yt, yp, average="macro"))
    per_image = [jaccard_score(t.ravel().astype(int), (p >= 0.5).ravel().astype(int),
                               average="macro") for p, t in zip(probs, targets, strict=True)]
    assert r["macro_imagewise"]["miou"] == pytest.approx(np.mean(per_image))


def test_empty_value_is_configurable() -> None:
    for name in ("dice", "iou", "precision", "recall"):
        assert M.METRICS[name](EMPTY, EMPTY, empty_value=0.0) == 0.0
        assert M.METRICS[name](SOME, SOME, empty_value=0.0) == 1.0


# --------------------------------------------------------------------------- best threshold


def _brute_force(probs: list[np.ndarray], targets: list[np.ndarray]) -> float:
    s = np.concatenate([p.ravel() for p in probs])
    y = np.concatenate([t.ravel() for t in targets]).astype(int)
    return max(f1_score(y, (s >= t).astype(int), zero_division=1.0) for t in np.unique(s))


@SETTINGS
@given(score_sets())
def test_best_threshold_matches_brute_force(data: tuple[list, list]) -> None:
    probs, targets = data
    thr, f1 = M.best_threshold(probs, targets)
    if not any(t.any() for t in targets):
        assert f1 == 1.0
        assert thr > max(p.max() for p in probs)
        assert M.segmentation_report(probs, targets, threshold=thr)["micro"]["f1"] == 1.0
        return
    assert f1 == pytest.approx(_brute_force(probs, targets))
    # the threshold reproduces that F1 when applied with the library's own >= rule
    assert M.segmentation_report(probs, targets, threshold=thr)["micro"]["f1"] == pytest.approx(f1)


@SETTINGS
@given(score_sets(), st.sampled_from([2, 5, 21, 1025]))
def test_best_threshold_histogram_is_exact_at_its_edge(data: tuple[list, list], bins: int) -> None:
    probs, targets = data
    thr, f1 = M.best_threshold(probs, targets, num_thresholds=bins)
    exact_f1 = M.best_threshold(probs, targets)[1]
    assert f1 <= exact_f1 + 1e-12
    assert M.segmentation_report(probs, targets, threshold=thr)["micro"]["f1"] == pytest.approx(f1)
    if bins == 21:  # scores lie on the 1/20 grid, i.e. exactly on the candidates
        assert f1 == pytest.approx(exact_f1)


def test_best_threshold_histogram_agrees_with_sklearn_on_large_input() -> None:
    rng = np.random.default_rng(0)
    targets = [rng.random((64, 64)) < 0.3 for _ in range(4)]
    probs = [np.clip(0.35 * t + rng.normal(0.35, 0.2, t.shape), 0, 1) for t in targets]
    probs = [np.round(p * 300) / 300 for p in probs]  # 301 distinct scores: quick brute force
    thr_e, f1_e = M.best_threshold(probs, targets)
    thr_h, f1_h = M.best_threshold(probs, targets, num_thresholds=1025)
    assert f1_h == pytest.approx(f1_e, abs=2e-3)
    assert abs(thr_h - thr_e) < 0.05
    assert f1_e == pytest.approx(_brute_force(probs, targets))


def _float32_scores(seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Three 32×32 float32 score maps loosely following their random targets."""
    rng = np.random.default_rng(seed)
    targets = [rng.random((32, 32)) < 0.3 for _ in range(3)]
    return [(0.3 * t + 0.7 * rng.random(t.shape)).astype(np.float32) for t in targets], targets


def test_best_threshold_falls_back_to_histogram_on_many_pixels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    probs, targets = _float32_scores(seed=3)
    exact = M.best_threshold(probs, targets)
    monkeypatch.setattr(M, "EXACT_THRESHOLD_MAX_PIXELS", 1000)
    auto = M.best_threshold(probs, targets)
    assert auto == M.best_threshold(probs, targets, num_thresholds=M.DEFAULT_NUM_THRESHOLDS)
    assert auto[1] == pytest.approx(exact[1], abs=5e-3)
    # float32 scores: the returned threshold reproduces the F1 bit for bit
    assert M.segmentation_report(probs, targets, threshold=auto[0])["micro"]["f1"] == auto[1]
    assert M.segmentation_report(probs, targets, threshold=exact[0])["micro"]["f1"] == (
        pytest.approx(exact[1])
    )
    with pytest.raises(ValueError, match="num_thresholds"):
        M.best_threshold(probs, targets, num_thresholds=1)


def _sklearn_best_f1(probs: list[np.ndarray], targets: list[np.ndarray]) -> tuple[float, float]:
    s = np.concatenate([p.ravel() for p in probs]).astype(np.float64)
    y = np.concatenate([t.ravel() for t in targets])
    prec, rec, thr = precision_recall_curve(y, s)
    prec, rec = prec[:-1], rec[:-1]
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros_like(prec), where=prec + rec > 0)
    return float(thr[int(np.argmax(f1))]), float(np.max(f1))


@SETTINGS
@given(score_sets())
def test_threshold_sweep_equals_sklearn_curves(data: tuple[list, list]) -> None:
    """One sort gives precision_recall_curve's best threshold and F1 bit for bit, and
    roc_auc_score over every pixel."""
    probs, targets = data
    threshold, f1, auc = M.threshold_sweep(probs, targets)
    assert (threshold, f1) == M.best_threshold(probs, targets)
    y = np.concatenate([t.ravel() for t in targets])
    if not y.any():
        assert auc is None
        return
    assert (threshold, f1) == _sklearn_best_f1(probs, targets)
    s = np.concatenate([p.ravel() for p in probs]).astype(np.float64)
    if y.all():
        assert auc is None
    else:
        assert auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_threshold_sweep_above_the_exact_limit_is_best_threshold_and_subsampled_auc(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    probs, targets = _float32_scores(seed=4)
    monkeypatch.setattr(M, "EXACT_THRESHOLD_MAX_PIXELS", 1000)
    monkeypatch.setattr(M, "MAX_AUC_PIXELS", 500)
    threshold, f1, auc = M.threshold_sweep(probs, targets)
    assert (threshold, f1) == M.best_threshold(probs, targets)
    assert auc == M.segmentation_report(probs, targets, threshold=0.5)["micro"]["pixel_auc"]


def test_best_threshold_trivial_cases() -> None:
    p = np.array([[0.2, 0.8], [0.4, 0.6]])
    assert M.best_threshold(p, p > 0.5) == (0.6, 1.0)  # perfectly separable
    assert M.best_threshold(p, np.ones_like(p, bool)) == (0.2, 1.0)  # all positive
    thr, f1 = M.best_threshold(p, np.zeros_like(p, bool))  # no positives: flag nothing
    assert f1 == 1.0 and 0.8 < thr < 0.8 + 1e-12
    with pytest.raises(ValueError):
        M.best_threshold([], [])


# --------------------------------------------------------------------------- reports


def _crafted() -> tuple[list[np.ndarray], list[np.ndarray]]:
    # image 1: perfect (tp=2); image 2: all wrong (tp=0, fp=2, fn=1)
    probs = [np.array([[0.9, 0.8], [0.2, 0.1]]), np.array([[0.3, 0.7], [0.6, 0.05]])]
    targets = [np.array([[1, 1], [0, 0]], bool), np.array([[1, 0], [0, 0]], bool)]
    return probs, targets


def test_micro_and_macro_differ_on_crafted_example() -> None:
    probs, targets = _crafted()
    r = M.segmentation_report(probs, targets, threshold=0.5)
    assert r["n_images"] == 2 and r["threshold"] == 0.5 and r["n_pixels"] == 8
    # micro: tp=2, fp=2, fn=1
    micro = r["micro"]
    assert micro["dice"] == pytest.approx(4 / 7) and micro["f1"] == micro["dice"]
    assert micro["iou"] == pytest.approx(2 / 5)
    assert micro["precision"] == pytest.approx(1 / 2)
    assert micro["recall"] == pytest.approx(2 / 3)
    # positives 0.9, 0.8, 0.3 vs five negatives: 5 + 5 + 3 = 13 of 15 pairs ordered right
    assert micro["pixel_auc"] == pytest.approx(13 / 15)
    assert r["pixel_auc_n_pixels"] == 8 and r["pixel_auc_subsampled"] is False
    # macro image-wise: mean of 1 and 0
    for k in ("dice", "iou", "precision", "recall", "f1"):
        assert r["macro_imagewise"][k] == pytest.approx(0.5), k


def test_segmentation_report_edge_cases() -> None:
    probs = [np.full((2, 2), 0.1), np.full((2, 2), 0.2)]
    targets = [np.zeros((2, 2), bool)] * 2
    r = M.segmentation_report(probs, targets, threshold=0.5)
    assert r["micro"]["pixel_auc"] is None  # one class only
    assert r["micro"]["dice"] == 1.0 and r["macro_imagewise"]["dice"] == 1.0
    # stacked (N, H, W) arrays are N images
    r2 = M.segmentation_report(np.stack(probs), np.stack(targets), threshold=0.5)
    assert r2["n_images"] == 2
    with pytest.raises(ValueError, match="2 prediction images but 1"):
        M.segmentation_report(probs, targets[:1], threshold=0.5)


def test_pixel_auc_subsamples_deterministically(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(M, "MAX_AUC_PIXELS", 500)
    rng = np.random.default_rng(1)
    targets = [rng.random((30, 30)) < 0.4 for _ in range(3)]
    probs = [np.clip(0.3 * t + rng.random(t.shape) * 0.7, 0, 1) for t in targets]
    a = M.segmentation_report(probs, targets, threshold=0.5)
    b = M.segmentation_report(probs, targets, threshold=0.5)
    assert a["pixel_auc_subsampled"] is True and a["pixel_auc_n_pixels"] == 500
    assert a["micro"]["pixel_auc"] == b["micro"]["pixel_auc"]
    full = roc_auc_score(
        np.concatenate([t.ravel() for t in targets]), np.concatenate([p.ravel() for p in probs])
    )
    assert a["micro"]["pixel_auc"] == pytest.approx(full, abs=0.08)


def test_oracle_f1_per_image_is_optimistic() -> None:
    probs, targets = _crafted()
    # image 1 is perfectly separable (F1 1); image 2's positive (0.3) ranks 3rd of 4:
    # its best is flagging {0.7, 0.6, 0.3}: F1 = 2 / (2 + 2 + 0) = 0.5
    assert M.oracle_f1_per_image(probs, targets) == pytest.approx(0.75)
    # never below the image-wise mean F1 at any single shared threshold
    for thr in (0.1, 0.5, M.best_threshold(probs, targets)[0]):
        macro = M.segmentation_report(probs, targets, threshold=thr)["macro_imagewise"]
        assert M.oracle_f1_per_image(probs, targets) >= macro["f1"]


def test_false_positive_fraction() -> None:
    real = [np.array([[0.1, 0.6], [0.5, 0.2]]), np.zeros((2, 3))]
    assert M.false_positive_fraction(real, 0.5) == pytest.approx(2 / 10)
    assert M.false_positive_fraction(real, 0.9) == 0.0
    with pytest.raises(ValueError):
        M.false_positive_fraction([], 0.5)


def test_pixel_curves() -> None:
    rng = np.random.default_rng(2)
    targets = [rng.random((40, 40)) < 0.3]
    probs = [np.clip(0.4 * targets[0] + rng.random((40, 40)) * 0.6, 0, 1)]
    c = M.pixel_curves(probs, targets, max_points=50)
    for k in ("fpr", "tpr", "precision", "recall"):
        assert 2 <= c[k].size <= 50, k
    assert (c["fpr"][0], c["tpr"][0], c["fpr"][-1], c["tpr"][-1]) == (0, 0, 1, 1)
    assert np.all(np.diff(c["fpr"]) >= 0) and c["n_pixels"] == 1600
    auc = np.trapezoid(c["tpr"], c["fpr"])
    assert auc == pytest.approx(roc_auc_score(targets[0].ravel(), probs[0].ravel()), abs=0.01)
    one = M.pixel_curves(probs, [np.zeros((40, 40), bool)])
    assert one["fpr"].size == one["precision"].size == 0


# --------------------------------------------------------------------------- image level


@SETTINGS
@given(
    st.lists(st.tuples(st.integers(0, 10), st.booleans()), min_size=1, max_size=30),
    st.sampled_from([0.25, 0.5, 0.75]),
)
def test_image_report_matches_sklearn(rows: list[tuple[int, bool]], thr: float) -> None:
    scores = np.array([r[0] for r in rows]) / 10.0
    labels = np.array([int(r[1]) for r in rows])
    r = M.image_report(scores, labels, threshold=thr)
    pred = (scores >= thr).astype(int)
    assert r["accuracy"] == pytest.approx(accuracy_score(labels, pred))
    assert r["precision"] == pytest.approx(precision_score(labels, pred, zero_division=0))
    assert r["recall"] == pytest.approx(recall_score(labels, pred, zero_division=0))
    assert r["f1"] == pytest.approx(f1_score(labels, pred, zero_division=0))
    assert r["n"] == len(rows) and r["n_positive"] == int(labels.sum())
    assert not math.isnan(r["balanced_accuracy"])
    if 0 < labels.sum() < labels.size:
        assert r["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, pred))
        assert r["roc_auc"] == pytest.approx(roc_auc_score(labels, scores))
        assert r["average_precision"] == pytest.approx(average_precision_score(labels, scores))
        assert 0.0 <= r["eer"] <= 1.0 and r["eer_threshold"] in set(scores)
    else:
        for k in ("roc_auc", "average_precision", "eer", "eer_threshold"):
            assert r[k] is None, k


def test_eer_crafted_cases() -> None:
    # perfectly separable: EER 0 at the lowest synthetic score
    r = M.image_report([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])
    assert r["eer"] == 0.0 and r["eer_threshold"] == 0.8 and r["roc_auc"] == 1.0
    # at 0.6: one of four reals flagged (FPR 1/4), one of four fakes missed (FNR 1/4)
    r = M.image_report([0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9], [0, 0, 0, 0, 1, 1, 1, 1])
    assert r["eer"] == pytest.approx(0.25) and r["eer_threshold"] == 0.6
    # crossing inside an ROC segment: (FPR, FNR) goes (0, 1/2) -> (1, 1/2); EER = 1/2
    r = M.image_report([0.5, 0.3, 0.9], [0, 1, 1])
    assert r["eer"] == pytest.approx(0.5)
    # fully inverted scores: EER 1
    assert M.image_report([0.9, 0.1], [0, 1])["eer"] == pytest.approx(1.0)


def test_image_report_single_class_and_errors() -> None:
    r = M.image_report([0.2, 0.7], [1, 1])
    assert r["recall"] == 0.5 and r["balanced_accuracy"] == 0.5 and r["roc_auc"] is None
    r = M.image_report([0.2, 0.3], [0, 0])
    assert r["precision"] == 0.0 and r["accuracy"] == 1.0 and r["balanced_accuracy"] == 1.0
    with pytest.raises(ValueError, match="0 \\(real\\) or 1"):
        M.image_report([0.1], [2])
    with pytest.raises(ValueError):
        M.image_report([], [])


def test_grouped_image_report() -> None:
    scores = [0.1, 0.6, 0.9, 0.4, 0.8, 0.2]
    labels = [0, 0, 1, 1, 1, 0]
    groups = ["real", "real", "sdxl", "sdxl", "gan", "gan"]
    out = M.grouped_image_report(scores, labels, groups, threshold=0.5)
    assert list(out) == ["gan", "real", "sdxl", "all"]
    assert out["all"] == M.image_report(scores, labels, threshold=0.5)
    assert out["real"]["accuracy"] == 0.5 and out["real"]["roc_auc"] is None
    assert out["sdxl"]["recall"] == 0.5 and out["sdxl"]["n"] == 2
    assert out["gan"]["roc_auc"] == 1.0 and out["gan"]["accuracy"] == 1.0
    with pytest.raises(ValueError, match="reserved"):
        M.grouped_image_report([0.1], [0], ["all"], threshold=0.5)


# --------------------------------------------------------------------------- registry


def test_registry_did_you_mean() -> None:
    assert M.get_metric("dice") is M.dice
    assert set(M.METRICS) == {"dice", "iou", "precision", "recall", "pixel_accuracy", "miou"}
    with pytest.raises(FakesegError, match="unknown metric 'dcie' \\(did you mean 'dice'\\?\\)"):
        M.get_metric("dcie")
    with pytest.raises(FakesegError, match="unknown metric 'zzz'; choose from dice"):
        M.get_metric("zzz")


def test_the_threshold_that_flags_nothing_flags_nothing_on_float32_maps() -> None:
    """best_threshold's answer for a set without positives is just above the top score; NumPy
    rounded it back to that float32 score, so the top pixel counted as flagged."""
    probs = [np.array([[0.2, 0.7]], np.float32)]
    threshold, _ = M.best_threshold(probs, [np.zeros((1, 2), bool)])
    assert M.false_positive_fraction(probs, threshold) == 0.0
    assert M.false_positive_fraction(probs, 0.7) == 0.0  # float32(0.7) < 0.7
