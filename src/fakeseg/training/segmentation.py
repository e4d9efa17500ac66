"""Training a segmenter (FakeSegment or a baseline) on composites of a paired dataset.

:class:`SegmentationTask` is what the one :class:`~fakeseg.training.trainer.Trainer` needs:
the split, the pairs and their target maps, composite batches, the pixel BCE (plus the
adversarial loss of the paper's Eq. 3 when ``adv_weight`` > 0, and a model's own auxiliary
and discriminator losses when it declares them), and validation on fixed composites.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fakeseg.config import TrainConfig, from_dict, load_yaml, to_dict, versions
from fakeseg.data.composites import CompositeItem, composite_set
from fakeseg.data.pairs import (
    Pair,
    PairIndex,
    Split,
    index_pairs,
    load_pair,
    load_split,
    make_split,
    save_split,
)
from fakeseg.device import amp_dtype, resolve_device
from fakeseg.errors import FakesegError
from fakeseg.evaluation.metrics import dice, false_positive_fraction, iou, threshold_sweep
from fakeseg.evaluation.protocol import probability_map
from fakeseg.features import build_backbone
from fakeseg.features.backbones import FeaturePyramid
from fakeseg.features.target import (
    TargetStore,
    cache_key,
    compute_target_maps,
    fit_scales,
    weights_digest,
)
from fakeseg.io import check_output_dir, folder_lock, write_json
from fakeseg.models.base import Segmenter, smooth_probabilities
from fakeseg.models.checkpoint import known_names
from fakeseg.models.discriminator import PatchDiscriminator
from fakeseg.models.registry import build_model
from fakeseg.progress import say
from fakeseg.training.losses import (
    discriminator_loss,
    generator_adversarial,
    pixel_loss,
    soft_dice,
)
from fakeseg.training.sampler import Batch
from fakeseg.training.streaming import (
    CompositeStream,
    StoreBuild,
    Targets,
    build_stream_store,
    composite_loader,
    default_workers,
)
from fakeseg.training.trainer import (
    CONFIG_FILE,
    Schedule,
    StepOutput,
    Task,
    Trainer,
    TrainResult,
    Validation,
    resolve_config,
    unwrap,
)

TARGETS_DIR = "targets"
PIXELS_DIR = "pixels"  # the decoded pixel store training reads (see training/streaming.py)
SCALES_FILE = "scales.json"
#: validation inputs up to this size stay in memory between epochs
VAL_CACHE_BYTES = 256 * 2**20


@dataclass
class PreparedData:
    split: Split
    train: list[Pair]
    val: list[Pair]
    targets: Targets | None  # None: target_mode "mask" needs no heat maps
    scales: dict[str, float]
    store: StoreBuild  # the training pairs, decoded (RUN/pixels)


@dataclass
class TargetsResult:
    """What ``fakeseg targets`` did: where the maps are, how many it computed, the scales."""

    root: Path
    n_pairs: int
    n_computed: int
    scales: dict[str, float]
    seconds: float


def run_split(index: PairIndex, run_dir: Path, config: TrainConfig) -> Split:
    """The run's split: ``RUN/split.json`` when it exists, else a new seeded one saved there."""
    split_path = run_dir / "split.json"
    if split_path.exists():
        split = load_split(split_path)
    else:
        split = make_split(index.stems, val_fraction=config.val_fraction,
                           test_fraction=config.test_fraction, seed=config.seed)
        save_split(split, split_path)
    if not split.val:
        raise FakesegError(f"{index.root}: the split left no validation pairs; add pairs or "
                           "raise val_fraction")
    return split


