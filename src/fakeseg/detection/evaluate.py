"""Evaluating and applying image-level detectors: ``classify eval`` and ``classify predict``.

Any detection method's run (``classify train --method``) is scored at native resolution;
``scorer="heatmap"`` scores images by the share of pixels a FakeSegment heat map flags (the
MediaEval team's Task B decision rule).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fakeseg.config import versions
from fakeseg.data.labeled import DEFAULT_SOURCE_PATTERN, ImageCache, LabeledImage, load_labeled
from fakeseg.data.shortcuts import warn_shortcuts
from fakeseg.device import resolve_device
from fakeseg.errors import FakesegError, Skipped
from fakeseg.evaluation.metrics import grouped_image_report, image_report
from fakeseg.inference.classifier import predict_probabilities
from fakeseg.inference.localizer import DECISION_COVERAGE
from fakeseg.io import check_output_dir, expand_inputs, write_csv, write_json, write_text
from fakeseg.models.checkpoint import resolve_checkpoint
from fakeseg.numbers import fmt
from fakeseg.progress import progress_bar, warn

SCORERS = ("model", "heatmap")


def _image_paths(images: Sequence[str | Path] | str | Path) -> list[Path]:
    if isinstance(images, str | Path):
        images = [images]
    return expand_inputs([str(p) for p in images])


def heatmap_scores(fakesegment_run: str | Path | Any, images: Sequence[str | Path], *,
                   device: str = "auto", progress: bool = True) -> np.ndarray:
    """Model-free image scores: the share of pixels a FakeSegment heat map flags
    (``HeatMap.score``), the MediaEval team's Task B decision rule. ``fakesegment_run`` is a
    run / checkpoint folder or a loaded :class:`~fakeseg.inference.localizer.Localizer`."""
    from fakeseg.inference.localizer import Localizer

    model = (fakesegment_run if isinstance(fakesegment_run, Localizer)
             else Localizer.load(fakesegment_run, device=device))
    return np.array([model.predict(Path(p)).score
                     for p in progress_bar(images, desc="heat maps", unit="img",
                                          enabled=progress)], dtype=np.float64)


_METRIC_COLUMNS = (("accuracy", "accuracy"), ("precision", "precision"), ("recall", "recall"),
                   ("f1", "F1"), ("roc_auc", "ROC AUC"), ("average_precision", "AP"),
                   ("balanced_accuracy", "balanced acc."), ("eer", "EER"))


def metrics_table(reports: dict[str, dict[str, Any]], first: str = "group") -> str:
    """A Markdown table with one row per report (n, positives and the image metrics)."""
    head = [first, "n", "n synthetic", *(label for _, label in _METRIC_COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, report in reports.items():
        cells = [name, str(report["n"]), str(report["n_positive"]),
                 *(fmt(report.get(key)) for key, _ in _METRIC_COLUMNS)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _seen_in_training(folder: Path, paths: Sequence[Path]) -> int:
    split = folder.parent / "split.json"
    if not split.exists():
        return 0
    try:
        payload = json.loads(split.read_text())
        seen = {str(Path(r["path"]).resolve()) for r in payload["train"] + payload["val"]}
    except (ValueError, KeyError, TypeError):
        return 0
    return sum(str(p.resolve()) in seen for p in paths)


def _run_scores(run: str | Path, paths: Sequence[Path], *, batch_size: int, device: str,
                progress: bool) -> tuple[np.ndarray, dict[str, Any], Path, Any]:
    """(P(synthetic), checkpoint meta, checkpoint folder, scorer) for any detection method's
    run (``fakeseg.detection``), scored at native resolution; a classifier trained on resized
    images is scored on resized images."""
    from fakeseg.detection import load_scorer
    from fakeseg.detection.cnn import CNNScorer

    folder = resolve_checkpoint(run)
    meta = json.loads((folder / "model.json").read_text())
    detector = load_scorer(folder)
    if meta.get("fit") == "resize" and isinstance(detector, CNNScorer):
        scores = predict_probabilities(detector.model, paths, size=int(meta["size"]),
                                       fit="resize", batch_size=batch_size,
                                       device=resolve_device(device), progress=progress)
    else:
        scores = detector.score(paths, progress=progress)
    return scores, meta, folder, detector


@dataclass
class DetectionEvaluation:
    """Image-level detection metrics of one scorer on labelled images
    (:func:`evaluate_detection`); :func:`save_detection_evaluation` writes them."""

    scorer: str  # "model" or "heatmap"
    scorer_description: str
    run: str
    data: str
    threshold: float
    score_name: str  # the score's column: probability_synthetic or flagged_fraction
    items: list[LabeledImage]
    scores: np.ndarray
    overall: dict[str, Any]  # image_report over every image
    per_source: dict[str, dict[str, Any]] | None  # image_report per source, with "all"
    n_seen_in_training: int
    source_pattern: str | None
    config: dict[str, Any] | None
    seed: int | None
    shortcuts: list[str] = field(default_factory=list)  # fakeseg.data.shortcuts messages

    @property
    def n(self) -> int:
        return len(self.items)

    def to_json(self) -> dict[str, Any]:
        """``metrics.json`` (without the per-image scores, which go to predictions.csv)."""
        return {
            "scorer": self.scorer, "scorer_description": self.scorer_description,
            "run": self.run, "data": self.data, "threshold": self.threshold,
            "score": self.score_name, "n": self.n,
            "n_seen_in_training": self.n_seen_in_training, "overall": self.overall,
            "per_source": self.per_source, "source_pattern": self.source_pattern,
            "config": self.config, "seed": self.seed, "shortcuts": self.shortcuts,
            "versions": versions(),
        }


def evaluate_detection(
    run: str | Path,
    data: str | Path | Sequence[LabeledImage],
    *,
    scorer: str = "model",
    threshold: float | None = None,
    source_pattern: str | None = DEFAULT_SOURCE_PATTERN,
    batch_size: int = 16,
    device: str = "auto",
    progress: bool = True,
) -> DetectionEvaluation:
    """Image-level detection metrics of a scorer on labelled ``data``.

    ``scorer="model"``: ``run`` is a run of any detection method (``classify train
    --method``); the score is P(synthetic) at native resolution, threshold 0.5.
    ``scorer="heatmap"``: ``run`` is a FakeSegment run; the score is the flagged-pixel fraction
    of its heat map, threshold :data:`DECISION_COVERAGE`. Metrics are :func:`image_report`
    overall and per source.
    """
    if scorer not in SCORERS:
        raise FakesegError(f"unknown scorer '{scorer}'; use model or heatmap")
    items = load_labeled(data, source_pattern=source_pattern)
    shortcuts = warn_shortcuts(items, data)
    paths = [i.path for i in items]
    labels = np.array([i.label for i in items], dtype=np.int64)
    seen = 0
    if scorer == "model":
        scores, meta, folder, detector = _run_scores(run, paths, batch_size=batch_size,
                                                     device=device, progress=progress)
        thr = float(meta.get("threshold", 0.5)) if threshold is None else float(threshold)
        config = meta.get("config") or meta.get("options")
        seen = _seen_in_training(folder, paths)
        described = f"{detector.describe()}, {folder}"
        score_name = "probability_synthetic"
    else:
        from fakeseg.inference.localizer import Localizer

        segmenter = Localizer.load(run, device=device)
        scores = heatmap_scores(segmenter, paths, progress=progress)
        thr = DECISION_COVERAGE if threshold is None else float(threshold)
        config = segmenter.meta.get("config")
        described = (f"FakeSegment heat-map coverage (pixel threshold "
                     f"{segmenter.threshold:.3f}), {run}")
        score_name = "flagged_fraction"
    sources = [i.source for i in items]
    per_source = None
    if any(s is not None for s in sources):
        per_source = grouped_image_report(scores, labels, [s or "unknown" for s in sources],
                                          threshold=thr)
    return DetectionEvaluation(
        scorer=scorer, scorer_description=described, run=str(run),
        data=str(data) if isinstance(data, str | Path) else "list", threshold=thr,
        score_name=score_name, items=list(items), scores=np.asarray(scores),
        overall=image_report(scores, labels, threshold=thr), per_source=per_source,
        n_seen_in_training=seen, source_pattern=source_pattern, config=config,
        seed=(config or {}).get("seed"), shortcuts=shortcuts)


def save_detection_evaluation(result: DetectionEvaluation, out: str | Path) -> Path:
    """Write ``metrics.json``, ``metrics.md`` and ``predictions.csv`` into ``out``; returns
    the metrics.json path."""
    out_dir = Path(out)
    rows = [[str(i.path), i.label, i.source or "", f"{score:.6f}"]
            for i, score in zip(result.items, result.scores, strict=True)]
    predictions = write_csv(out_dir / "predictions.csv",
                             ["image", "label", "source", result.score_name], rows)
    metrics = write_json(out_dir / "metrics.json",
                         {**result.to_json(), "predictions": str(predictions)})
    n_synthetic = sum(i.label for i in result.items)
    lines = [f"# Detection metrics: {result.scorer} scorer", "",
             f"- scorer: {result.scorer_description}",
             f"- data: {result.data} ({result.n} images, {n_synthetic} synthetic)",
             f"- decision: {result.score_name} ≥ {result.threshold:g}"]
    lines += [f"- **warning**: {message}" for message in result.shortcuts]
    if result.n_seen_in_training:
        lines.append(f"- **warning**: {result.n_seen_in_training} of these images were used "
                     "in training or validation; these numbers are not a held-out estimate")
    per_source = result.per_source
    lines += ["", metrics_table({"all": result.overall} if per_source is None else per_source,
                                "source" if per_source else "group"), ""]
    write_text(out_dir / "metrics.md", "\n".join(lines))
    return metrics


@dataclass
class DetectorPredictions:
    """``classify predict``'s output: P(synthetic) per readable image, and what was skipped."""

    csv: Path
    model: Path
    paths: list[Path]
    probabilities: np.ndarray
    threshold: float
    skipped: list[Skipped]  # the unreadable inputs

    @property
    def n(self) -> int:
        return len(self.paths)

    @property
    def n_flagged(self) -> int:
        return int((self.probabilities >= self.threshold).sum())


