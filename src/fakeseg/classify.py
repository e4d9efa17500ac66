"""Image-level real-vs-synthetic detection: train, evaluate, predict, and Wimmer et al.'s
training-composition experiment.

Data is a folder with ``real/`` and ``synthetic/`` (or ``fake/``) subfolders (searched
recursively), or a CSV of ``path,label[,source]`` (label 0/1 or real/synthetic/fake; relative
paths are relative to the CSV). The *source* of an image (its generator) comes from the CSV's
source column, else from ``source_pattern`` applied to the file stem (default: the shared
CNNDetection naming ``N_GENERATOR_{real,fake}``), and drives the per-source tables.

Training follows the two seed papers: an ImageNet-pretrained trunk fine-tuned with one logit and
binary cross-entropy (Wimmer et al.: Adam(W), lr 1e-4, weight decay 1e-3), class-balanced
``WeightedRandomSampler`` batches (their fix for class imbalance), and the MediaEval team's
augmentations (horizontal flips, rotations, colour jitter; ``torchvision.transforms.v2``), plus
optional blur and JPEG re-compression. Images are fitted to ``size`` by a crop (random when
training, central otherwise; default, because resizing erases the high-frequency generator
traces the fingerprints show — Wang et al. crop too) or by a resize (``fit="resize"``).

Run folder::

    RUN/config.json    every option (and the resolved weights)
    RUN/split.json     the seeded train / validation split (paths, labels, sources)
    RUN/history.json   one entry per epoch (train loss, validation metrics)
    RUN/best/          the epoch with the best validation balanced accuracy (checkpoint)
    RUN/last/          the last epoch plus trainer state, for ``resume=True``
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from fakeseg.config import versions
from fakeseg.data.sources import check_source_pattern, source_of
from fakeseg.device import resolve_device
from fakeseg.errors import DataError, FakesegError
from fakeseg.evaluation.evaluate import fmt
from fakeseg.evaluation.metrics import grouped_image_report, image_report
from fakeseg.inference.localizer import DECISION_COVERAGE
from fakeseg.io import (
    check_output_dir,
    expand_inputs,
    list_images,
    read_image,
    to_uint8,
    write_json,
    write_text,
)
from fakeseg.models.checkpoint import (
    load_checkpoint,
    load_into,
    load_trainer_state,
    resolve_checkpoint,
    save_checkpoint,
)
from fakeseg.models.classifier import (
    CLASSIFIER_BACKBONES,
    DEFAULT_CLASSIFIER_BACKBONE,
    KIND,
    ImageClassifier,
    build_classifier,
    load_classifier,
)
from fakeseg.progress import progress_bar, warn
from fakeseg.training.loop import learning_rate, seed_everything

log = logging.getLogger(__name__)

#: ``N_GENERATOR_{real,fake}`` → GENERATOR (the shared CNNDetection sample's naming).
DEFAULT_SOURCE_PATTERN = r"^\d+_(.+)_(?:real|fake)$"
SYNTHETIC_FOLDERS = ("synthetic", "fake")
AUGMENTATIONS = ("flip", "rotate", "jitter", "blur", "jpeg")
DEFAULT_AUGMENT: tuple[str, ...] = ("flip", "rotate", "jitter")
FITS = ("crop", "resize")
SCORERS = ("model", "heatmap")
ROTATE_DEGREES = 15.0
JPEG_QUALITY = (40, 95)
#: Window side / crop side that a ±15° rotation needs to leave no empty corners (cos + sin).
ROTATE_MARGIN = math.cos(math.radians(ROTATE_DEGREES)) + math.sin(math.radians(ROTATE_DEGREES))
#: Heat-map scorer default: an image is called synthetic when ≥ 5 % of its pixels are flagged.
CACHE_BYTES = 1 << 30  # decoded uint8 images kept in memory per run
_LABEL_WORDS = {"0": 0, "1": 1, "real": 0, "synthetic": 1, "fake": 1}
COMPOSITIONS: tuple[str, ...] = ("real/real", "synthetic/real", "synthetic/synthetic")


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class LabeledImage:
    """One image with its label (1 = synthetic, or class B in a two-class task) and source."""

    path: Path
    label: int
    source: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "label": self.label, "source": self.source}


def parse_label(text: str, where: str) -> int:
    """0/1 or real/synthetic/fake (any case) → 0/1; anything else is a one-line DataError."""
    value = _LABEL_WORDS.get(str(text).strip().lower())
    if value is None:
        raise DataError(f"{where}: label '{text}' is not 0/1 or real/synthetic/fake; fix "
                        "that row")
    return value


def _read_csv(path: Path, pattern: str | None) -> list[LabeledImage]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the CSV ({exc}); check the file") from exc
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"{path}: the CSV is empty; add rows of path,label[,source]")
    columns = {"path": 0, "label": 1, "source": 2}
    start = 1
    header = [c.strip().lower() for c in rows[0]]
    if "path" in header and "label" in header:
        columns = {name: header.index(name) for name in ("path", "label", "source")
                   if name in header}
    else:
        start = 0
    items: list[LabeledImage] = []
    for number, row in enumerate(rows[start:], start=start + 1):
        where = f"{path}:{number}"
        if len(row) <= max(columns["path"], columns["label"]):
            raise DataError(f"{where}: expected path,label[,source], got {row}; fix that row")
        file = Path(row[columns["path"]].strip()).expanduser()
        if not file.is_absolute():
            file = path.parent / file
        if not file.is_file():
            raise DataError(f"{where}: no such image '{file}'; fix the path (relative paths "
                            "are relative to the CSV)")
        label = parse_label(row[columns["label"]], where)
        column = columns.get("source")
        source = row[column].strip() if column is not None and column < len(row) else ""
        items.append(LabeledImage(file, label, source or source_of(file, pattern)))
    if not items:
        raise DataError(f"{path}: the CSV has a header but no rows; add rows of "
                        "path,label[,source]")
    return items


def load_labeled(data: str | Path | Sequence[LabeledImage], *,
                 source_pattern: str | None = DEFAULT_SOURCE_PATTERN) -> list[LabeledImage]:
    """Labelled images from a real/ + synthetic/ (or fake/) folder, a CSV, or a list."""
    if not isinstance(data, str | Path):
        items = list(data)
        if not items:
            raise DataError("no labelled images given")
        return items
    pattern = check_source_pattern(source_pattern)
    root = Path(data)
    if root.is_file():
        if root.suffix.lower() != ".csv":
            raise DataError(f"{root}: expected a folder with real/ and synthetic/ (or fake/), or "
                            "a .csv of path,label[,source]")
        return _read_csv(root, pattern)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder or CSV; check the path")
    real_dir = root / "real"
    found = [root / name for name in SYNTHETIC_FOLDERS if (root / name).is_dir()]
    if not real_dir.is_dir():
        raise DataError(f"{root}: no real/ folder; put real images in {real_dir} (and "
                        "synthetic ones in synthetic/ or fake/), or pass a CSV")
    if not found:
        raise DataError(f"{root}: no synthetic/ or fake/ folder; put the synthetic images in "
                        f"{root / 'synthetic'}")
    if len(found) > 1:
        raise DataError(f"{root}: has both synthetic/ and fake/; keep one of them")
    items = [LabeledImage(p, 0, source_of(p, pattern)) for p in list_images(real_dir,
                                                                            recursive=True)]
    items += [LabeledImage(p, 1, source_of(p, pattern)) for p in list_images(found[0],
                                                                            recursive=True)]
    return items


def _check_classes(items: Sequence[LabeledImage], data: Any, names: Sequence[str]) -> None:
    for label, name in enumerate(names):
        if not any(item.label == label for item in items):
            raise DataError(f"{data}: no {name} images (label {label}); both classes are needed")


def write_labeled_csv(path: str | Path, items: Iterable[LabeledImage]) -> Path:
    """Write ``path,label,source`` rows (absolute paths) that :func:`load_labeled` reads."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "label", "source"])
    for item in items:
        writer.writerow([str(Path(item.path).resolve()), item.label, item.source or ""])
    return write_text(path, buffer.getvalue())