def prepare_targets(index: PairIndex, run_dir: Path, config: TrainConfig,
                    extractor: FeaturePyramid, *, device: torch.device,
                    progress: bool, workers: int = 0) -> tuple[Targets, int]:
    """Layer maps of every training pair in ``RUN/targets`` (computing only the missing
    ones), then the per-layer scales fitted in one streaming pass over the stored maps."""
    layers = list(extractor.layers)
    weights = None
    if config.layer_weights is not None:
        if len(config.layer_weights) != len(layers):
            raise FakesegError(f"layer_weights has {len(config.layer_weights)} values for "
                               f"{len(layers)} layers ({', '.join(layers)}); give one each")
        weights = dict(zip(layers, config.layer_weights, strict=True))
    train = index.subset(run_split(index, run_dir, config).train)
    extra = f"{config.allow_resize}|{weights_digest(extractor)}"  # "random" weights differ
    keys = {pair.stem: cache_key(pair.real, pair.synthetic, extractor.name,
                                 extractor.weights_tag, layers, extra=extra)
            for pair in train}
    store = TargetStore(run_dir / TARGETS_DIR)
    extractor.to(device)
    computed = compute_target_maps(extractor, train, keys, store, device=device,
                                   batch_size=config.target_batch, workers=workers,
                                   allow_resize=config.allow_resize, progress=progress)
    scales = fit_scales((store.get(pair.stem) for pair in train), config.target_percentile)
    write_json(store.root / SCALES_FILE, {"scales": scales, "percentile":
                                          config.target_percentile, "pairs": len(train)})
    return Targets(store.root, scales, weights, keys), computed


def compute_targets(data: str | Path, out: str | Path, config: TrainConfig | None = None, *,
                    progress: bool = True) -> TargetsResult:
    """``fakeseg targets``: the training pairs' target maps and scales into ``RUN/targets``,
    resumable (pairs already stored are skipped). A run's own ``config.yaml`` wins when the
    folder holds one, so the maps are those its training will use; the split is the run's
    ``split.json`` (made here when missing, then reused by ``train``)."""
    started = time.time()
    run_dir = check_output_dir(out)
    saved = run_dir / CONFIG_FILE
    if saved.exists():
        config = from_dict(TrainConfig, load_yaml(saved), source=str(saved), names=known_names())
    chosen = (config or TrainConfig()).validate(names=known_names())
    index = index_pairs(data)
    index.require_unambiguous()
    torch.manual_seed(chosen.seed)  # "random" backbone weights: the same each time
    extractor = build_backbone(chosen.backbone, chosen.backbone_weights, chosen.layers)
    device = resolve_device(chosen.device)
    with folder_lock(run_dir, "targets"):
        targets, computed = prepare_targets(index, run_dir, chosen, extractor, device=device,
                                            progress=progress, workers=resolve_workers(chosen))
    n_pairs = len(load_split(run_dir / "split.json").train)
    return TargetsResult(targets.root, n_pairs, computed, targets.scales,
                         time.time() - started)


def resolve_workers(config: TrainConfig, local_world: int = 1) -> int:
    """``workers`` of a config: −1 means the machine's default (cores − 1)."""
    return config.workers if config.workers >= 0 else default_workers(local_world)


def prepare_data(index: PairIndex, run_dir: Path, config: TrainConfig,
                 extractor: FeaturePyramid | None, *, device: torch.device,
                 progress: bool, workers: int = 0) -> PreparedData:
    """Split (or reuse the run's split), the targets when the config's mode needs them, and
    the training pairs decoded into ``RUN/pixels`` (only those missing or changed). No pixels
    are held: crops are read while training (:mod:`fakeseg.training.streaming`)."""
    split = run_split(index, run_dir, config)
    if progress:
        say(f"split: {len(split.train)} training, {len(split.val)} validation, "
            f"{len(split.test)} test pairs ({run_dir / 'split.json'})")
    targets = None
    if config.target_mode != "mask":
        if extractor is None:
            raise FakesegError(f"target_mode '{config.target_mode}' needs a feature backbone")
        targets, _ = prepare_targets(index, run_dir, config, extractor, device=device,
                                     progress=progress, workers=workers)
    train = index.subset(split.train)
    store = build_stream_store(train, run_dir / PIXELS_DIR, allow_resize=config.allow_resize,
                               targets=targets, workers=workers, progress=progress)
    return PreparedData(split, train, index.subset(split.val), targets,
                        targets.scales if targets is not None else {}, store)


