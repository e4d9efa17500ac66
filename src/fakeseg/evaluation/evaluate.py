"""``fakeseg evaluate``: the composite protocol on a paired folder, or mask mode.

Both write ``metrics.json`` (values + config + versions + seed), ``metrics.md``, PR/ROC curves,
a Dice histogram and a gallery of the worst test images (``failures_*.png``).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps

from fakeseg.config import versions
from fakeseg.data.composites import CompositeItem
from fakeseg.data.pairs import class_names, index_pairs, load_pair
from fakeseg.data.sources import check_source_pattern, source_of
from fakeseg.errors import DataError, FakesegError
from fakeseg.evaluation.failures import failure_gallery
from fakeseg.evaluation.protocol import (
    MethodScores,
    ProtocolConfig,
    constant_scorer,
    is_mixed,
    model_scorer,
    protocol_sets,
    save_items,
    score_items,
)
from fakeseg.io import list_images, read_image, read_mask, write_json, write_text
from fakeseg.progress import progress_bar
from fakeseg.viz import new_figure, save_figure

TRIVIAL = (("all synthetic", 1.0), ("all real", 0.0))
SECTION_TITLES = {"controlled": "composites, with shortcut controls",
                  "raw": "composites, no controls (hard edges, files as stored)"}


def trivial_rows(test: Sequence[CompositeItem],
                 class_names: dict[int, str] | None = None) -> list[MethodScores]:
    """The floors every table carries: answering "all synthetic" or "all real"."""
    return [score_items(label, constant_scorer(value), [], test, threshold=0.5,
                        class_names=class_names) for label, value in TRIVIAL]


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(results: Sequence[MethodScores], extra_columns: Sequence[str] = ()) -> str:
    """The paper's Table 1 shape: Dice and IoU per class plus average, then more columns."""
    classes = sorted({c for r in results for c in r.per_class})
    head = ["method", "thr"]
    head += [f"Dice {c}" for c in classes] + ["Dice avg", "IoU avg"]
    head += ["Dice img-mean", "F1 oracle/img", "pixel AUC", "FP real", "img AUC", "s"]
    head += list(extra_columns)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        cells = [r.name, fmt(r.threshold, 2)]
        cells += [fmt(r.per_class.get(c, {}).get("dice")) for c in classes]
        if classes:
            cells += [fmt(float(np.mean([r.per_class[c]["dice"] for c in classes]))),
                      fmt(float(np.mean([r.per_class[c]["iou"] for c in classes])))]
        else:
            cells += [fmt(r.overall["dice"]), fmt(r.overall["iou"])]
        cells += [fmt(r.overall["dice_macro"]), fmt(r.oracle_f1_per_image),
                  fmt(r.overall["pixel_auc"]), fmt(r.fp_real), fmt(r.image_level.get("roc_auc")),
                  fmt(r.seconds, 1)]
        cells += [fmt(r.extra.get(c)) for c in extra_columns]
        lines.append("| " + " | ".join(cells) + " |")
    note = ("Dice/IoU: micro (dataset-level) at the threshold `thr` chosen on validation "
            "composites; 'avg' is the mean over classes when labels exist. Dice img-mean: "
            "macro image-wise. F1 oracle/img: per-image oracle threshold (optimistic, for "
            "comparison with peers only). FP real: share of pixels flagged on pure-real images.")
    return "\n".join(lines) + "\n\n" + note + "\n"


def plot_curves(results: Sequence[MethodScores], path: Path, title: str) -> Path:
    fig = new_figure(10, 4.2)
    roc, pr = fig.subplots(1, 2)
    colours = colormaps["tab20"].colors
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
    roc.legend(fontsize=7)
    pr.legend(fontsize=7)
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_dice_histogram(results: Sequence[MethodScores], path: Path, title: str) -> Path:
    fig = new_figure(6, 3.6)
    ax = fig.subplots()
    bins = np.linspace(0, 1, 21)
    for r in results:
        if r.dice_per_image:
            ax.hist(r.dice_per_image, bins=bins, alpha=0.5, label=r.name)
    ax.set(xlabel="Dice per image (at thr)", ylabel="images", title=title)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def section_slug(section: str) -> str:
    """A section title as a file-name part: "composites, with …" → "composites_with_…"."""
    return re.sub(r"[^a-z0-9]+", "_", section.lower()).strip("_")


def write_results(out: Path, sections: dict[str, list[MethodScores]], meta: dict[str, Any],
                  extra_columns: Sequence[str] = ()) -> dict[str, Path]:
    """metrics.json, metrics.md and one curves + histogram figure per section."""
    files: dict[str, Path] = {}
    markdown = [f"# {meta.get('title', 'fakeseg evaluation')}\n"]
    for section, results in sections.items():
        markdown += [f"## {section}\n", markdown_table(results, extra_columns)]
        slug = section_slug(section)
        files[f"curves_{slug}"] = plot_curves(results, out / f"curves_{slug}.png", section)
        files[f"dice_{slug}"] = plot_dice_histogram(results, out / f"dice_hist_{slug}.png",
                                                   section)
    payload = {**meta, "versions": versions(),
               "results": {s: [r.row() for r in rs] for s, rs in sections.items()}}
    files["metrics_json"] = write_json(out / "metrics.json", payload)
    files["metrics_md"] = write_text(out / "metrics.md", "\n".join(markdown))
    return files


