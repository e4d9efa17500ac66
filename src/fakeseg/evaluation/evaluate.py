"""``fakeseg evaluate``: the composite protocol on a paired folder, or mask mode.

One function per mode computes an :class:`Evaluation` and writes nothing
(:func:`evaluate_pairs`, :func:`evaluate_masks`); :func:`save_evaluation` writes
``metrics.json`` (values + config + versions + seed), ``metrics.md``, PR/ROC curves, a Dice
histogram and a gallery of the worst test images (``failures_*.png``).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps

from fakeseg.config import versions
from fakeseg.data.composites import CompositeItem
from fakeseg.data.masked import MaskOptions, index_masked, load_masked
from fakeseg.data.pairs import class_names, index_pairs, load_pair
from fakeseg.data.sources import check_source_pattern, source_of
from fakeseg.errors import DataError
from fakeseg.evaluation.failures import FailureGallery, draw_failures, failure_cases
from fakeseg.evaluation.protocol import (
    PIXELS_UNDEFINED,
    MethodScores,
    ProtocolConfig,
    constant_scorer,
    is_mixed,
    model_scorer,
    protocol_sets,
    save_items,
    score_items,
)
from fakeseg.inference.localizer import DECISION_COVERAGE
from fakeseg.io import write_json, write_text
from fakeseg.numbers import fmt
from fakeseg.progress import progress_bar
from fakeseg.viz import new_figure, save_figure

TRIVIAL = (("all synthetic", 1.0), ("all real", 0.0))
SECTION_TITLES = {"controlled": "composites, with shortcut controls",
                  "raw": "composites, no controls (hard edges, files as stored)"}
ALL_IMAGES = "all images"
SOURCE_PREFIX = "source: "
UNDEFINED_CELL = "undefined†"
PIXEL_NOTE = ("Dice/IoU: micro (dataset-level) at the threshold `thr` (chosen on validation "
              "composites unless given; Dice = F1_th, the pixel F1 at `thr`); 'avg' is the mean "
              "over classes when labels exist. pixel acc: share of pixels whose class (real or "
              "synthetic) is right; mIoU: mean of the real-class and the synthetic-class IoU. "
              "Dice img-mean: macro image-wise. F1 oracle/img: per-image oracle threshold "
              "(optimistic, for comparison with peers only). FP real: share of pixels flagged "
              "on pure-real images.")


def trivial_rows(test: Sequence[CompositeItem],
                 class_names: dict[int, str] | None = None) -> list[MethodScores]:
    """The floors every table carries: answering "all synthetic" or "all real"."""
    return [score_items(label, constant_scorer(value), [], test, threshold=0.5,
                        class_names=class_names) for label, value in TRIVIAL]


def markdown_table(results: Sequence[MethodScores], extra_columns: Sequence[str] = ()) -> str:
    """The paper's Table 1 shape: Dice and IoU per class plus average, then more columns.

    A row whose set has no synthetic pixels says so in each pixel-metric cell."""
    classes = sorted({c for r in results for c in r.per_class})
    head = ["method", "thr"]
    head += [f"Dice {c}" for c in classes] + ["Dice avg", "IoU avg", "pixel acc", "mIoU"]
    head += ["Dice img-mean", "F1 oracle/img", "pixel AUC", "FP real", "img AUC", "s"]
    head += list(extra_columns)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        cells = [r.name, fmt(r.threshold, 2)]
        if not r.pixels_defined:
            cells += [UNDEFINED_CELL] * (len(classes) + 7)
        else:
            cells += [fmt(r.per_class.get(c, {}).get("dice")) for c in classes]
            if classes:
                cells += [fmt(float(np.mean([r.per_class[c]["dice"] for c in classes]))),
                          fmt(float(np.mean([r.per_class[c]["iou"] for c in classes])))]
            else:
                cells += [fmt(r.overall["dice"]), fmt(r.overall["iou"])]
            cells += [fmt(r.overall.get("pixel_accuracy")), fmt(r.overall.get("miou")),
                      fmt(r.overall["dice_macro"]), fmt(r.oracle_f1_per_image),
                      fmt(r.overall["pixel_auc"])]
        cells += [fmt(r.fp_real), fmt(r.image_level.get("roc_auc")), fmt(r.seconds, 1)]
        cells += [fmt(r.extra.get(c)) for c in extra_columns]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [PIXEL_NOTE]
    if not all(r.pixels_defined for r in results):
        notes.append(f"† {PIXELS_UNDEFINED}.")
    return "\n".join(lines) + "\n\n" + "\n\n".join(notes) + "\n"


def detection_table(sections: dict[str, list[MethodScores]]) -> str:
    """Image-level detection grouped by set (by source, in mask mode) × method."""
    by_source = any(s.startswith(SOURCE_PREFIX) for s in sections)
    group = "source" if by_source else "set"
    head = [group, "method", "images", "synthetic", "balanced acc", "AUC", "F1", "EER"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for section, results in sections.items():
        for r in results:
            level = r.image_level
            lines.append("| " + " | ".join([
                section.removeprefix(SOURCE_PREFIX), r.name, fmt(level.get("n")),
                fmt(level.get("n_positive")), fmt(level.get("balanced_accuracy")),
                fmt(level.get("roc_auc")), fmt(level.get("f1")), fmt(level.get("eer"))]) + " |")
    note = ("An image is synthetic when it has synthetic pixels; a method calls it synthetic "
            f"when at least {DECISION_COVERAGE:.0%} of its pixels are flagged at the method's "
            "`thr` (balanced accuracy and F1 at that rule; AUC and EER rank the flagged share). "
            "– = undefined (one class only).")
    return (f"## image-level detection by {group} × method\n\n" + "\n".join(lines)
            + "\n\n" + note + "\n")


def _legend(ax: Any) -> None:
    if ax.get_legend_handles_labels()[0]:  # a set without synthetic pixels draws no curve
        ax.legend(fontsize=7)


def plot_curves(results: Sequence[MethodScores], path: Path, title: str) -> Path:
    fig = new_figure(10, 4.2)
    roc, pr = fig.subplots(1, 2)
    colours = [tuple(c) for c in colormaps["tab20"](np.arange(20))]  # tab20's 20 colours
    for ax in (roc, pr):  # distinct colours for up to 20 methods
        ax.set_prop_cycle(color=colours[::2] + colours[1::2])
    prevalence, constant = None, []
    for r in results:
        curves = r.curves
        if not curves or len(curves.get("fpr", [])) == 0:
            continue
        roc.plot(curves["fpr"], curves["tpr"], label=f"{r.name} ({fmt(r.overall['pixel_auc'])})")
        recall, precision = np.asarray(curves["recall"]), np.asarray(curves["precision"])
        prevalence = float(precision[0])  # the curve starts at recall 1: every pixel flagged
        if len(recall) <= 2:  # a constant score has no curve: one operating point
            constant.append(r)
            continue
        # sklearn's step-wise average precision, over the plotted (thinned) curve: hence ≈
        ap = float(-np.sum(np.diff(recall) * precision[:-1]))
        pr.plot(recall, precision, label=f"{r.name} (AP ≈ {ap:.3f})")
    if prevalence is not None:
        names = ", ".join(r.name for r in constant) or "any constant score"
        pr.axhline(prevalence, color="grey", lw=0.8, ls="--",
                   label=f"prevalence {prevalence:.3f} = AP of {names}")
        for r in constant:
            if r.overall["dice"] > 0:  # flags every pixel: recall 1 at the prevalence
                pr.plot([1.0], [prevalence], "x", ms=8, mew=2,
                        label=f"{r.name} at thr {fmt(r.threshold, 2)}")
    roc.plot([0, 1], [0, 1], color="grey", lw=0.5, ls="--")
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title="pixel ROC")
    pr.set(xlabel="recall", ylabel="precision", title="pixel precision-recall",
           xlim=(-0.02, 1.02), ylim=(0, 1.02))
    _legend(roc)
    _legend(pr)
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_dice_histogram(results: Sequence[MethodScores], path: Path, title: str) -> Path:
    fig = new_figure(6, 3.6)
    ax = fig.subplots()
    bins = np.linspace(0, 1, 21).tolist()
    for r in results:
        if r.dice_per_image:
            ax.hist(r.dice_per_image, bins=bins, alpha=0.5, label=r.name)
    ax.set(xlabel="Dice per image (at thr)", ylabel="images", title=title)
    _legend(ax)
    return save_figure(fig, path)


def section_slug(section: str) -> str:
    """A section title as a file-name part: "composites, with …" → "composites_with_…"."""
    return re.sub(r"[^a-z0-9]+", "_", section.lower()).strip("_")


@dataclass
class Evaluation:
    """What :func:`evaluate_pairs`, :func:`evaluate_masks` and ``benchmark`` compute;
    :func:`save_evaluation` writes it.

    ``sections``: table title → one :class:`MethodScores` per method. ``galleries``: file slug
    → the material of ``failures_<slug>.png``. ``composites``: test composites, saved under
    ``composites/<name>/`` so other tools can be scored on exactly them. ``reported``: figures
    quoted from a paper (other data), written apart from ours.
    """

    sections: dict[str, list[MethodScores]]
    meta: dict[str, Any]
    galleries: dict[str, FailureGallery] = field(default_factory=dict)
    composites: dict[str, list[CompositeItem]] = field(default_factory=dict)
    extra_columns: tuple[str, ...] = ()
    reported: dict[str, Any] | None = None

    def rows(self) -> dict[str, list[dict[str, Any]]]:
        """metrics.json's ``results``: section → one JSON row per method."""
        return {s: [r.row() for r in rs] for s, rs in self.sections.items()}

    def method(self, name: str, section: str | None = None) -> MethodScores:
        """One method's scores, in ``section`` (default: the first)."""
        rows = self.sections[section or next(iter(self.sections))]
        return next(r for r in rows if r.name == name)


