"""Training a segmenter on images with ground-truth masks (MediaEval Task B), not on pairs.

:class:`MaskedSegmentationTask` is a :class:`~fakeseg.training.segmentation.SegmentationTask`
whose data are manipulated images and their masks: batches are random crops of the training
images with their mask crops as labels, validation scores the validation images as they are.
Loss, adversaries, validation scores, checkpoints and ``--resume`` are the segmentation task's,
so the run folder loads in ``Localizer``, ``predict`` and ``evaluate`` like any other. A mask
names no real partner, so there is no heat-map target: ``target_mode`` must be ``mask``
(FakeSegment then learns from the image's own features, as every baseline does).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torch import nn

from fakeseg.config import TrainConfig, to_dict, versions
from fakeseg.data.composites import JPEG_BLOCK, CompositeItem, jpeg_roundtrip
from fakeseg.data.masked import LoadedMasked, MaskedSet, MaskOptions, index_masked, load_masked
from fakeseg.data.pairs import Split, load_split, make_split, save_split
from fakeseg.errors import DataError, FakesegError, ImageReadError
from fakeseg.io import write_json
from fakeseg.models.checkpoint import known_names
from fakeseg.progress import progress_bar, warn
from fakeseg.training.sampler import Batch
from fakeseg.training.segmentation import SegmentationTask, _segmenter
from fakeseg.training.trainer import Trainer, TrainResult, resolve_config

DATA_FILE = "masked_data.json"  # which images, masks and mask options the run trains on


class MaskedSampler:
    """Random crops (on the JPEG grid) of random training images, flipped and optionally
    re-encoded; the label is the crop of the image's mask. Crops past an edge are zero-padded
    (label 0)."""

    def __init__(self, images: Sequence[LoadedMasked], config: TrainConfig) -> None:
        self.images, self.config = list(images), config

    def sample(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        size = self.config.crop_size
        item = self.images[int(rng.integers(len(self.images)))]
        height, width = item.mask.shape
        top = JPEG_BLOCK * int(rng.integers(0, max(height - size, 0) // JPEG_BLOCK + 1))
        left = JPEG_BLOCK * int(rng.integers(0, max(width - size, 0) // JPEG_BLOCK + 1))
        image = TF.crop(torch.from_numpy(item.image).permute(2, 0, 1), top, left, size, size)
        label = TF.crop(torch.from_numpy(item.mask[None].astype(np.float32)), top, left, size,
                        size)
        if rng.random() < 0.5:
            image, label = image.flip(-1), label.flip(-1)
        if rng.random() < self.config.p_reencode:
            quality = int(rng.integers(60, 96))
            encoded = jpeg_roundtrip(image.permute(1, 2, 0).numpy(), quality)
            image = torch.from_numpy(encoded).permute(2, 0, 1)
        return image.contiguous(), label.contiguous()

    def batch(self, rng: np.random.Generator) -> Batch:
        images, labels = zip(*(self.sample(rng) for _ in range(self.config.batch_size)),
                             strict=True)
        label = torch.stack(labels)
        return Batch(torch.stack(images), label, label.clone())


def validation_item(loaded: LoadedMasked) -> CompositeItem:
    """A validation or test image as the protocol scores it (all real when its mask is empty)."""
    kind = "mask" if loaded.mask.any() else "pure_real"
    return CompositeItem(loaded.stem, loaded.stem, kind, loaded.image, loaded.mask,
                         loaded.image, None)


class MaskedSegmentationTask(SegmentationTask):
    """A segmenter on a localisation set's training images and masks (held in memory: a
    localisation set is small; one process: the sampler draws from one seeded stream)."""

    supports_distributed = False

    def __init__(self, config: TrainConfig, images: str | Path, masks: str | Path,
                 options: MaskOptions | None = None) -> None:
        super().__init__(config, images)
        self.masks = Path(masks)
        self.options = options or MaskOptions()
        self.dataset: MaskedSet | None = None
        self.split: Split | None = None
        self.masked_sampler: MaskedSampler | None = None
        self.rng = np.random.default_rng(config.seed)
        self.val_items: list[CompositeItem] = []

    def check_data(self) -> None:
        if self.config.target_mode != "mask":
            raise FakesegError(f"target_mode '{self.config.target_mode}' needs real/synthetic "
                               "pairs; training on --images/--masks learns the masks: use "
                               "--set target_mode=mask")
        jitter = [name for name in ("color_jitter", "scale_jitter") if getattr(self.config, name)]
        if jitter:  # the masked sampler does not apply them: refused, not silently ignored
            raise FakesegError(f"{', '.join(jitter)} apply to paired training only; drop "
                               f"--set {jitter[0]}=... for --images/--masks")
        self.dataset = index_masked(self.data, self.masks, self.options)

    def prepare(self, net: nn.Module, run_dir: Path, device: torch.device,
                progress: bool) -> None:
        assert self.dataset is not None
        dataset, config = self.dataset, self.config
        self.extractor = _segmenter(net).feature_extractor
        _check_same_data(run_dir / DATA_FILE, self._data_record())
        split_path = run_dir / "split.json"
        if split_path.exists():
            self.split = load_split(split_path)
        else:
            self.split = make_split(dataset.stems, val_fraction=config.val_fraction,
                                    test_fraction=config.test_fraction, seed=config.seed)
            save_split(self.split, split_path)
        if not self.split.val:
            raise FakesegError(f"{dataset.images}: the split left no validation images; add "
                               "images or raise val_fraction")
        train = self._load(dataset.subset(self.split.train), "training", progress)
        val = self._load(dataset.subset(self.split.val), "validation", progress)
        if not any(item.mask.any() for item in val):
            raise DataError(f"{dataset.masks}: no validation image has synthetic pixels, so no "
                            "threshold can be chosen; add manipulated images or change --seed")
        self.masked_sampler = MaskedSampler(train, config)
        self.val_items = [validation_item(item) for item in val]
        self.prepare_adversaries(_segmenter(net), device)

    def next_batch(self) -> Batch:
        assert self.masked_sampler is not None
        return self.masked_sampler.batch(self.rng)

    def validation_items(self) -> Iterator[CompositeItem]:
        return iter(self.val_items)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "numpy_rng": json.dumps(self.rng.bit_generator.state)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.rng.bit_generator.state = json.loads(state["numpy_rng"])

    def _load(self, entries: Sequence[Any], what: str, progress: bool) -> list[LoadedMasked]:
        """Read images and masks; an unreadable image is named and left out."""
        loaded: list[LoadedMasked] = []
        for entry in progress_bar(entries, desc=f"loading {what} images", unit="img",
                                  enabled=progress):
            try:
                loaded.append(load_masked(entry, self.options))
            except ImageReadError as exc:
                warn(f"fakeseg: skipped: {exc}")
        if not loaded:
            raise DataError(f"{self.data}: none of the {len(entries)} {what} image(s) could be "
                            "read; see the messages above")
        return loaded

    def _data_record(self) -> dict[str, Any]:
        assert self.dataset is not None
        return {"images": str(self.dataset.images.resolve()),
                "masks": str(self.dataset.masks.resolve()),
                "mask_options": asdict(self.options)}

    def checkpoint_meta(self, net: nn.Module) -> dict[str, Any]:
        assert self.split is not None
        extractor = self.extractor
        record = self._data_record()
        return {
            "model": self.config.model, "config": to_dict(self.config),
            "layers": list(extractor.layers) if extractor is not None else None,
            "weights_tag": extractor.weights_tag if extractor is not None else None,
            "scales": {},
            "n_parameters": sum(p.numel() for p in _segmenter(net).trainable_parameters()),
            "split": self.split.to_json(), "data": record["images"],
            "masks": record["masks"], "mask_options": record["mask_options"],
            "training_data": "images with masks", "versions": versions(),
        }


def _check_same_data(path: Path, record: dict[str, Any]) -> None:
    """A run trains on one set with one way of reading its masks; a resume may not change it."""
    if path.exists():
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise FakesegError(f"{path}: unreadable ({exc}); use a new --out") from exc
        if not isinstance(saved, dict) or saved != record:
            changed = sorted(k for k in record if not isinstance(saved, dict)
                             or saved.get(k) != record[k])
            raise FakesegError(f"{path}: this run was trained with other {', '.join(changed)}; "
                               "resume with the same --images/--masks and mask options, or use "
                               "a new --out")
    else:
        write_json(path, record)


def train_masked(images: str | Path, masks: str | Path, out: str | Path,
                 config: TrainConfig | None = None, *, options: MaskOptions | None = None,
                 resume: bool = False, progress: bool = True,
                 stop_after: int | None = None) -> TrainResult:
    """Train a segmenter (``config.model``) on ``images`` with ground-truth ``masks``.

    Same trainer, split file, checkpoints and ``resume`` as :func:`fakeseg.training.
    segmentation.train`; ``options`` say how masks are read and what a missing mask means.
    """
    chosen = resolve_config(Path(out), config, resume, TrainConfig, known_names())
    task = MaskedSegmentationTask(chosen, images, masks, options)
    return Trainer(task, out, progress=progress, stop_after=stop_after).fit(resume=resume)
