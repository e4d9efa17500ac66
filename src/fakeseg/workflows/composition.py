"""Wimmer et al.'s training-composition experiment (seed 003, Tables 2 and 3): does a
class-A-vs-B classifier learn the classes, or which generator made its training images, and
does removing the generator's spectral fingerprint (MSA / FPA) change that?"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
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
from fakeseg.io import list_images, read_size, write_json, write_text
from fakeseg.models.classifier import DEFAULT_CLASSIFIER_BACKBONE, load_classifier
from fakeseg.numbers import fmt, mean_std
from fakeseg.progress import say
from fakeseg.spectral.attacks import DEFAULT_T, defingerprint
from fakeseg.training.classification import train_classifier

COMPOSITIONS: tuple[str, ...] = ("real/real", "synthetic/real", "synthetic/synthetic")
ATTACKS: tuple[str, ...] = ("msa", "fpa")
ORIGINAL = "original"  # the image-size setting that keeps every image whole
NO_ATTACK = "–"
RESULTS_JSON, RESULTS_MD = "results.json", "results.md"


@dataclass(frozen=True)
class MeanStd:
    """Mean and sample std over seeds (std None with one seed, both None with no value)."""

    mean: float | None
    std: float | None

    @classmethod
    def of(cls, values: Iterable[float | None]) -> MeanStd:
        mean, std = mean_std(values)
        return cls(mean, std)

    def cell(self) -> str:
        if self.mean is None:
            return "–"
        return fmt(self.mean, 2) + ("" if self.std is None else f" ± {fmt(self.std, 2)}")


@dataclass
class CompositionRun:
    """One classifier (one composition, attack and seed), tested on the real test images."""

    seed: int
    run: str
    n_train: int
    accuracy: dict[str, float | None]  # class name → share of its test images called it
    balanced_accuracy: float | None
    roc_auc: float | None


@dataclass
class CompositionRow:
    """One line of Table 2 / 3: a composition, with or without fingerprint removal."""

    composition: str
    defingerprint: str | None  # None, "msa" or "fpa"
    image_size: str  # "128×128" or "original"
    train_source: dict[str, str]
    n_train: dict[str, int]
    accuracy: dict[str, MeanStd]
    balanced_accuracy: MeanStd
    roc_auc: MeanStd
    runs: list[CompositionRun] = field(default_factory=list)


@dataclass
class AttackSummary:
    """One fitted and applied fingerprint-removal attack (one method, one class)."""

    method: str
    class_name: str
    size: int
    n_fit_real: int
    n_fit_synthetic: int
    n_attacked: int
    mean_psnr_db: float | None
    energy_before: float
    energy_after: float
    energy_null: float
    folder: str


@dataclass
class CompositionSettings:
    """How every classifier of the experiment was trained and tested (recorded in results)."""

    backbone: str
    weights: str
    epochs: int
    batch_size: int
    lr: float
    image_size: str  # "128×128" or "original"
    fit: str
    augment: list[str]
    seeds: list[int]
    test_fraction: float
    split_seed: int
    defingerprint: list[str] = field(default_factory=list)
    attack_t: float | None = None  # FPA's threshold, when FPA is run


@dataclass
class CompositionResult:
    classes: tuple[str, str]
    n_test: dict[str, int]
    settings: CompositionSettings
    rows: list[CompositionRow]
    attacks: list[AttackSummary]
    results_json: Path
    results_md: Path

    def row(self, composition: str, attack: str | None = None) -> CompositionRow:
        return next(r for r in self.rows
                    if r.composition == composition and r.defingerprint == attack)


def _held_out_split(paths: Sequence[Path], fraction: float, seed: int, what: str
                    ) -> tuple[list[Path], list[Path]]:
    ordered = sorted(paths, key=str)
    if len(ordered) < 2:
        raise DataError(f"{what}: {len(ordered)} real image(s); need at least two (one to "
                        "train on, one to test on)")
    order = np.random.default_rng(seed).permutation(len(ordered))
    n_test = min(max(1, round(len(ordered) * fraction)), len(ordered) - 1)
    return ([ordered[i] for i in order[n_test:]], [ordered[i] for i in order[:n_test]])


def _check_compositions(compositions: Sequence[str]) -> list[str]:
    chosen = [c.strip().lower() for c in compositions]
    for comp in chosen:
        parts = comp.split("/")
        if len(parts) != 2 or any(p not in ("real", "synthetic") for p in parts):
            raise FakesegError(f"composition '{comp}' must be X/Y with X, Y in real, synthetic "
                               "(e.g. synthetic/real)")
    return chosen


def _check_attacks(attacks: Sequence[str]) -> list[str]:
    chosen = [a.strip().lower() for a in attacks if a.strip()]
    unknown = [a for a in chosen if a not in ATTACKS]
    if unknown:
        raise FakesegError(f"fingerprint removal '{unknown[0]}' is unknown; use "
                           f"{' or '.join(ATTACKS)}")
    return list(dict.fromkeys(chosen))


def _size_setting(size: int | str) -> tuple[int, str, str]:
    """(classifier size, fit override or '', label) of ``size``: pixels or "original"."""
    if isinstance(size, str) and size.strip().lower() == ORIGINAL:
        return 128, ORIGINAL, ORIGINAL  # the classifier's size is unused at original size
    try:
        pixels = int(size)
    except (TypeError, ValueError):
        raise FakesegError(f"image size '{size}' must be a number of pixels or "
                           f"'{ORIGINAL}'") from None
    return pixels, "", f"{pixels}×{pixels}"


def _common_side(paths: Sequence[Path]) -> int:
    """The largest side every image can give a square centre crop of (the attack's size)."""
    side = min(min(read_size(p)) for p in paths)
    return side - side % 8 if side >= 8 else side


def _attack(method: str, real: Sequence[Path], synthetic: Sequence[Path], folder: Path,
            size: int, class_name: str, progress: bool) -> tuple[AttackSummary, list[Path]]:
    """Fit ``method`` on a class's real training images vs its synthetic images and attack the
    latter (reused when ``folder`` already holds the same attack)."""
    saved = folder / "attack.json"
    payload: dict[str, Any] | None = None
    if saved.exists():
        try:
            payload = json.loads(saved.read_text())
        except (OSError, ValueError):
            payload = None
        same = (isinstance(payload, dict) and payload.get("method") == method
                and payload.get("size") == size and payload.get("k") == 1.0
                and payload.get("n_fit_real") == len(real)
                and all(Path(i["output"]).exists() for i in payload.get("images", [])))
        payload = payload if same else None
    if payload is None:
        say(f"fitting {method.upper()} on class {class_name}: {len(real)} real training "
            f"images vs {len(synthetic)} synthetic, at {size}×{size}")
        payload = defingerprint(method, real, synthetic, None, folder,  # type: ignore[arg-type]
                                size=size, t=DEFAULT_T, progress=progress)
    fingerprint = payload["fingerprint"]
    summary = AttackSummary(
        method, class_name, size, int(payload["n_fit_real"]), int(payload["n_fit_synthetic"]),
        int(payload["n_attacked"]), payload.get("mean_psnr_db"),
        float(fingerprint["before"]["energy"]), float(fingerprint["after"]["energy"]),
        float(fingerprint["after"]["energy_null"]), str(folder))
    return summary, [Path(item["output"]) for item in payload["images"]]


def experiment_composition(
    class_a_real: str | Path,
    class_a_synthetic: str | Path,
    class_b_real: str | Path,
    class_b_synthetic: str | Path,
    out: str | Path,
    *,
    seeds: int = 5,
    class_names: tuple[str, str] = ("A", "B"),
    compositions: Sequence[str] = COMPOSITIONS,
    defingerprint_methods: Sequence[str] = (),
    attack_size: int | None = None,
    test_fraction: float = 0.3,
    split_seed: int = 0,
    backbone: str = DEFAULT_CLASSIFIER_BACKBONE,
    weights: str = "auto",
    epochs: int = 3,
    batch_size: int = 16,
    lr: float = 1e-4,
    size: int | str = 128,
    fit: str = "crop",
    augment: Iterable[str] = DEFAULT_AUGMENT,
    device: str = "auto",
    progress: bool = True,
) -> CompositionResult:
    """Wimmer et al.'s Table 2 protocol (and Table 3 with ``defingerprint_methods``): does a
    class-A-vs-class-B classifier learn the classes, or which generator made its images?

    The task is to tell class A (label 0) from class B (label 1), e.g. AUTH vs VOID labels.
    The real images of each class are split once (``test_fraction``, ``split_seed``) into a
    real training pool and a held-out **test set of real images only**, the same for every row
    and seed. Each composition "X/Y" says where the *training* images of A and B come from:

    * ``real/real``: A's real training pool vs B's real training pool (the baseline);
    * ``synthetic/real``: all of A's synthetic images vs B's real training pool (the paper's
      B-GAN/P-DM AUTH + real VOID rows; ``real/synthetic`` is the mirror image);
    * ``synthetic/synthetic``: all synthetic images of both classes.

    ``defingerprint_methods`` (``msa``, ``fpa``; seed 003's Table 3): each attack is fitted per
    class on that class's real *training* pool vs its synthetic images (never on test images)
    and applied to those synthetic images (square centre crops of ``attack_size``, default the
    largest side all of the class's images share); every composition that trains on synthetic
    images is then rerun on the attacked images. ``size`` is the classifier's input side in
    pixels, or ``"original"``: no crop or resize, batches of equal-size images.

    For every row and seed 0..seeds-1 a classifier is trained (class-balanced sampling, fixed
    ``epochs``, no validation, like the paper's fixed iteration count) and tested on the real
    test images: accuracy on A's and B's test images (the share called A, resp. B, at
    P(B) ≥ 0.5), balanced accuracy and ROC AUC, as mean ± sample std over seeds. Writes
    ``results.json``, ``results.md``, ``test_split.json``, one run folder per row and seed
    (a rerun into the same ``out`` reuses finished runs) and ``defingerprint/<method>/<class>/``.
    """
    if seeds < 1:
        raise FakesegError(f"seeds must be ≥ 1, got {seeds}")
    chosen = _check_compositions(compositions)
    attacks = _check_attacks(defingerprint_methods)
    pixels, fit_override, size_label = _size_setting(size)
    fit = fit_override or fit
    name_a, name_b = class_names
    names = {"a": name_a, "b": name_b}
    folders = {("a", "real"): class_a_real, ("a", "synthetic"): class_a_synthetic,
               ("b", "real"): class_b_real, ("b", "synthetic"): class_b_synthetic}
    images = {key: list_images(folder, recursive=True) for key, folder in folders.items()}
    for (cls, kind), found in images.items():
        if not found and any(p.split("/")[0 if cls == "a" else 1] == kind for p in chosen):
            raise DataError(f"{folders[cls, kind]}: no images; give the {kind} images of class "
                            f"{names[cls]}")
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

    # Table 3: one attacked synthetic pool per attack and class
    summaries: list[AttackSummary] = []
    attacked: dict[tuple[str, str], list[Path]] = {}
    uses = {cls for comp in chosen for cls, part in zip("ab", comp.split("/"), strict=True)
            if part == "synthetic"}
    for method in attacks:
        for cls in sorted(uses):
            real, synthetic = pools[cls, "real"], pools[cls, "synthetic"]
            side = attack_size or _common_side([*real, *synthetic])
            summary, paths = _attack(method, real, synthetic,
                                     out_dir / "defingerprint" / method / names[cls], side,
                                     names[cls], progress)
            summaries.append(summary)
            attacked[method, cls] = paths

    test_paths = [*test_a, *test_b]
    test_labels = np.array([0] * len(test_a) + [1] * len(test_b))
    test_cache = ImageCache()
    settings = CompositionSettings(
        backbone, weights, epochs, batch_size, lr, size_label, fit,
        list(check_augment(augment)), list(range(seeds)), test_fraction, split_seed, attacks,
        DEFAULT_T if "fpa" in attacks else None)
    plan: list[tuple[str, str | None]] = [(comp, None) for comp in chosen] + [
        (comp, method) for method in attacks for comp in chosen if "synthetic" in comp]
    rows: list[CompositionRow] = []
    for comp, attack in plan:
        sources = dict(zip("ab", comp.split("/"), strict=True))
        pool = {cls: (attacked[attack, cls] if attack and sources[cls] == "synthetic"
                      else pools[cls, sources[cls]]) for cls in "ab"}
        slug = comp.replace("/", "_") + (f"_{attack}" if attack else "")
        runs: list[CompositionRun] = []
        for seed in range(seeds):
            run_dir = out_dir / slug / f"seed{seed}"
            train_items = ([LabeledImage(p, 0, f"{name_a}:{sources['a']}") for p in pool["a"]]
                           + [LabeledImage(p, 1, f"{name_b}:{sources['b']}")
                              for p in pool["b"]])
            csv_path = write_labeled_csv(run_dir / "train.csv", train_items)
            config = ClassifierConfig(
                backbone=backbone, weights=weights, epochs=epochs, batch_size=batch_size,
                lr=lr, size=pixels, fit=fit, seed=seed, augment=list(augment),
                val_fraction=0.0, source_pattern=None, class_names=[name_a, name_b],
                device=device)
            finished = (run_dir / "run" / "config.yaml").exists()
            trained = train_classifier(csv_path, run_dir / "run", config, resume=finished,
                                       progress=progress)
            model, _, _ = load_classifier(trained.best_dir)
            probs = predict_probabilities(model, test_paths, size=pixels, fit=fit,
                                          batch_size=batch_size, device=resolve_device(device),
                                          cache=test_cache)
            overall = image_report(probs, test_labels)
            accuracy = {name: image_report(probs[test_labels == label],
                                           test_labels[test_labels == label])["accuracy"]
                        for label, name in enumerate((name_a, name_b))}
            runs.append(CompositionRun(seed, str(trained.run_dir), len(train_items), accuracy,
                                       overall["balanced_accuracy"], overall["roc_auc"]))
        rows.append(CompositionRow(
            comp, attack, size_label, {name_a: sources["a"], name_b: sources["b"]},
            {name_a: len(pool["a"]), name_b: len(pool["b"])},
            {name: MeanStd.of(r.accuracy[name] for r in runs) for name in (name_a, name_b)},
            MeanStd.of(r.balanced_accuracy for r in runs), MeanStd.of(r.roc_auc for r in runs),
            runs))
    result = CompositionResult((name_a, name_b), {name_a: len(test_a), name_b: len(test_b)},
                               settings, rows, summaries, out_dir / RESULTS_JSON,
                               out_dir / RESULTS_MD)
    save_composition(result, {f"{c}_{s}": str(f) for (c, s), f in folders.items()})
    return result


def composition_markdown(result: CompositionResult) -> str:
    """Table 2 / 3 layout (one row per composition and fingerprint removal), then the attacks."""
    name_a, name_b = result.classes
    s = result.settings
    lines = [
        "# Training-composition experiment (Wimmer et al., Tables 2 and 3)", "",
        f"Test: held-out real images only ({result.n_test[name_a]} {name_a}, "
        f"{result.n_test[name_b]} {name_b}); mean ± sample std over {len(s.seeds)} "
        f"seed(s); {s.backbone} ({s.weights}), {s.epochs} epochs, "
        + (f"{s.fit} {s.image_size}." if s.image_size != ORIGINAL
           else "original sizes (no crop or resize)."), "",
        f"| FP removal | {name_a} (train) | {name_b} (train) | image size | ACC {name_a} | "
        f"ACC {name_b} | balanced | ROC AUC |", "|---|---|---|---|---|---|---|---|"]
    for row in result.rows:
        lines.append(
            f"| {(row.defingerprint or NO_ATTACK).upper()} | {row.train_source[name_a]} | "
            f"{row.train_source[name_b]} | {row.image_size} | {row.accuracy[name_a].cell()} | "
            f"{row.accuracy[name_b].cell()} | {row.balanced_accuracy.cell()} | "
            f"{row.roc_auc.cell()} |")
    if result.attacks:
        lines += [
            "", "## Fingerprint removal", "",
            "Each attack is fitted per class on its real training images vs its synthetic "
            "images and applied to those synthetic images (square centre crops). Fingerprint "
            "energy: mean |FP| of the real training images vs the synthetic images, before and "
            "after; 'chance' is the energy sampling noise alone gives at these set sizes.", "",
            "| attack | class | crop | fitted on (real / synthetic) | attacked | mean PSNR dB "
            "| FP energy before | after | chance |", "|---|---|---|---|---|---|---|---|---|"]
        for a in result.attacks:
            lines.append(f"| {a.method.upper()} | {a.class_name} | {a.size} | {a.n_fit_real} / "
                         f"{a.n_fit_synthetic} | {a.n_attacked} | {fmt(a.mean_psnr_db, 1)} | "
                         f"{fmt(a.energy_before)} | {fmt(a.energy_after)} | "
                         f"{fmt(a.energy_null)} |")
    return "\n".join(lines) + "\n"


def composition_payload(result: CompositionResult, folders: dict[str, str]) -> dict[str, Any]:
    """results.json: every row (with its runs), the attacks, settings and versions."""
    return {
        "protocol": ("Wimmer et al. Tables 2 and 3: train on the given composition (with or "
                     "without fingerprint removal), test on held-out real images of both "
                     "classes; mean and sample std over seeds"),
        "classes": {"0": result.classes[0], "1": result.classes[1]}, "folders": folders,
        "n_test": result.n_test, "settings": asdict(result.settings),
        "rows": [asdict(row) for row in result.rows],
        "attacks": [asdict(a) for a in result.attacks], "versions": versions(),
    }


def save_composition(result: CompositionResult, folders: dict[str, str]) -> None:
    write_json(result.results_json, composition_payload(result, folders))
    write_text(result.results_md, composition_markdown(result))