# --------------------------------------------------------------------------- images


class ImageCache:
    """Decoded images as uint8 (3, H, W) tensors, kept in memory up to ``max_bytes``."""

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._store: dict[Path, torch.Tensor] = {}

    def get(self, path: Path) -> torch.Tensor:
        cached = self._store.get(path)
        if cached is not None:
            return cached
        image = torch.from_numpy(to_uint8(read_image(path))).permute(2, 0, 1).contiguous()
        if self.bytes + image.numel() <= self.max_bytes:
            self._store[path] = image
            self.bytes += image.numel()
        return image


def _ensure_min_side(size: int) -> Callable[[torch.Tensor], torch.Tensor]:
    from torchvision.transforms.v2 import functional as TF

    def fit(image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        if min(height, width) >= size:
            return image
        scale = size / min(height, width)
        return TF.resize(image, [max(size, math.ceil(height * scale)),
                                 max(size, math.ceil(width * scale))], antialias=True)

    return fit


class RandomJPEG:
    """Re-encode a uint8 (3, H, W) image as JPEG at a random quality, with probability ``p``.

    Pillow does the coding (torchvision's own JPEG codec is deprecated); the draws come from
    torch's RNG, so seeded runs repeat.
    """

    def __init__(self, quality: tuple[int, int] = (40, 95), p: float = 0.5) -> None:
        self.quality = quality
        self.p = p

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        from PIL import Image

        if float(torch.rand(())) >= self.p:
            return image
        quality = int(torch.randint(self.quality[0], self.quality[1] + 1, ()))
        buffer = io.BytesIO()
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(buffer, format="JPEG",
                                                             quality=quality)
        buffer.seek(0)
        decoded = np.asarray(Image.open(buffer).convert("RGB"))
        return torch.from_numpy(decoded.copy()).permute(2, 0, 1).contiguous()


def check_augment(augment: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(a.strip().lower() for a in augment if a.strip()))
    unknown = [a for a in chosen if a not in AUGMENTATIONS and a != "none"]
    if unknown:
        raise FakesegError(f"unknown augmentation '{unknown[0]}'; use any of "
                           + ", ".join(AUGMENTATIONS) + " (or none)")
    return tuple(a for a in chosen if a != "none")


def build_transform(size: int, *, train: bool, augment: Iterable[str] = (),
                    fit: str = "crop") -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 (3, H, W) → float (3, size, size) in [0, 1]: augmentations (train only) + fit."""
    from torchvision.transforms import v2

    if fit not in FITS:
        raise FakesegError(f"unknown fit '{fit}'; use crop or resize")
    chosen = check_augment(augment) if train else ()
    ops: list[Callable[[Any], Any]] = []
    if fit == "resize":
        ops.append(v2.Resize((size, size), antialias=True))
        if "rotate" in chosen:
            ops.append(v2.RandomRotation(ROTATE_DEGREES))
    elif "rotate" in chosen:
        # crop a margin, rotate, crop the centre: no black corners, and the (slow) rotation
        # only touches a small window of a large image
        margin = math.ceil(size * ROTATE_MARGIN)
        ops += [_ensure_min_side(margin), v2.RandomCrop(margin),
                v2.RandomRotation(ROTATE_DEGREES), v2.CenterCrop(size)]
    else:
        ops.append(_ensure_min_side(size))
        ops.append(v2.RandomCrop(size) if train else v2.CenterCrop(size))
    if "flip" in chosen:
        ops.append(v2.RandomHorizontalFlip())
    if "jitter" in chosen:
        ops.append(v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02))
    if "blur" in chosen:
        ops.append(v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 2.0))], p=0.5))
    if "jpeg" in chosen:
        ops.append(RandomJPEG(JPEG_QUALITY, p=0.5))
    ops.append(v2.ToDtype(torch.float32, scale=True))
    return v2.Compose(ops)


class LabeledDataset(Dataset):
    """(image tensor, label) pairs through a transform, decoding through an :class:`ImageCache`."""

    def __init__(self, items: Sequence[LabeledImage], transform: Callable[[torch.Tensor],
                 torch.Tensor], cache: ImageCache | None = None) -> None:
        self.items = list(items)
        self.transform = transform
        self.cache = cache or ImageCache(0)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        item = self.items[index]
        return (self.transform(self.cache.get(item.path)),
                torch.tensor(float(item.label), dtype=torch.float32))


def balanced_sampler(labels: Sequence[int], *, num_samples: int | None = None,
                     generator: torch.Generator | None = None) -> WeightedRandomSampler:
    """Draws each class with equal probability (weights 1 / class count), with replacement."""
    array = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(array, minlength=2).astype(np.float64)
    weights = 1.0 / counts[array]
    return WeightedRandomSampler(torch.from_numpy(weights), num_samples or len(array),
                                 replacement=True, generator=generator)


def split_items(items: Sequence[LabeledImage], val_fraction: float,
                seed: int) -> tuple[list[LabeledImage], list[LabeledImage]]:
    """Seeded split stratified by label; each class keeps ≥ 1 training image (and gets ≥ 1
    validation image when it has two or more and ``val_fraction`` > 0)."""
    if not 0.0 <= val_fraction < 1.0:
        raise FakesegError(f"val_fraction must lie in [0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    train: list[LabeledImage] = []
    val: list[LabeledImage] = []
    for label in (0, 1):
        group = sorted((i for i in items if i.label == label), key=lambda i: str(i.path))
        order = rng.permutation(len(group))
        n_val = round(len(group) * val_fraction)
        if val_fraction > 0 and len(group) >= 2:
            n_val = max(n_val, 1)
        n_val = min(n_val, len(group) - 1)
        val += [group[i] for i in order[:n_val]]
        train += [group[i] for i in order[n_val:]]
    return train, val


# --------------------------------------------------------------------------- training


@dataclass(frozen=True)
class _Schedule:
    """What :func:`fakeseg.training.loop.learning_rate` reads from a config."""

    steps: int
    lr: float


def _batches(items: Sequence[LabeledImage], transform: Callable[[torch.Tensor], torch.Tensor],
             cache: ImageCache, batch_size: int) -> Iterable[torch.Tensor]:
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        yield torch.stack([transform(cache.get(item.path)) for item in chunk])


@torch.no_grad()
def predict_probabilities(model: ImageClassifier, paths: Sequence[str | Path], *, size: int,
                          fit: str = "crop", batch_size: int = 16,
                          device: torch.device | str = "cpu", cache: ImageCache | None = None,
                          progress: bool = False, desc: str = "predict") -> np.ndarray:
    """P(class 1) per image (float64), with the evaluation transform (central crop / resize)."""
    model.eval().to(device)
    transform = build_transform(size, train=False, fit=fit)
    cache = cache or ImageCache(0)
    items = [LabeledImage(Path(p), 0) for p in paths]
    out: list[np.ndarray] = []
    bar = progress_bar(total=len(items), desc=desc, unit="img", enabled=progress)
    for batch in _batches(items, transform, cache, batch_size):
        out.append(model.probability(batch.to(device)).double().cpu().numpy())
        bar.update(len(batch))
    bar.close()
    return np.concatenate(out) if out else np.zeros(0)


def _selection_key(report: dict[str, Any], loss: float) -> tuple[float, float, float]:
    auc = report.get("roc_auc")
    return (float(report["balanced_accuracy"]), -1.0 if auc is None else float(auc), -loss)


def _validate(model: ImageClassifier, items: Sequence[LabeledImage], transform: Callable[
              [torch.Tensor], torch.Tensor], cache: ImageCache, batch_size: int,
              device: torch.device) -> tuple[dict[str, Any], float]:
    model.eval()
    scores: list[np.ndarray] = []
    losses: list[float] = []
    with torch.no_grad():
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            batch = torch.stack([transform(cache.get(i.path)) for i in chunk]).to(device)
            labels = torch.tensor([float(i.label) for i in chunk], device=device)
            logits = model(batch).float()
            losses.append(float(torch.nn.functional.binary_cross_entropy_with_logits(
                logits, labels, reduction="sum")))
            scores.append(torch.sigmoid(logits).double().cpu().numpy())
    probs = np.concatenate(scores)
    report = image_report(probs, np.array([i.label for i in items]), threshold=0.5)
    return report, sum(losses) / len(items)


_RESUMABLE_CHANGES = {"epochs", "device", "threads"}


def _prepare_run(run_dir: Path, config: dict[str, Any], resume: bool) -> None:
    saved = run_dir / "config.json"
    if resume:
        if not (run_dir / "last").exists() or not saved.exists():
            raise FakesegError(f"{run_dir}: nothing to resume (no last/ checkpoint); start "
                               "without --resume")
        stored = json.loads(saved.read_text())
        changed = sorted(k for k, v in config.items()
                         if k not in _RESUMABLE_CHANGES and stored.get(k) != v)
        if changed:
            raise FakesegError(f"{saved}: --resume with different options ({', '.join(changed)})"
                               "; resume as it was or use a new --out")
    elif (run_dir / "last").exists() or (run_dir / "best").exists():
        raise FakesegError(f"{run_dir}: already holds a run; pass --resume to continue it or "
                           "choose another --out")


def classify_train(
    data: str | Path | Sequence[LabeledImage],
    out: str | Path,
    *,
    backbone: str = DEFAULT_CLASSIFIER_BACKBONE,
    weights: str = "auto",
    epochs: int = 5,
    batch_size: int = 16,
    lr: float = 1e-4,
    weight_decay: float = 1e-3,
    size: int = 224,
    fit: str = "crop",
    seed: int = 0,
    augment: Iterable[str] = DEFAULT_AUGMENT,
    val_fraction: float = 0.2,
    dropout: float = 0.2,
    source_pattern: str | None = DEFAULT_SOURCE_PATTERN,
    class_names: tuple[str, str] = ("real", "synthetic"),
    device: str = "auto",
    threads: int | None = None,
    resume: bool = False,
    progress: bool = True,
    val_items: Sequence[LabeledImage] | None = None,
) -> dict[str, Any]:
    """Fine-tune a real-vs-synthetic classifier on ``data``; returns a summary dict.

    The best epoch (validation balanced accuracy, then ROC AUC, then loss) goes to RUN/best;
    with ``val_fraction=0`` there is no validation and the last epoch is the best.
    ``val_items`` (a caller's own split) replaces the ``val_fraction`` split of ``data``.
    """
    if backbone not in CLASSIFIER_BACKBONES:
        from fakeseg.features.trunks import get_trunk_spec

        get_trunk_spec(backbone, classifier=True)  # raises with did-you-mean
    if epochs < 1 or batch_size < 1 or size < 32 or lr <= 0:
        raise FakesegError("epochs and batch_size must be ≥ 1, size ≥ 32 and lr > 0")
    chosen_augment = check_augment(augment)
    build_transform(size, train=True, augment=chosen_augment, fit=fit)  # validates fit
    items = load_labeled(data, source_pattern=source_pattern)
    _check_classes(items, data if isinstance(data, str | Path) else "the given images",
                   class_names)
    run_dir = Path(out)
    config: dict[str, Any] = {
        "data": str(Path(data).resolve()) if isinstance(data, str | Path) else "list",
        "backbone": backbone, "weights": str(weights), "epochs": epochs,
        "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "size": size,
        "fit": fit, "seed": seed, "augment": list(chosen_augment), "val_fraction": val_fraction,
        "dropout": dropout, "source_pattern": source_pattern, "class_names": list(class_names),
        "device": device, "threads": threads,
    }
    _prepare_run(run_dir, config, resume)
    if threads:
        torch.set_num_threads(threads)
    torch_device = resolve_device(device)
    seed_everything(seed)
    model = build_classifier(backbone, weights, dropout=dropout).to(torch_device)
    config["weights_tag"] = model.trunk.weights_tag
    if resume:
        split = json.loads((run_dir / "split.json").read_text())
        train = [LabeledImage(Path(r["path"]), int(r["label"]), r["source"])
                 for r in split["train"]]
        val = [LabeledImage(Path(r["path"]), int(r["label"]), r["source"]) for r in split["val"]]
    else:
        train, val = ((items, list(val_items)) if val_items is not None
                      else split_items(items, val_fraction, seed))
        write_json(run_dir / "split.json", {
            "seed": seed, "val_fraction": val_fraction, "stratified_by": "label",
            "train": [i.to_json() for i in train], "val": [i.to_json() for i in val]})
    write_json(run_dir / "config.json", config)

    cache = ImageCache()
    bar = progress_bar(train + val, desc="loading", unit="img", enabled=progress)
    for item in bar:  # decode (and check) every image once, up front
        cache.get(item.path)
    train_transform = build_transform(size, train=True, augment=chosen_augment, fit=fit)
    eval_transform = build_transform(size, train=False, fit=fit)
    generator = torch.Generator().manual_seed(seed)
    sampler = balanced_sampler([i.label for i in train], generator=generator)
    loader = DataLoader(LabeledDataset(train, train_transform, cache), batch_size=batch_size,
                        sampler=sampler, num_workers=0, drop_last=len(train) >= batch_size)
    steps_per_epoch = len(loader)
    schedule = _Schedule(steps=epochs * steps_per_epoch, lr=lr)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    criterion = torch.nn.BCEWithLogitsLoss()

    epoch, best_key, best_epoch, history = 0, None, 0, []
    best_report: dict[str, Any] | None = None
    if resume:
        state = load_trainer_state(run_dir / "last")
        weights_state, _, folder = load_checkpoint(run_dir / "last")
        load_into(model, weights_state, folder / "model.safetensors")
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        generator.set_state(state["sampler_rng"])
        epoch = int(state["epoch"])
        meta = json.loads(state["summary"])
        best_key = tuple(meta["best_key"]) if meta["best_key"] is not None else None
        best_epoch, best_report = int(meta["best_epoch"]), meta["best_report"]
        history = json.loads((run_dir / "history.json").read_text())
    meta_base = {"kind": KIND, "backbone": backbone, "weights_tag": model.trunk.weights_tag,
                 "size": size, "fit": fit, "dropout": dropout, "threshold": 0.5,
                 "class_names": list(class_names), "config": config, "versions": versions()}
    started = time.time()
    while epoch < epochs:
        model.train()
        total, seen = 0.0, 0
        bar = progress_bar(loader, desc=f"epoch {epoch + 1}/{epochs}", unit="batch",
                   enabled=progress)
        for step_in_epoch, (images, labels) in enumerate(bar):
            step = epoch * steps_per_epoch + step_in_epoch
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, schedule)  # type: ignore[arg-type]
            images, labels = images.to(torch_device), labels.to(torch_device)
            loss = criterion(model(images).float(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(labels)
            seen += len(labels)
            bar.set_postfix(loss=f"{total / max(seen, 1):.4f}")
        epoch += 1
        entry: dict[str, Any] = {"epoch": epoch, "train_loss": total / max(seen, 1),
                                 "n_samples": seen}
        if val:
            report, val_loss = _validate(model, val, eval_transform, cache, batch_size,
                                         torch_device)
            entry.update(val_loss=val_loss, val=report)
            key = _selection_key(report, val_loss)
        else:
            report, key = {}, (float(epoch), 0.0, 0.0)  # no validation: the last epoch wins
        history.append(entry)
        meta = {**meta_base, "epoch": epoch, "val": report or None}
        if best_key is None or key > best_key:
            best_key, best_epoch, best_report = key, epoch, report or None
            save_checkpoint(run_dir / "best", model.state_dict(), meta)
        summary = {"best_key": list(best_key), "best_epoch": best_epoch,
                   "best_report": best_report}
        save_checkpoint(run_dir / "last", model.state_dict(), meta, trainer_state={
            "optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
            "sampler_rng": generator.get_state(), "epoch": epoch,
            "summary": json.dumps(summary)})
        write_json(run_dir / "history.json", history)
    return {
        "run": str(run_dir), "best": str(run_dir / "best"), "best_epoch": best_epoch,
        "val": best_report, "history": history, "n_train": len(train), "n_val": len(val),
        "backbone": backbone, "weights_tag": model.trunk.weights_tag,
        "seconds": time.time() - started,
    }


# --------------------------------------------------------------------------- scoring


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

    folder = resolve_checkpoint(run)
    meta = json.loads((folder / "model.json").read_text())
    detector = load_scorer(folder)
    if meta.get("fit") == "resize":
        scores = predict_probabilities(detector.model, paths, size=int(meta["size"]),
                                       fit="resize", batch_size=batch_size,
                                       device=resolve_device(device), progress=progress)
    else:
        scores = detector.score(paths, progress=progress)
    return scores, meta, folder, detector


def classify_eval(
    run: str | Path,
    data: str | Path | Sequence[LabeledImage],
    out: str | Path,
    *,
    scorer: str = "model",
    threshold: float | None = None,
    source_pattern: str | None = DEFAULT_SOURCE_PATTERN,
    batch_size: int = 16,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Image-level detection metrics of a scorer on labelled ``data``.

    ``scorer="model"``: ``run`` is a run of any detection method (``classify train
    --method``); the score is P(synthetic) at native resolution, threshold 0.5.
    ``scorer="heatmap"``: ``run`` is a FakeSegment run; the score is the flagged-pixel fraction
    of its heat map, threshold :data:`DECISION_COVERAGE`. Writes ``metrics.json``
    (overall and per-source :func:`image_report`, config, versions, seed), ``metrics.md`` and
    ``predictions.csv``; returns the JSON payload.
    """
    if scorer not in SCORERS:
        raise FakesegError(f"unknown scorer '{scorer}'; use model or heatmap")
    items = load_labeled(data, source_pattern=source_pattern)
    paths = [i.path for i in items]
    labels = np.array([i.label for i in items], dtype=np.int64)
    config: dict[str, Any] | None = None
    seed: int | None = None
    seen = 0
    if scorer == "model":
        scores, meta, folder, detector = _run_scores(run, paths, batch_size=batch_size,
                                                     device=device, progress=progress)
        thr = float(meta.get("threshold", 0.5)) if threshold is None else float(threshold)
        config = meta.get("config") or meta.get("options")
        seed = (config or {}).get("seed")
        seen = _seen_in_training(folder, paths)
        described = f"{detector.describe()}, {folder}"
        score_name = "probability_synthetic"
    else:
        from fakeseg.inference.localizer import Localizer

        segmenter = Localizer.load(run, device=device)
        scores = heatmap_scores(segmenter, paths, progress=progress)
        thr = DECISION_COVERAGE if threshold is None else float(threshold)
        meta = segmenter.meta
        config, seed = meta.get("config"), (meta.get("config") or {}).get("seed")
        described = (f"FakeSegment heat-map coverage (pixel threshold "
                     f"{segmenter.threshold:.3f}), {run}")
        score_name = "flagged_fraction"
    overall = image_report(scores, labels, threshold=thr)
    sources = [i.source for i in items]
    per_source = None
    if any(s is not None for s in sources):
        per_source = grouped_image_report(scores, labels, [s or "unknown" for s in sources],
                                          threshold=thr)
    out_dir = Path(out)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image", "label", "source", score_name])
    for item, score in zip(items, scores, strict=True):
        writer.writerow([str(item.path), item.label, item.source or "", f"{score:.6f}"])
    predictions = write_text(out_dir / "predictions.csv", buffer.getvalue())
    payload: dict[str, Any] = {
        "scorer": scorer, "scorer_description": described, "run": str(run),
        "data": str(data) if isinstance(data, str | Path) else "list",
        "threshold": thr, "score": score_name, "n": len(items),
        "n_seen_in_training": seen, "overall": overall, "per_source": per_source,
        "source_pattern": source_pattern, "config": config, "seed": seed,
        "versions": versions(), "predictions": str(predictions),
    }
    write_json(out_dir / "metrics.json", payload)
    lines = [f"# Detection metrics: {scorer} scorer", "",
             f"- scorer: {described}", f"- data: {payload['data']} ({len(items)} images, "
             f"{int(labels.sum())} synthetic)",
             f"- decision: {score_name} ≥ {thr:g}"]
    if seen:
        lines.append(f"- **warning**: {seen} of these images were used in training or "
                     "validation; these numbers are not a held-out estimate")
    lines += ["", metrics_table({"all": overall} if per_source is None else per_source,
                                "source" if per_source else "group"), ""]
    write_text(out_dir / "metrics.md", "\n".join(lines))
    return payload


def classify_predict(run: str | Path, images: Sequence[str | Path] | str | Path,
                     out: str | Path, *, batch_size: int = 16, device: str = "auto",
                     progress: bool = True) -> dict[str, Any]:
    """Write ``OUT/predictions.csv`` (image, probability_synthetic) for files/folders/globs."""
    out = check_output_dir(out)
    checked = ImageCache(0)
    paths, failures = [], []
    for path in _image_paths(images):  # one unreadable file is named and skipped, not fatal
        try:
            checked.get(path)
        except FakesegError as exc:
            failures.append(str(exc))
            warn(f"fakeseg: skipped: {exc}")
            continue
        paths.append(path)
    probs, meta, folder, _ = _run_scores(run, paths, batch_size=batch_size, device=device,
                                         progress=progress)
    names = meta.get("class_names", ["real", "synthetic"])
    column = "probability_synthetic" if names[1] in ("synthetic", "fake") else \
        f"probability_{names[1]}"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image", column])
    for path, prob in zip(paths, probs, strict=True):
        writer.writerow([str(path), f"{prob:.6f}"])
    target = write_text(Path(out) / "predictions.csv", buffer.getvalue())
    threshold = float(meta.get("threshold", 0.5))
    return {"csv": str(target), "n": len(paths), "model": str(folder),
            "n_flagged": int((probs >= threshold).sum()), "threshold": threshold,
            "failures": failures}


# --------------------------------------------------------------------------- experiment


def _mean_std(values: Sequence[float | None]) -> dict[str, float | None]:
    finite = [float(v) for v in values if v is not None]
    if not finite:
        return {"mean": None, "std": None}
    return {"mean": float(np.mean(finite)),
            "std": float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0}


def _cell(stat: dict[str, float | None]) -> str:
    if stat["mean"] is None:
        return "–"
    return f"{stat['mean']:.2f} ({stat['std']:.2f})"


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
            summary = classify_train(csv_path, run_dir / "run", backbone=backbone,
                                     weights=weights, epochs=epochs, batch_size=batch_size,
                                     lr=lr, size=size, fit=fit, seed=seed, augment=augment,
                                     val_fraction=0.0, source_pattern=None,
                                     class_names=(name_a, name_b), device=device,
                                     progress=progress)
            model, _, _ = load_classifier(summary["best"])
            probs = predict_probabilities(model, test_paths, size=size, fit=fit,
                                          batch_size=batch_size, device=resolve_device(device),
                                          cache=test_cache)
            overall = image_report(probs, test_labels)
            acc_a = image_report(probs[test_labels == 0], test_labels[test_labels == 0])
            acc_b = image_report(probs[test_labels == 1], test_labels[test_labels == 1])
            runs.append({"seed": seed, "run": summary["run"], "n_train": summary["n_train"],
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
