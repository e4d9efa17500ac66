"""The trainer: seeded, checkpointed every epoch, resumable bit-exactly, early-stopping.

Run folder layout::

    RUN/config.yaml      the effective config
    RUN/split.json       the pairs used for train / val / test
    RUN/history.json     one entry per epoch (a copy of last/history.json)
    RUN/best/            model.safetensors + model.json + history.json (best validation F1)
    RUN/last/            the same plus trainer_state.pt, for --resume
    RUN/cache/           per-layer target maps

Each checkpoint folder is written and switched as one set (see models/checkpoint.py), and the
whole run holds the folder's lock, so a second ``train`` into it fails at once.
"""

from __future__ import annotations

import errno
import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from fakeseg.config import TrainConfig, from_dict, load_yaml, to_dict, versions
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
from fakeseg.device import resolve_device
from fakeseg.errors import CheckpointError, FakesegError
from fakeseg.evaluation.metrics import best_threshold, false_positive_fraction, segmentation_report
from fakeseg.evaluation.protocol import is_mixed, probability_scorer
from fakeseg.features.target import TargetCache, cache_key, fit_scales, heat_map, pair_layer_maps
from fakeseg.io import check_output_dir, folder_lock, write_json, write_text
from fakeseg.models.checkpoint import (
    META_FILE,
    ResumeState,
    known_names,
    load_into,
    load_resume_state,
    recover_checkpoint,
    save_checkpoint,
)
from fakeseg.models.discriminator import PatchDiscriminator
from fakeseg.models.registry import build_model
from fakeseg.progress import progress_bar, warn
from fakeseg.training.losses import discriminator_loss, generator_adversarial, pixel_bce
from fakeseg.training.sampler import CompositeSampler

HISTORY_FILE = "history.json"
#: a full disk, a quota or a read-only file system while the run writes: a user error
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class PreparedData:
    split: Split
    train: list[LoadedPair]
    val: list[LoadedPair]
    heats: list[np.ndarray | None]
    scales: dict[str, float]


@dataclass
class TrainResult:
    run_dir: Path
    best_dir: Path
    best_val: dict[str, Any]
    steps: int
    stopped_early: bool
    threshold: float
    history: list[dict[str, Any]] = field(default_factory=list)