def _load_model(model: Any, device: str) -> Any:
    from fakeseg.inference.localizer import Localizer

    return model if isinstance(model, Localizer) else Localizer.load(model, device=device)


def evaluate(model: Any, data: str | Path | None = None, *, out: str | Path,
             images: str | Path | None = None, masks: str | Path | None = None,
             protocol: ProtocolConfig | None = None, threshold: float | None = None,
             resize_masks: bool = False, invert_masks: bool = False,
             sources_csv: str | Path | None = None, source_pattern: str | None = None,
             device: str = "auto", progress: bool = True) -> dict[str, Any]:
    """Paired mode (``data``) or mask mode (``images`` + ``masks``). Returns metrics.json."""
    if (data is None) == (images is None):
        raise FakesegError("give either a paired dataset folder, or --images and --masks")
    if images is not None and masks is None:
        raise FakesegError("--images needs --masks (binary ground-truth masks, same stems)")
    check_source_pattern(source_pattern)
    segmenter = _load_model(model, device)
    out = Path(out)
    if data is not None:
        sections, meta = _paired(segmenter, Path(data), out, protocol or ProtocolConfig(),
                                 threshold, progress)
    else:
        sections, meta = _mask_mode(segmenter, Path(images), Path(masks), out, threshold,
                                    resize_masks, invert_masks, sources_csv, source_pattern,
                                    progress)
    meta["model"] = str(model) if isinstance(model, str | Path) else "in-memory"
    files = write_results(out, sections, meta)
    return {"files": {k: str(v) for k, v in files.items()},
            "results": {s: [r.row() for r in rs] for s, rs in sections.items()}}


def _paired(segmenter: Any, data: Path, out: Path, protocol: ProtocolConfig,
            threshold: float | None, progress: bool
            ) -> tuple[dict[str, list[MethodScores]], dict[str, Any]]:
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
    sections: dict[str, list[MethodScores]] = {}
    for name, parts in sets.items():
        save_items(parts["test"], out / "composites" / name)
        scorer = model_scorer(segmenter)
        results = [score_items("model", scorer, parts["val"], parts["test"],
                               threshold=threshold, class_names=class_names(data))]
        failure_gallery(results[0], scorer, parts["test"],
                        out / f"failures_{section_slug(SECTION_TITLES[name])}.png",
                        oracle_extractor=segmenter.net.feature_extractor)
        results += trivial_rows(parts["test"], class_names(data))
        sections[SECTION_TITLES[name]] = results
    meta = {"title": f"fakeseg evaluation of {data}", "mode": "paired", "data": str(data),
            "protocol": asdict(protocol), "split_note": note, "val_pairs": val_stems,
            "test_pairs": test_stems, "seed": protocol.seed}
    return sections, meta


def _sources(names: Sequence[str], csv_path: str | Path | None,
             pattern: str | None) -> dict[str, str]:
    if csv_path is not None:
        with open(csv_path, newline="") as handle:
            rows = list(csv.reader(handle))
        return {Path(r[0]).stem: r[1] for r in rows if len(r) >= 2 and r[0] != "path"}
    found = {name: source_of(name, pattern) for name in names}
    return {name: source for name, source in found.items() if source is not None}


def _mask_mode(segmenter: Any, images: Path, masks: Path, out: Path, threshold: float | None,
               resize_masks: bool, invert: bool, sources_csv: str | Path | None,
               source_pattern: str | None, progress: bool
               ) -> tuple[dict[str, list[MethodScores]], dict[str, Any]]:
    from skimage.transform import resize

    mask_files = {p.stem: p for p in list_images(masks)}
    items: list[CompositeItem] = []
    for path in progress_bar(list_images(images), desc="loading", enabled=progress):
        if path.stem not in mask_files:
            raise DataError(f"{path}: no mask with stem '{path.stem}' in {masks}; add it or "
                            "remove the image")
        image, mask = read_image(path), read_mask(mask_files[path.stem], invert=invert)
        if mask.shape != image.shape[:2]:
            if not resize_masks:
                raise DataError(f"{mask_files[path.stem]}: mask is {mask.shape[1]}x"
                                f"{mask.shape[0]} but the image is {image.shape[1]}x"
                                f"{image.shape[0]}; pass --resize-masks to resample it")
            mask = resize(mask.astype(np.float32), image.shape[:2], order=0) > 0.5
        kind = "pure_real" if not mask.any() else "mask"
        items.append(CompositeItem(path.stem, path.stem, kind, image, mask, image, None))
    thr = segmenter.threshold if threshold is None else threshold
    scorer = model_scorer(segmenter)
    sections = {"all images": [score_items("model", scorer, [], items, threshold=thr)]}
    if any(is_mixed(i) for i in items):
        failure_gallery(sections["all images"][0], scorer, items,
                        out / "failures_all_images.png")
    sources = _sources([i.name for i in items], sources_csv, source_pattern)
    for source in sorted(set(sources.values())):
        subset = [i for i in items if sources.get(i.name) == source]
        sections[f"source: {source}"] = [score_items("model", scorer, [], subset, threshold=thr)]
    meta = {"title": f"fakeseg evaluation of {images}", "mode": "masks", "images": str(images),
            "masks": str(masks), "threshold": thr, "inverted_masks": invert,
            "resized_masks": resize_masks, "sources": sources}
    return sections, meta