def reported_markdown(reported: dict[str, Any]) -> str:
    """A paper's own figures under a heading that says they are not ours."""
    columns = list(reported["columns"])
    lines = [f"## {reported['title']}\n", reported["note"] + "\n",
             "| " + " | ".join(["method", *columns]) + " |", "|" + "---|" * (len(columns) + 1)]
    for row in reported["rows"]:
        lines.append("| " + " | ".join([row["method"], *(fmt(row.get(c), 2) for c in columns)])
                     + " |")
    return "\n".join(lines) + "\n"


def save_evaluation(result: Evaluation, out: str | Path) -> dict[str, Path]:
    """metrics.json, metrics.md, one curves + histogram figure per section, the failure
    galleries and the test composites; returns the files by role."""
    out = Path(out)
    files: dict[str, Path] = {}
    for name, items in result.composites.items():
        save_items(items, out / "composites" / name)
    for slug, gallery in result.galleries.items():
        files[f"failures_{slug}"] = draw_failures(gallery, out / f"failures_{slug}.png")
    markdown = [f"# {result.meta.get('title', 'fakeseg evaluation')}\n"]
    for section, results in result.sections.items():
        markdown += [f"## {section}\n", markdown_table(results, result.extra_columns)]
        slug = section_slug(section)
        files[f"curves_{slug}"] = plot_curves(results, out / f"curves_{slug}.png", section)
        files[f"dice_{slug}"] = plot_dice_histogram(results, out / f"dice_hist_{slug}.png",
                                                   section)
    markdown.append(detection_table(result.sections))
    payload = {**result.meta, "versions": versions(), "results": result.rows()}
    if result.reported is not None:
        markdown.append(reported_markdown(result.reported))
        payload["reported_in_paper"] = result.reported
    files["metrics_json"] = write_json(out / "metrics.json", payload)
    files["metrics_md"] = write_text(out / "metrics.md", "\n".join(markdown))
    return files