def classify_predict(run: str | Path, images: Sequence[str | Path] | str | Path,
                     out: str | Path, *, batch_size: int = 16, device: str = "auto",
                     progress: bool = True) -> DetectorPredictions:
    """Write ``OUT/predictions.csv`` (image, probability_synthetic) for files/folders/globs."""
    out = check_output_dir(out)
    checked = ImageCache(0)
    paths: list[Path] = []
    skipped: list[Skipped] = []
    for path in _image_paths(images):  # one unreadable file is named and skipped, not fatal
        try:
            checked.get(path)
        except FakesegError as exc:
            skipped.append(Skipped(str(path), str(exc)))
            warn(f"fakeseg: skipped: {skipped[-1]}")
            continue
        paths.append(path)
    probs, meta, folder, _ = _run_scores(run, paths, batch_size=batch_size, device=device,
                                         progress=progress)
    names = meta.get("class_names", ["real", "synthetic"])
    column = "probability_synthetic" if names[1] in ("synthetic", "fake") else \
        f"probability_{names[1]}"
    target = write_csv(Path(out) / "predictions.csv", ["image", column],
                        [[str(p), f"{prob:.6f}"] for p, prob in zip(paths, probs, strict=True)])
    return DetectorPredictions(csv=target, model=Path(folder), paths=paths,
                               probabilities=np.asarray(probs),
                               threshold=float(meta.get("threshold", 0.5)), skipped=skipped)