def validation_scores(probs: Sequence[np.ndarray], masks: Sequence[np.ndarray],
                      kinds: Sequence[str]) -> dict[str, Any]:
    mixed = [(p, m) for p, m, k in zip(probs, masks, kinds, strict=True)
             if k not in ("pure_real", "pure_synthetic")]
    mixed_probs, targets = [p for p, _ in mixed], [m for _, m in mixed]
    threshold, best_f1, auc = threshold_sweep(mixed_probs, targets)  # one sort for both
    pixels = np.concatenate([p.ravel() for p in mixed_probs])  # micro: one pixel set
    truth = np.concatenate([m.ravel() for m in targets])
    real_probs = [p for p, k in zip(probs, kinds, strict=True) if k == "pure_real"]
    return {
        "f1_best": float(best_f1), "threshold": float(threshold),
        "dice@0.5": dice(pixels, truth), "iou@0.5": iou(pixels, truth),
        "pixel_auc": auc,
        "fp_real@best": false_positive_fraction(real_probs, threshold) if real_probs else None,
    }


class SegmentationTask(Task):
    """FakeSegment or a baseline on composites of a paired dataset's training pairs.

    Batches stream from disk (:mod:`fakeseg.training.streaming`); under DDP each rank draws
    its slice of the global sample stream (:meth:`set_shard`).
    """

    kind = "segmenter"
    config: TrainConfig
    supports_distributed = True

    def __init__(self, config: TrainConfig, data: str | Path) -> None:
        super().__init__(config, data)
        self.index: PairIndex | None = None
        self.extractor: FeaturePyramid | None = None
        self.prepared: PreparedData | None = None
        self.stream: CompositeStream | None = None
        self.batches: Iterator[Batch] | None = None
        self.step = 0  # batches drawn so far: where the stream resumes
        self.disc: PatchDiscriminator | None = None
        self.d_optimizer: torch.optim.Optimizer | None = None
        self.own_d_optimizer: torch.optim.Optimizer | None = None
        self.val_cache: list[tuple[np.ndarray, np.ndarray, str]] | None = None

    def schedule(self) -> Schedule:
        c = self.config
        return Schedule(c.steps, c.steps_per_epoch, c.lr, c.weight_decay, c.early_stopping,
                        c.seed, c.device, c.threads, c.amp, c.minutes, c.ema_decay)

    def check_data(self) -> None:
        self.index = index_pairs(self.data)  # layout errors before the slow model build
        self.index.require_unambiguous()

    def build(self) -> Segmenter:
        return build_model(to_dict(self.config))

    def optimised_parameters(self, net: nn.Module) -> list[nn.Parameter]:
        return _segmenter(net).trainable_parameters()

    def check_distributed(self, net: nn.Module) -> None:
        segmenter = _segmenter(net)
        if self.config.adv_weight > 0 or segmenter.has_own_adversary:
            raise FakesegError("adversarial training (adv_weight > 0, or a model with its own "
                               "discriminator) runs in one process only; drop --nproc/torchrun "
                               "or set adv_weight=0")

    def prepare(self, net: nn.Module, run_dir: Path, device: torch.device,
                progress: bool) -> None:
        config, segmenter = self.config, _segmenter(net)
        extractor = segmenter.feature_extractor
        if extractor is None and config.target_mode != "mask":
            extractor = build_backbone(config.backbone, config.backbone_weights, config.layers)
        self.extractor = extractor
        assert self.index is not None
        self.workers = resolve_workers(config, self.local_world)
        self.prepared = prepare_data(self.index, run_dir, config, extractor, device=device,
                                     progress=progress, workers=self.workers)
        self.device = device
        self.prepare_adversaries(segmenter, device)
        self.stream = CompositeStream(self.prepared.train, config,
                                      store=self.prepared.store.store)

    def prepare_adversaries(self, segmenter: Segmenter, device: torch.device) -> None:
        """The discriminator of Eq. 3 (``adv_weight`` > 0) and a model's own, with optimisers."""
        config = self.config
        if config.adv_weight > 0:
            self.disc = PatchDiscriminator(with_image=True).to(device)
            self.d_optimizer = torch.optim.AdamW(self.disc.parameters(), lr=config.lr,
                                                 betas=(0.5, 0.999))
        if segmenter.has_own_adversary:
            self.own_d_optimizer = torch.optim.AdamW(segmenter.discriminator_parameters(),
                                                     lr=config.lr, betas=(0.5, 0.999))

    def next_batch(self) -> Batch:
        if self.batches is None:
            assert self.stream is not None
            self.batches = iter(composite_loader(
                self.stream, self.step, max(self.config.steps, self.step + 1), rank=self.rank,
                world=self.world, workers=self.workers,
                pin_memory=self.device.type == "cuda"))
        self.step += 1
        return next(self.batches)

    def loss(self, net: nn.Module, batch: Batch, device: torch.device,
             amp: bool) -> StepOutput:
        segmenter = _segmenter(unwrap(net))
        image = batch.image.to(device, non_blocking=True)
        if device.type == "cuda":
            image = image.contiguous(memory_format=torch.channels_last)
        label = batch.label.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype(device), enabled=amp):
            logits = net(image)  # through the DDP wrapper, when there is one
        bce = pixel_loss(logits, label, batch.mask.to(device, non_blocking=True),
                         real_weight=self.config.real_pixel_weight,
                         hard_negative_fraction=self.config.hard_negative_fraction)
        loss, terms = bce, {"bce": float(bce.detach())}
        if self.config.dice_weight:
            dice = soft_dice(logits, label)
            loss = loss + self.config.dice_weight * dice
            terms["dice"] = float(dice.detach())
        context: dict[str, Any] = {"image": image, "label": label, "logits": logits}
        if self.disc is not None:
            probability = torch.sigmoid(logits.float())
            adv = generator_adversarial(self.disc, probability, image)
            loss = loss + self.config.adv_weight * adv
            terms["adv"] = float(adv.detach())
            context["probability"] = probability
        if segmenter.has_auxiliary_loss:
            aux, aux_terms = segmenter.auxiliary_loss(image, label, logits)
            loss = loss + aux
            terms.update(aux_terms)
        return StepOutput(loss, terms, context)

    def after_step(self, net: nn.Module, batch: Batch, output: StepOutput,
                   device: torch.device) -> dict[str, float]:
        terms: dict[str, float] = {}
        image, label = output.context["image"], output.context["label"]
        if self.disc is not None and self.d_optimizer is not None:
            d_loss = discriminator_loss(self.disc, label, output.context["probability"], image)
            self.d_optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            self.d_optimizer.step()
            terms["d"] = float(d_loss.detach())
        if self.own_d_optimizer is not None:
            own_loss, own_terms = _segmenter(unwrap(net)).discriminator_loss(
                image, label, output.context["logits"])
            self.own_d_optimizer.zero_grad(set_to_none=True)
            own_loss.backward()
            self.own_d_optimizer.step()
            terms.update(own_terms)
        return terms

    def validation_items(self) -> Iterator[CompositeItem]:
        """Fixed composites of the validation pairs (at most ``val_pairs`` of them), built one
        pair at a time."""
        assert self.prepared is not None
        config = self.config
        pairs = self.prepared.val[:config.val_pairs] if config.val_pairs else self.prepared.val
        for i, pair in enumerate(pairs):
            loaded = load_pair(pair, allow_resize=config.allow_resize)
            yield from composite_set([loaded], seed=[config.seed + 1, i],
                                     kinds=config.mask_kinds, per_pair=3,
                                     coverage=config.coverage, blend_sigma=config.blend_sigma)

    def validation_inputs(self) -> Iterator[tuple[np.ndarray, np.ndarray, str]]:
        """(image, mask, kind) of :meth:`validation_items`. They are the same every epoch, so
        the first pass keeps them when they fit in :data:`VAL_CACHE_BYTES` (decoding and
        compositing cost a fifth of a validation); larger sets are rebuilt each time."""
        if self.val_cache is not None:
            yield from self.val_cache
            return
        kept: list[tuple[np.ndarray, np.ndarray, str]] | None = []
        size = 0
        for item in self.validation_items():
            entry = (item.image, item.mask, item.kind)
            size += item.image.nbytes + item.mask.nbytes
            if size > VAL_CACHE_BYTES:
                kept = None
            elif kept is not None:
                kept.append(entry)
            yield entry
        self.val_cache = kept

    def validate(self, net: nn.Module, device: torch.device) -> Validation:
        """Scores of :meth:`validation_inputs`; only the probability maps are kept (and the
        inputs when they are cached)."""
        segmenter = _segmenter(unwrap(net))

        def prob_fn(x: torch.Tensor) -> torch.Tensor:
            return smooth_probabilities(torch.sigmoid(segmenter.forward_any_size(x.to(device))),
                                        self.config.smooth_sigma)
        probs, masks, kinds = [], [], []
        for image, mask, kind in self.validation_inputs():
            probs.append(probability_map(prob_fn, image))
            masks.append(mask)
            kinds.append(kind)
        scores = validation_scores(probs, masks, kinds)
        return Validation(scores, (scores["f1_best"],), {"threshold": scores["threshold"]},
                          f"val F1 {scores['f1_best']:.3f} (thr {scores['threshold']:.2f}), "
                          f"Dice@0.5 {scores['dice@0.5']:.3f}")

    def checkpoint_meta(self, net: nn.Module) -> dict[str, Any]:
        assert self.prepared is not None
        extractor = self.extractor
        return {
            "model": self.config.model, "config": to_dict(self.config),
            "layers": list(extractor.layers) if extractor is not None else None,
            "weights_tag": extractor.weights_tag if extractor is not None else None,
            "scales": self.prepared.scales,
            "n_parameters": sum(p.numel() for p in _segmenter(net).trainable_parameters()),
            "split": self.prepared.split.to_json(), "data": str(Path(self.data).resolve()),
            "versions": versions(),
        }

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"stream_step": self.step}
        if self.disc is not None and self.d_optimizer is not None:
            state.update(disc=self.disc.state_dict(), d_optimizer=self.d_optimizer.state_dict())
        if self.own_d_optimizer is not None:
            state["own_d_optimizer"] = self.own_d_optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.disc is not None and self.d_optimizer is not None:
            self.disc.load_state_dict(state["disc"])
            self.d_optimizer.load_state_dict(state["d_optimizer"])
        if self.own_d_optimizer is not None:
            self.own_d_optimizer.load_state_dict(state["own_d_optimizer"])
        self.step = int(state["stream_step"])
        self.batches = None


def _segmenter(net: nn.Module) -> Segmenter:
    if not isinstance(net, Segmenter):
        raise TypeError(f"{type(net).__name__} does not follow the Segmenter contract")
    return net


def train(data: str | Path, out: str | Path, config: TrainConfig | None = None, *,
          resume: bool = False, progress: bool = True,
          stop_after: int | None = None) -> TrainResult:
    """Train a segmenter (``config.model``: FakeSegment by default) on a paired dataset.

    Returns where the best checkpoint is. ``stop_after`` ends this session after that many
    steps (a later ``resume`` continues).
    """
    chosen = resolve_config(Path(out), config, resume, TrainConfig, known_names())
    return Trainer(SegmentationTask(chosen, data), out, progress=progress,
                   stop_after=stop_after).fit(resume=resume)