def _load_model(model: Any, device: str) -> Any:
    from fakeseg.inference.localizer import Localizer

    return model if isinstance(model, Localizer) else Localizer.load(model, device=device)


def _model_name(model: Any) -> str:
    return str(model) if isinstance(model, str | Path) else "in-memory"


def evaluate_pairs(model: Any, data: str | Path, *, protocol: ProtocolConfig | None = None,
                   threshold: float | None = None, device: str = "auto",
                   progress: bool = True) -> Evaluation:
    """The composite protocol on a paired dataset folder (computed, not saved).

    On the model's own training data its test pairs are scored and the threshold is chosen on
    composites of its validation pairs; on another paired folder every pair is scored at the
    checkpoint's threshold. ``threshold`` fixes the threshold instead.
    """
    segmenter = _load_model(model, device)
    data, protocol = Path(data), protocol or ProtocolConfig()
    index = index_pairs(data)
    split = segmenter.meta.get("split") or {}
    same_data = Path(segmenter.meta.get("data", "")).resolve() == data.resolve()
    if same_data:
        val_stems, test_stems = split.get("val", []), split.get("test", [])
        if not test_stems:
            raise DataError(f"{data}: the model's split has no test pairs; retrain with "
                            "test_fraction > 0 or evaluate on another paired folder")
        note = "test pairs of the model's own split; threshold from its validation pairs"
    else:
        val_stems, test_stems = [], index.stems
        note = ("every pair (this dataset was not used for training); threshold from the "
                "checkpoint's validation")
        threshold = segmenter.threshold if threshold is None else threshold
    allow_resize = bool(segmenter.meta.get("config", {}).get("allow_resize", False))
    load = [load_pair(p, allow_resize=allow_resize) for p in progress_bar(
        index.subset(val_stems + test_stems), desc="loading pairs", enabled=progress)]
    by_stem = {p.stem: p for p in load}
    sets = protocol_sets([by_stem[s] for s in val_stems], [by_stem[s] for s in test_stems],
                         protocol)
    if threshold is None and not val_stems:
        threshold = segmenter.threshold
    result = Evaluation({}, {
        "title": f"fakeseg evaluation of {data}", "mode": "paired", "data": str(data),
        "protocol": asdict(protocol), "split_note": note, "val_pairs": val_stems,
        "test_pairs": test_stems, "seed": protocol.seed, "model": _model_name(model)})
    scorer = model_scorer(segmenter)
    for name, parts in sets.items():
        title = SECTION_TITLES[name]
        row = score_items("model", scorer, parts["val"], parts["test"], threshold=threshold,
                          class_names=class_names(data))
        result.galleries[section_slug(title)] = failure_cases(
            [(row, scorer)], parts["test"], oracle_extractor=segmenter.net.feature_extractor)
        result.sections[title] = [row, *trivial_rows(parts["test"], class_names(data))]
        result.composites[name] = parts["test"]
    return result