def prepare_data(data: str | Path | PairIndex, run_dir: Path, config: TrainConfig,
                 extractor: torch.nn.Module | None, *, device: torch.device,
                 progress: bool) -> PreparedData:
    """Split (or reuse the run's split), load pairs, compute/cached targets, fit scales."""
    index = data if isinstance(data, PairIndex) else index_pairs(data)
    index.require_unambiguous()
    split_path = run_dir / "split.json"
    if split_path.exists():
        split = load_split(split_path)
    else:
        split = make_split(index.stems, val_fraction=config.val_fraction,
                           test_fraction=config.test_fraction, seed=config.seed)
        save_split(split, split_path)
    if not split.val:
        raise FakesegError(f"{data}: the split left no validation pairs; add pairs or raise "
                           "val_fraction")
    bar = progress_bar(total=len(split.train) + len(split.val), desc="loading pairs",
               enabled=progress)
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
        for pair in progress_bar(train, desc="target maps", enabled=progress):
            paths = by_stem[pair.stem]
            key = cache_key(paths.real, paths.synthetic, extractor.name, extractor.weights_tag,
                            layers, extra=str(config.allow_resize))
            maps.append(pair_layer_maps(extractor, pair.real, pair.synthetic, cache=cache,
                                        key=key, device=device))
        scales = fit_scales(maps, config.target_percentile)
        heats = [heat_map(m, p.synthetic.shape[:2], scales=scales, weights=weights)
                 for m, p in zip(maps, train, strict=True)]
    return PreparedData(split, train, val, heats, scales)


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up over 5 % of the steps, then cosine decay to 5 % of the base rate."""
    warmup = max(1, int(0.05 * config.steps))
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, config.steps - warmup)
    return config.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


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


def _effective_config(run_dir: Path, config: TrainConfig | None, resume: bool) -> TrainConfig:
    saved = run_dir / "config.yaml"
    if resume:
        if not saved.exists():
            raise FakesegError(f"{run_dir}: nothing to resume (no config.yaml); "
                               "start without --resume")
        stored = from_dict(TrainConfig, load_yaml(saved), source=str(saved), names=known_names())
        if config is not None and to_dict(config) != to_dict(stored):
            changed = sorted(k for k, v in to_dict(config).items() if to_dict(stored)[k] != v)
            allowed = {"steps", "device", "threads", "early_stopping"}
            if set(changed) - allowed:
                raise FakesegError(f"{saved}: --resume with a different config "
                                   f"({', '.join(changed)}); resume as it was or use a new --out")
            return config.validate(names=known_names())
        return stored
    if (run_dir / "last").exists():
        raise FakesegError(f"{run_dir}: already holds a run; pass --resume to continue it "
                           "or choose another --out")
    return (config or TrainConfig()).validate(names=known_names())


def train(data: str | Path, out: str | Path, config: TrainConfig | None = None, *,
          resume: bool = False, progress: bool = True,
          stop_after: int | None = None) -> TrainResult:
    """Train FakeSegment on a paired dataset; returns where the best checkpoint is.

    ``stop_after`` ends this session after that many steps (a later ``resume`` continues).
    """
    run_dir = check_output_dir(out)
    with folder_lock(run_dir, "train"):
        for name in ("last", "best"):  # finish or undo a checkpoint switch a crash interrupted
            recover_checkpoint(run_dir / name)
        config = _effective_config(run_dir, config, resume)
        try:
            return _train_locked(data, run_dir, config, resume=resume, progress=progress,
                                 stop_after=stop_after)
        except OSError as exc:
            if exc.errno not in _WRITE_ERRNOS:
                raise
            raise FakesegError(f"{run_dir}: cannot write the run ({exc.strerror}); free disk "
                               "space or choose another --out (--resume continues from the "
                               "last checkpoint)") from exc


def _restore(state: ResumeState, run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The trainer state and the history of one ``last/`` set, checked to agree."""
    trainer = state.trainer_state
    source = state.folder / "trainer_state.pt"
    try:
        step = int(trainer["step"])
        epoch = int(trainer["epoch"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: incomplete trainer state ({exc}); start without "
                              "--resume") from exc
    if state.meta.get("step") not in (None, step):
        raise CheckpointError(f"{state.folder}: weights of step {state.meta.get('step')} with "
                              f"trainer state of step {step} (a mixed checkpoint); start without "
                              "--resume")
    history = state.extra_json.get(HISTORY_FILE)
    if history is None:  # runs from before history was kept in the checkpoint
        history = json.loads((run_dir / HISTORY_FILE).read_text())
    if not isinstance(history, list) or any(not isinstance(h, dict) for h in history):
        raise CheckpointError(f"{state.folder / HISTORY_FILE}: not a list of epochs; start "
                              "without --resume")
    return trainer, [h for h in history if int(h.get("epoch", 0)) <= epoch]


def _train_locked(data: str | Path, run_dir: Path, config: TrainConfig, *, resume: bool,
                  progress: bool, stop_after: int | None) -> TrainResult:
    index = index_pairs(data)  # layout errors before the slow model build
    index.require_unambiguous()
    write_text(run_dir / "config.yaml", yaml.safe_dump(to_dict(config), sort_keys=False))
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    seed_everything(config.seed)
    net = build_model(to_dict(config))
    extractor = net.feature_extractor
    if extractor is None and config.target_mode != "mask":
        from fakeseg.features import build_backbone

        extractor = build_backbone(config.backbone, config.backbone_weights, config.layers)
    prepared = prepare_data(index, run_dir, config, extractor, device=device,
                            progress=progress)
    net.to(device)
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    disc = PatchDiscriminator(with_image=True).to(device) if config.adv_weight > 0 else None
    optimizer = torch.optim.AdamW(net.trainable_parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    d_optimizer = torch.optim.AdamW(disc.parameters(), lr=config.lr, betas=(0.5, 0.999)) \
        if disc is not None else None
    own_d_optimizer = torch.optim.AdamW(net.discriminator_parameters(), lr=config.lr,
                                        betas=(0.5, 0.999)) if net.has_own_adversary else None
    rng = np.random.default_rng(config.seed)
    step, epoch, history, best, bad_epochs = 0, 0, [], -1.0, 0
    if resume and (run_dir / "last").exists():
        saved = load_resume_state(run_dir / "last", extra_json=(HISTORY_FILE,))
        state, history = _restore(saved, run_dir)
        load_into(net, saved.weights, saved.folder / "model.safetensors")
        try:
            optimizer.load_state_dict(state["optimizer"])
            if disc is not None and d_optimizer is not None:
                disc.load_state_dict(state["disc"])
                d_optimizer.load_state_dict(state["d_optimizer"])
            if own_d_optimizer is not None:
                own_d_optimizer.load_state_dict(state["own_d_optimizer"])
            rng.bit_generator.state = json.loads(state["numpy_rng"])
            torch.set_rng_state(state["torch_rng"])
            step, epoch, best, bad_epochs = (int(state["step"]), int(state["epoch"]),
                                             float(state["best"]), int(state["bad_epochs"]))
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{saved.folder / 'trainer_state.pt'}: does not fit this run "
                                  f"({type(exc).__name__}: {str(exc)[:80]}); start without "
                                  "--resume") from exc
        write_json(run_dir / HISTORY_FILE, history)
    elif resume:  # killed before the first checkpoint: a fresh start is the exact continuation
        warn(f"{run_dir}: no checkpoint saved yet; starting from step 0")
    sampler = CompositeSampler(prepared.train, prepared.heats, config)
    val_set = composite_set(prepared.val, seed=config.seed + 1, kinds=config.mask_kinds,
                               per_pair=3, coverage=config.coverage,
                               blend_sigma=config.blend_sigma)
    meta_base = {
        "kind": "segmenter", "model": config.model, "config": to_dict(config),
        "layers": list(extractor.layers) if extractor is not None else None,
        "weights_tag": extractor.weights_tag if extractor is not None else None,
        "scales": prepared.scales,
        "n_parameters": sum(p.numel() for p in net.trainable_parameters()),
        "split": prepared.split.to_json(), "data": str(Path(data).resolve()),
        "versions": versions(),
    }
    use_amp = config.amp and device.type == "cuda"
    earlier_s = float(history[-1].get("elapsed_s", 0.0)) if history else 0.0
    stopped_early, session_steps, started = False, 0, time.time() - earlier_s
    bar = progress_bar(total=config.steps, initial=step, desc="train", enabled=progress)
    while step < config.steps and not stopped_early:
        net.train()
        losses: dict[str, float] = {}
        epoch_end = min(config.steps, (epoch + 1) * config.steps_per_epoch)
        while step < epoch_end:
            batch = sampler.batch(rng)
            image, label = batch.image.to(device), batch.label.to(device)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, config)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                logits = net(image)
            bce = pixel_bce(logits, label)
            loss, terms = bce, {"bce": float(bce.detach())}
            if disc is not None and d_optimizer is not None:
                probability = torch.sigmoid(logits.float())
                adv = generator_adversarial(disc, probability, image)
                loss = bce + config.adv_weight * adv
                terms["adv"] = float(adv.detach())
            if net.has_auxiliary_loss:
                aux, aux_terms = net.auxiliary_loss(image, label, logits)
                loss = loss + aux
                terms.update(aux_terms)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if disc is not None and d_optimizer is not None:
                d_loss = discriminator_loss(disc, label, probability, image)
                d_optimizer.zero_grad(set_to_none=True)
                d_loss.backward()
                d_optimizer.step()
                terms["d"] = float(d_loss.detach())
            if own_d_optimizer is not None:
                own_loss, own_terms = net.discriminator_loss(image, label, logits)
                own_d_optimizer.zero_grad(set_to_none=True)
                own_loss.backward()
                own_d_optimizer.step()
                terms.update(own_terms)
            losses = {k: 0.9 * losses.get(k, v) + 0.1 * v for k, v in terms.items()}
            step += 1
            session_steps += 1
            bar.update()
            bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()})
            if stop_after is not None and session_steps >= stop_after:
                break
        if step < epoch_end:  # stopped mid-epoch by stop_after: no checkpoint of a partial epoch
            break
        epoch += 1
        net.eval()
        scorer = probability_scorer(lambda x: torch.sigmoid(net.forward_any_size(x.to(device))))
        scores = validation_scores([scorer(item) for item in val_set], val_set)
        entry = {"epoch": epoch, "step": step, **{f"loss_{k}": v for k, v in losses.items()},
                 **{f"val_{k}": v for k, v in scores.items()},
                 "elapsed_s": round(time.time() - started, 1)}
        history.append(entry)
        meta = {**meta_base, "threshold": scores["threshold"], "step": step, "val": scores}
        improved = scores["f1_best"] > best
        if improved:
            best, bad_epochs = scores["f1_best"], 0
            save_checkpoint(run_dir / "best", net.state_dict(), meta,
                            extra_json={HISTORY_FILE: history})
        else:
            bad_epochs += 1
        stopped_early = bool(config.early_stopping and bad_epochs >= config.early_stopping)
        trainer_state = {
            "optimizer": optimizer.state_dict(), "step": step, "epoch": epoch, "best": best,
            "bad_epochs": bad_epochs, "numpy_rng": json.dumps(rng.bit_generator.state),
            "torch_rng": torch.get_rng_state(),
        }
        if disc is not None and d_optimizer is not None:
            trainer_state.update(disc=disc.state_dict(), d_optimizer=d_optimizer.state_dict())
        if own_d_optimizer is not None:
            trainer_state["own_d_optimizer"] = own_d_optimizer.state_dict()
        save_checkpoint(run_dir / "last", net.state_dict(), meta, trainer_state,
                        extra_json={HISTORY_FILE: history})
        write_json(run_dir / HISTORY_FILE, history)  # the run-level copy, after its checkpoint
        bar.write(f"epoch {epoch} step {step}: val F1 {scores['f1_best']:.3f} "
                  f"(thr {scores['threshold']:.2f}), Dice@0.5 {scores['dice@0.5']:.3f}"
                  + (" *" if improved else ""))
        if stop_after is not None and session_steps >= stop_after:
            break
    bar.close()
    best_file = run_dir / "best" / META_FILE
    best_meta = json.loads(best_file.read_text()) if best_file.exists() else {}
    return TrainResult(run_dir, run_dir / "best", best_meta.get("val", {}), step, stopped_early,
                       float(best_meta.get("threshold", 0.5)), history)

