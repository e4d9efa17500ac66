"""Training a segmenter (FakeSegment or a baseline) on composites of a paired dataset.

:class:`SegmentationTask` is what the one :class:`~fakeseg.training.trainer.Trainer` needs:
the split, the pairs and their target maps, composite batches, the pixel BCE (plus the
adversarial loss of the paper's Eq. 3 when ``adv_weight`` > 0, and a model's own auxiliary
and discriminator losses when it declares them), and validation on fixed composites.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fakeseg.config import TrainConfig, to_dict, versions
from fakeseg.data.composites import CompositeItem, composite_set
from fakeseg.data.pairs import (
    LoadedPair,
    PairIndex,
    Split,
    index_pairs,
    load_pair,
    load_split,
    make_split,
    save_split,
)
from fakeseg.errors import FakesegError
from fakeseg.evaluation.metrics import best_threshold, false_positive_fraction, segmentation_report
from fakeseg.evaluation.protocol import is_mixed, probability_scorer
from fakeseg.features.backbones import FeatureExtractor
from fakeseg.features.target import TargetCache, cache_key, fit_scales, heat_map, pair_layer_maps
from fakeseg.models.base import Segmenter
from fakeseg.models.checkpoint import known_names
from fakeseg.models.discriminator import PatchDiscriminator
from fakeseg.models.registry import build_model
from fakeseg.progress import progress_bar
from fakeseg.training.losses import discriminator_loss, generator_adversarial, pixel_loss
from fakeseg.training.sampler import Batch, CompositeSampler
from fakeseg.training.trainer import (
    Schedule,
    StepOutput,
    Task,
    Trainer,
    TrainResult,
    Validation,
    resolve_config,
)


@dataclass
class PreparedData:
    split: Split
    train: list[LoadedPair]
    val: list[LoadedPair]
    heats: list[np.ndarray | None]
    scales: dict[str, float]


def prepare_data(index: PairIndex, run_dir: Path, config: TrainConfig,
                 extractor: FeatureExtractor | None, *, device: torch.device,
                 progress: bool) -> PreparedData:
    """Split (or reuse the run's split), load pairs, compute/cached targets, fit scales."""
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
    bar = progress_bar(total=len(split.train) + len(split.val), desc="loading pairs",
                       unit="pair", enabled=progress)
    loaded: dict[str, LoadedPair] = {}
    for pair in index.subset(split.train + split.val):
        loaded[pair.stem] = load_pair(pair, allow_resize=config.allow_resize)
        bar.update()
    bar.close()
    train = [loaded[s] for s in split.train]
    val = [loaded[s] for s in split.val]
    scales: dict[str, float] = {}
    heats: list[np.ndarray | None] = [None] * len(train)
    weights = None
    if config.target_mode != "mask":
        if extractor is None:
            raise FakesegError(f"target_mode '{config.target_mode}' needs a feature backbone")
        layers = list(extractor.layers)
        if config.layer_weights is not None:
            if len(config.layer_weights) != len(layers):
                raise FakesegError(f"layer_weights has {len(config.layer_weights)} values for "
                                   f"{len(layers)} layers ({', '.join(layers)}); give one each")
            weights = dict(zip(layers, config.layer_weights, strict=True))
        cache = TargetCache(run_dir / "cache")
        by_stem = {p.stem: p for p in index.pairs}
        maps = []
        for pair in progress_bar(train, desc="target maps", unit="pair", enabled=progress):
            paths = by_stem[pair.stem]
            key = cache_key(paths.real, paths.synthetic, extractor.name, extractor.weights_tag,
                            layers, extra=str(config.allow_resize))
            maps.append(pair_layer_maps(extractor, pair.real, pair.synthetic, cache=cache,
                                        key=key, device=device))
        scales = fit_scales(maps, config.target_percentile)
        heats = [heat_map(m, p.synthetic.shape[:2], scales=scales, weights=weights)
                 for m, p in zip(maps, train, strict=True)]
    return PreparedData(split, train, val, heats, scales)


def validation_scores(probs: list[np.ndarray], composites: list[CompositeItem]
                      ) -> dict[str, Any]:
    mixed = [(p, c.mask) for p, c in zip(probs, composites, strict=True) if is_mixed(c)]
    mixed_probs, targets = [p for p, _ in mixed], [m for _, m in mixed]
    threshold, best_f1 = best_threshold(mixed_probs, targets)
    at_half = segmentation_report(mixed_probs, targets, threshold=0.5)
    real_probs = [p for p, c in zip(probs, composites, strict=True) if c.kind == "pure_real"]
    return {
        "f1_best": float(best_f1), "threshold": float(threshold),
        "dice@0.5": at_half["micro"]["dice"], "iou@0.5": at_half["micro"]["iou"],
        "pixel_auc": at_half["micro"]["pixel_auc"],
        "fp_real@best": false_positive_fraction(real_probs, threshold) if real_probs else None,
    }


class SegmentationTask(Task):
    """FakeSegment or a baseline on composites of a paired dataset's training pairs."""

    kind = "segmenter"
    config: TrainConfig

    def __init__(self, config: TrainConfig, data: str | Path) -> None:
        super().__init__(config, data)
        self.index: PairIndex | None = None
        self.extractor: FeatureExtractor | None = None
        self.prepared: PreparedData | None = None
        self.rng = np.random.default_rng(config.seed)
        self.disc: PatchDiscriminator | None = None
        self.d_optimizer: torch.optim.Optimizer | None = None
        self.own_d_optimizer: torch.optim.Optimizer | None = None

    def schedule(self) -> Schedule:
        c = self.config
        return Schedule(c.steps, c.steps_per_epoch, c.lr, c.weight_decay, c.early_stopping,
                        c.seed, c.device, c.threads, c.amp, c.minutes)

    def check_data(self) -> None:
        self.index = index_pairs(self.data)  # layout errors before the slow model build
        self.index.require_unambiguous()

    def build(self) -> Segmenter:
        return build_model(to_dict(self.config))

    def optimised_parameters(self, net: nn.Module) -> list[nn.Parameter]:
        return _segmenter(net).trainable_parameters()

    def prepare(self, net: nn.Module, run_dir: Path, device: torch.device,
                progress: bool) -> None:
        config, segmenter = self.config, _segmenter(net)
        extractor = segmenter.feature_extractor
        if extractor is None and config.target_mode != "mask":
            from fakeseg.features import build_backbone

            extractor = build_backbone(config.backbone, config.backbone_weights, config.layers)
        self.extractor = extractor
        assert self.index is not None
        self.prepared = prepare_data(self.index, run_dir, config, extractor, device=device,
                                     progress=progress)
        if config.adv_weight > 0:
            self.disc = PatchDiscriminator(with_image=True).to(device)
            self.d_optimizer = torch.optim.AdamW(self.disc.parameters(), lr=config.lr,
                                                 betas=(0.5, 0.999))
        if segmenter.has_own_adversary:
            self.own_d_optimizer = torch.optim.AdamW(segmenter.discriminator_parameters(),
                                                     lr=config.lr, betas=(0.5, 0.999))
        self.sampler = CompositeSampler(self.prepared.train, self.prepared.heats, config)
        self.val_set = composite_set(self.prepared.val, seed=config.seed + 1,
                                     kinds=config.mask_kinds, per_pair=3,
                                     coverage=config.coverage, blend_sigma=config.blend_sigma)

    def next_batch(self) -> Batch:
        return self.sampler.batch(self.rng)

    def loss(self, net: nn.Module, batch: Batch, device: torch.device,
             amp: bool) -> StepOutput:
        segmenter = _segmenter(net)
        image, label = batch.image.to(device), batch.label.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = segmenter(image)
        bce = pixel_loss(logits, label, batch.mask.to(device),
                         real_weight=self.config.real_pixel_weight,
                         hard_negative_fraction=self.config.hard_negative_fraction)
        loss, terms = bce, {"bce": float(bce.detach())}
        context: dict[str, Any] = {"image": image, "label": label, "logits": logits}
        if self.disc is not None:
            probability = torch.sigmoid(logits.float())
            adv = generator_adversarial(self.disc, probability, image)
            loss = bce + self.config.adv_weight * adv
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
            own_loss, own_terms = _segmenter(net).discriminator_loss(
                image, label, output.context["logits"])
            self.own_d_optimizer.zero_grad(set_to_none=True)
            own_loss.backward()
            self.own_d_optimizer.step()
            terms.update(own_terms)
        return terms

    def validate(self, net: nn.Module, device: torch.device) -> Validation:
        segmenter = _segmenter(net)
        scorer = probability_scorer(
            lambda x: torch.sigmoid(segmenter.forward_any_size(x.to(device))))
        scores = validation_scores([scorer(item) for item in self.val_set], self.val_set)
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
        state: dict[str, Any] = {"numpy_rng": json.dumps(self.rng.bit_generator.state)}
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
        self.rng.bit_generator.state = json.loads(state["numpy_rng"])


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