def _sources(names: Sequence[str], csv_path: str | Path | None,
             pattern: str | None) -> dict[str, str]:
    if csv_path is not None:
        with open(csv_path, newline="") as handle:
            rows = list(csv.reader(handle))
        return {Path(r[0]).stem: r[1] for r in rows if len(r) >= 2 and r[0] != "path"}
    found = {name: source_of(name, pattern) for name in names}
    return {name: source for name, source in found.items() if source is not None}


def evaluate_masks(model: Any, images: str | Path, masks: str | Path, *,
                   threshold: float | None = None, resize_masks: bool = False,
                   invert_masks: bool = False, sources_csv: str | Path | None = None,
                   source_pattern: str | None = None, device: str = "auto",
                   progress: bool = True) -> Evaluation:
    """Any image folder with binary ground-truth masks of the same stems (computed, not saved).

    Masks are 0/1 or 0/255 (``invert_masks``: they mark the real pixels); ``resize_masks``
    resamples masks of another size. With ``sources_csv`` (path,source rows) or
    ``source_pattern`` each source gets its own table; a source whose images are all real
    keeps its row, with the pixel metrics marked undefined.
    """
    check_source_pattern(source_pattern)
    segmenter = _load_model(model, device)
    options = MaskOptions(invert=invert_masks, resize=resize_masks)
    dataset = index_masked(images, masks, options)
    images, masks = dataset.images, dataset.masks
    chosen, note = list(dataset.items), "every image"
    split = segmenter.meta.get("split") or {}
    if Path(segmenter.meta.get("data", "")).resolve() == images.resolve():
        test = set(split.get("test", []))  # the model was trained on this folder
        if not test:
            raise DataError(f"{images}: the model was trained on these images and its split has "
                            "no test images; evaluate on another folder or retrain with "
                            "test_fraction > 0")
        chosen, note = [i for i in chosen if i.stem in test], "test images of the model's split"
    items: list[CompositeItem] = []
    for entry in progress_bar(chosen, desc="loading", enabled=progress):
        loaded = load_masked(entry, options)
        kind = "pure_real" if not loaded.mask.any() else "mask"
        items.append(CompositeItem(entry.stem, entry.stem, kind, loaded.image, loaded.mask,
                                   loaded.image, None))
    thr = segmenter.threshold if threshold is None else threshold
    scorer = model_scorer(segmenter)
    sources = _sources([i.name for i in items], sources_csv, source_pattern)
    everything = score_items("model", scorer, [], items, threshold=thr)
    result = Evaluation({ALL_IMAGES: [everything]}, {
        "title": f"fakeseg evaluation of {images}", "mode": "masks", "images": str(images),
        "masks": str(masks), "threshold": thr, "inverted_masks": invert_masks,
        "resized_masks": resize_masks, "sources": sources, "model": _model_name(model),
        "split_note": note})
    if any(is_mixed(i) for i in items):
        result.galleries[section_slug(ALL_IMAGES)] = failure_cases([(everything, scorer)], items)
    for source in sorted(set(sources.values())):
        subset = [i for i in items if sources.get(i.name) == source]
        result.sections[SOURCE_PREFIX + source] = [
            score_items("model", scorer, [], subset, threshold=thr, allow_all_real=True)]
    return result
