"""Wimmer et al.'s training-composition experiment (seed 003, Table 2): does a class-A-vs-B
classifier learn the classes, or which generator made its training images?"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fakeseg.config import ClassifierConfig, versions
from fakeseg.data.labeled import (
    DEFAULT_AUGMENT,
    ImageCache,
    LabeledImage,
    check_augment,
    write_labeled_csv,
)
from fakeseg.device import resolve_device
from fakeseg.errors import DataError, FakesegError
from fakeseg.evaluation.metrics import image_report
from fakeseg.inference.classifier import predict_probabilities
from fakeseg.io import list_images, write_json, write_text
from fakeseg.models.classifier import DEFAULT_CLASSIFIER_BACKBONE, load_classifier
from fakeseg.numbers import mean_std
from fakeseg.training.classification import train_classifier

COMPOSITIONS: tuple[str, ...] = ("real/real", "synthetic/real", "synthetic/synthetic")


def _mean_std(values: Sequence[float | None]) -> dict[str, float | None]:
    mean, std = mean_std(values)
    return {"mean": mean, "std": std}


def _cell(stat: dict[str, float | None]) -> str:
    if stat["mean"] is None:
        return "–"
    spread = "–" if stat["std"] is None else f"{stat['std']:.2f}"
    return f"{stat['mean']:.2f} ({spread})"


def _held_out_split(paths: Sequence[Path], fraction: float, seed: int, what: str
                    ) -> tuple[list[Path], list[Path]]:
    ordered = sorted(paths, key=str)
    if len(ordered) < 2:
        raise DataError(f"{what}: {len(ordered)} real image(s); need at least two (one to "
                        "train on, one to test on)")
    order = np.random.default_rng(seed).permutation(len(ordered))
    n_test = min(max(1, round(len(ordered) * fraction)), len(ordered) - 1)
    return ([ordered[i] for i in order[n_test:]], [ordered[i] for i in order[:n_test]])


def experiment_composition(
    class_a_real: str | Path,
    class_a_synthetic: str | Path,
    class_b_real: str | Path,
    class_b_synthetic: str | Path,
    out: str | Path,
    *,
    seeds: int = 3,
    class_names: tuple[str, str] = ("A", "B"),
    compositions: Sequence[str] = COMPOSITIONS,
    test_fraction: float = 0.3,
    split_seed: int = 0,
    backbone: str = DEFAULT_CLASSIFIER_BACKBONE,
    weights: str = "auto",
    epochs: int = 3,
    batch_size: int = 16,
    lr: float = 1e-4,
    size: int = 128,
    fit: str = "crop",
    augment: Iterable[str] = DEFAULT_AUGMENT,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Wimmer et al.'s Table 2 protocol: does a class-A-vs-class-B classifier learn the classes,
    or which generator made its training images?

    The task is to tell class A (label 0) from class B (label 1), e.g. AUTH vs VOID labels.
    The real images of each class are split once (``test_fraction``, ``split_seed``) into a
    real training pool and a held-out **test set of real images only**, the same for every row
    and seed. Each composition "X/Y" says where the *training* images of A and B come from:

    * ``real/real``: A's real training pool vs B's real training pool (the baseline);
    * ``synthetic/real``: all of A's synthetic images vs B's real training pool (the paper's
      B-GAN/P-DM AUTH + real VOID rows; ``real/synthetic`` is the mirror image);
    * ``synthetic/synthetic``: all synthetic images of both classes.

    For every composition and seed 0..seeds-1 a classifier is trained (class-balanced sampling,
    fixed ``epochs``, no validation, like the paper's fixed iteration count) and tested on the
    real test images. Reported per composition: the accuracy on A's and B's test images (the
    share called A, resp. B, at P(B) ≥ 0.5), the balanced accuracy (their mean) and ROC AUC,
    as mean (sample std) over seeds. Writes ``results.json``, ``results.md`` (Table 2 layout),
    ``test_split.json`` and one run folder per composition and seed.
    """
    if seeds < 1:
        raise FakesegError(f"seeds must be ≥ 1, got {seeds}")
    chosen = [c.strip().lower() for c in compositions]
    for comp in chosen:
        parts = comp.split("/")
        if len(parts) != 2 or any(p not in ("real", "synthetic") for p in parts):
            raise FakesegError(f"composition '{comp}' must be X/Y with X, Y in real, synthetic "
                               "(e.g. synthetic/real)")
    name_a, name_b = class_names
    folders = {("a", "real"): class_a_real, ("a", "synthetic"): class_a_synthetic,
               ("b", "real"): class_b_real, ("b", "synthetic"): class_b_synthetic}
    images = {key: list_images(folder, recursive=True) for key, folder in folders.items()}
    train_a, test_a = _held_out_split(images["a", "real"], test_fraction, split_seed,
                                      str(class_a_real))
    train_b, test_b = _held_out_split(images["b", "real"], test_fraction, split_seed,
                                      str(class_b_real))
    pools = {("a", "real"): train_a, ("b", "real"): train_b,
             ("a", "synthetic"): images["a", "synthetic"],
             ("b", "synthetic"): images["b", "synthetic"]}
    out_dir = Path(out)
    write_json(out_dir / "test_split.json", {
        "split_seed": split_seed, "test_fraction": test_fraction,
        "test": {name_a: [str(p) for p in test_a], name_b: [str(p) for p in test_b]},
        "train_real": {name_a: [str(p) for p in train_a], name_b: [str(p) for p in train_b]}})
    test_paths = [*test_a, *test_b]
    test_labels = np.array([0] * len(test_a) + [1] * len(test_b))
    test_cache = ImageCache()
    settings = {"backbone": backbone, "weights": weights, "epochs": epochs,
                "batch_size": batch_size, "lr": lr, "size": size, "fit": fit,
                "augment": list(check_augment(augment)), "seeds": list(range(seeds)),
                "test_fraction": test_fraction, "split_seed": split_seed}
    rows: list[dict[str, Any]] = []
    for comp in chosen:
        source_a, source_b = comp.split("/")
        slug = comp.replace("/", "_")
        runs: list[dict[str, Any]] = []
        for seed in range(seeds):
            run_dir = out_dir / slug / f"seed{seed}"
            train_items = ([LabeledImage(p, 0, f"{name_a}:{source_a}")
                            for p in pools["a", source_a]]
                           + [LabeledImage(p, 1, f"{name_b}:{source_b}")
                              for p in pools["b", source_b]])
            csv_path = write_labeled_csv(run_dir / "train.csv", train_items)
            config = ClassifierConfig(
                backbone=backbone, weights=weights, epochs=epochs, batch_size=batch_size,
                lr=lr, size=size, fit=fit, seed=seed, augment=list(augment), val_fraction=0.0,
                source_pattern=None, class_names=[name_a, name_b], device=device)
            result = train_classifier(csv_path, run_dir / "run", config, progress=progress)
            model, _, _ = load_classifier(result.best_dir)
            probs = predict_probabilities(model, test_paths, size=size, fit=fit,
                                          batch_size=batch_size, device=resolve_device(device),
                                          cache=test_cache)
            overall = image_report(probs, test_labels)
            acc_a = image_report(probs[test_labels == 0], test_labels[test_labels == 0])
            acc_b = image_report(probs[test_labels == 1], test_labels[test_labels == 1])
            runs.append({"seed": seed, "run": str(result.run_dir), "n_train": len(train_items),
                         f"acc_{name_a}": acc_a["accuracy"], f"acc_{name_b}": acc_b["accuracy"],
                         "balanced_accuracy": overall["balanced_accuracy"],
                         "roc_auc": overall["roc_auc"]})
        rows.append({
            "composition": comp, "train_source": {name_a: source_a, name_b: source_b},
            "n_train": {name_a: len(pools["a", source_a]), name_b: len(pools["b", source_b])},
            f"acc_{name_a}": _mean_std([r[f"acc_{name_a}"] for r in runs]),
            f"acc_{name_b}": _mean_std([r[f"acc_{name_b}"] for r in runs]),
            "balanced_accuracy": _mean_std([r["balanced_accuracy"] for r in runs]),
            "roc_auc": _mean_std([r["roc_auc"] for r in runs]),
            "runs": runs,
        })
    payload = {
        "protocol": ("Wimmer et al. Table 2: train on the given composition, test on held-out "
                     "real images of both classes; mean (sample std) over seeds"),
        "classes": {"0": name_a, "1": name_b},
        "folders": {f"{c}_{s}": str(f) for (c, s), f in folders.items()},
        "n_test": {name_a: len(test_a), name_b: len(test_b)},
        "settings": settings, "rows": rows, "versions": versions(),
    }
    write_json(out_dir / "results.json", payload)
    header = (f"| {name_a} (train) | {name_b} (train) | image size | ACC {name_a} | "
              f"ACC {name_b} | balanced | ROC AUC |")
    lines = [
        "# Training-composition experiment (Wimmer et al., Table 2 protocol)", "",
        f"Test: held-out real images only ({len(test_a)} {name_a}, {len(test_b)} {name_b}); "
        f"mean (sample std) over {seeds} seed(s); {backbone} ({weights}), {epochs} epochs, "
        f"{fit} {size}×{size}.", "", header, "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['train_source'][name_a]} | {row['train_source'][name_b]} | "
                     f"{size}×{size} | {_cell(row[f'acc_{name_a}'])} | "
                     f"{_cell(row[f'acc_{name_b}'])} | {_cell(row['balanced_accuracy'])} | "
                     f"{_cell(row['roc_auc'])} |")
    write_text(out_dir / "results.md", "\n".join(lines) + "\n")
    payload["markdown"] = str(out_dir / "results.md")
    return payload
