"""Training an image-level real-vs-synthetic classifier, through the one Trainer.

Following the two seed papers: an ImageNet-pretrained trunk fine-tuned with one logit and
binary cross-entropy (Wimmer et al.: AdamW, lr 1e-4, weight decay 1e-3), class-balanced
``WeightedRandomSampler`` batches (their fix for class imbalance), and the MediaEval team's
augmentations. The best epoch (validation balanced accuracy, then ROC AUC, then loss) goes to
``RUN/best``; with ``val_fraction=0`` there is no validation and the last epoch is the best.
The run folder is the trainer's (config.yaml, split.json, history.json, best/, last/).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from fakeseg.config import ClassifierConfig, to_dict, versions
from fakeseg.data.labeled import (
    CACHE_BYTES,
    ImageCache,
    LabeledDataset,
    LabeledImage,
    SameSizeBatchSampler,
    balanced_sampler,
    build_transform,
    check_augment,
    check_classes,
    load_labeled,
    split_items,
)
from fakeseg.data.shortcuts import warn_shortcuts
from fakeseg.device import amp_dtype
from fakeseg.evaluation.metrics import image_report
from fakeseg.inference.classifier import labeled_batches
from fakeseg.io import write_json
from fakeseg.models.classifier import KIND, ImageClassifier, build_classifier
from fakeseg.progress import progress_bar
from fakeseg.training.trainer import (
    Schedule,
    StepOutput,
    Task,
    Trainer,
    TrainResult,
    Validation,
    resolve_config,
)


class ClassificationTask(Task):
    """A trunk with one logit, fine-tuned on labelled images."""

    kind = KIND
    config: ClassifierConfig

    def __init__(self, config: ClassifierConfig, data: str | Path | Sequence[LabeledImage],
                 val_items: Sequence[LabeledImage] | None = None) -> None:
        super().__init__(config, data)
        self.val_items = list(val_items) if val_items is not None else None
        self.generator = torch.Generator().manual_seed(config.seed)
        self.train_items: list[LabeledImage] = []
        self.val: list[LabeledImage] = []
        self.cache = ImageCache(CACHE_BYTES)
        self.criterion = nn.BCEWithLogitsLoss()
        self._iterator: Any = None
        self._epoch = 0
        self._per_epoch = 1

    def schedule(self) -> Schedule:
        c = self.config
        return Schedule(c.epochs * self._per_epoch, self._per_epoch, c.lr, c.weight_decay,
                        c.early_stopping, c.seed, c.device, c.threads, c.amp)

    def check_data(self) -> None:
        from fakeseg.features.trunks import get_trunk_spec

        c = self.config
        get_trunk_spec(c.backbone, classifier=True)  # did-you-mean on a typo
        c.augment = list(check_augment(c.augment))
        build_transform(c.size, train=True, augment=c.augment, fit=c.fit)
        self.items = load_labeled(self.data, source_pattern=c.source_pattern)
        check_classes(self.items, self._data_name(), c.class_names)
        warn_shortcuts(self.items, self._data_name(), c.class_names, seed=c.seed)

    def build(self) -> ImageClassifier:
        return build_classifier(self.config.backbone, self.config.weights,
                                dropout=self.config.dropout)

    def prepare(self, net: nn.Module, run_dir: Path, device: torch.device,
                progress: bool) -> None:
        c = self.config
        split_path = run_dir / "split.json"
        if split_path.exists():
            split = json.loads(split_path.read_text())
            self.train_items = [_item(r) for r in split["train"]]
            self.val = [_item(r) for r in split["val"]]
        else:
            self.train_items, self.val = ((self.items, self.val_items)
                                          if self.val_items is not None
                                          else split_items(self.items, c.val_fraction, c.seed))
            write_json(split_path, {
                "seed": c.seed, "val_fraction": c.val_fraction, "stratified_by": "label",
                "train": [i.to_json() for i in self.train_items],
                "val": [i.to_json() for i in self.val]})
        sizes = {}
        for item in progress_bar(self.train_items + self.val, desc="loading", unit="img",
                                 enabled=progress):  # decode (and check) every image once
            sizes[item.path] = tuple(self.cache.get(item.path).shape)
        self.eval_transform = build_transform(c.size, train=False, fit=c.fit)
        sampler = balanced_sampler([i.label for i in self.train_items],
                                   generator=self.generator)
        dataset = LabeledDataset(self.train_items,
                                 build_transform(c.size, train=True, augment=c.augment,
                                                 fit=c.fit), self.cache)
        if c.fit == "original":  # images keep their sizes: a batch holds one size
            batches = SameSizeBatchSampler(sampler, [sizes[i.path] for i in self.train_items],
                                           c.batch_size)
            self.loader = DataLoader(dataset, batch_sampler=batches, num_workers=0)
        else:
            self.loader = DataLoader(dataset, batch_size=c.batch_size, sampler=sampler,
                                     num_workers=0,
                                     drop_last=len(self.train_items) >= c.batch_size)
        self._per_epoch = len(self.loader)
        self.weights_tag = _classifier(net).trunk.weights_tag

    def start_epoch(self, epoch: int) -> None:
        self._epoch = epoch + 1
        self._iterator = iter(self.loader)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        batch: tuple[torch.Tensor, torch.Tensor] = next(self._iterator)
        return batch

    def loss(self, net: nn.Module, batch: tuple[torch.Tensor, torch.Tensor],
             device: torch.device, amp: bool) -> StepOutput:
        images, labels = batch[0].to(device), batch[1].to(device)
        with torch.autocast(device.type, dtype=amp_dtype(device), enabled=amp):
            logits = net(images)
        loss = self.criterion(logits.float(), labels)
        return StepOutput(loss, {"bce": float(loss.detach())})

    def validate(self, net: nn.Module, device: torch.device) -> Validation:
        if not self.val:  # no validation: the last epoch wins
            return Validation({}, (float(self._epoch), 0.0, 0.0), {"threshold": 0.5},
                              "no validation")
        classifier = _classifier(net)
        scores, losses = [], []
        for images, labels in labeled_batches(self.val, self.eval_transform, self.cache,
                                              self.config.batch_size):
            logits = classifier(images.to(device)).float()
            losses.append(float(nn.functional.binary_cross_entropy_with_logits(
                logits, labels.to(device), reduction="sum")))
            scores.append(torch.sigmoid(logits).double().cpu().numpy())
        report = image_report(np.concatenate(scores), np.array([i.label for i in self.val]),
                              threshold=0.5)
        loss = sum(losses) / len(self.val)
        auc = report.get("roc_auc")
        selection = (float(report["balanced_accuracy"]), -1.0 if auc is None else float(auc),
                     -loss)
        flat = {k: v for k, v in report.items() if isinstance(v, int | float | type(None))}
        return Validation({**flat, "loss": loss}, selection, {"threshold": 0.5},
                          f"val balanced acc. {report['balanced_accuracy']:.3f}, "
                          f"AUC {auc if auc is None else round(auc, 3)}, loss {loss:.4f}")

    def checkpoint_meta(self, net: nn.Module) -> dict[str, Any]:
        c = self.config
        return {"backbone": c.backbone, "weights_tag": self.weights_tag, "size": c.size,
                "fit": c.fit, "dropout": c.dropout, "threshold": 0.5,
                "class_names": list(c.class_names), "config": to_dict(c),
                "data": self._data_name(), "n_train": len(self.train_items),
                "n_val": len(self.val), "versions": versions()}

    def state_dict(self) -> dict[str, Any]:
        return {"sampler_rng": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["sampler_rng"])

    def _data_name(self) -> str:
        return (str(Path(self.data).resolve()) if isinstance(self.data, str | Path)
                else "the given images")


def _item(row: dict[str, Any]) -> LabeledImage:
    return LabeledImage(Path(row["path"]), int(row["label"]), row.get("source"))


def _classifier(net: nn.Module) -> ImageClassifier:
    if not isinstance(net, ImageClassifier):
        raise TypeError(f"{type(net).__name__} is not an ImageClassifier")
    return net


def train_classifier(data: str | Path | Sequence[LabeledImage], out: str | Path,
                     config: ClassifierConfig | None = None, *, resume: bool = False,
                     progress: bool = True,
                     val_items: Sequence[LabeledImage] | None = None) -> TrainResult:
    """Fine-tune a real-vs-synthetic classifier on ``data`` into the run folder ``out``.

    ``val_items`` (a caller's own split) replaces the ``val_fraction`` split of ``data``.
    A resume keeps the saved config; only run length and hardware options may change.
    """
    chosen = resolve_config(Path(out), config, resume, ClassifierConfig)
    task = ClassificationTask(chosen, data, val_items)
    return Trainer(task, out, progress=progress).fit(resume=resume)
