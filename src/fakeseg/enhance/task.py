"""Training the refiner G through the one :class:`~fakeseg.training.trainer.Trainer`.

:class:`EnhanceTask` loads the frozen critic (a trained FakeSegment run), computes each training
image's soft mask h once (0 on every pixel the critic does not flag), fits the real images'
feature statistics once, and per step samples random crops. Loss = ``critic_weight`` · the
critic's mean predicted unrealism on G(x) + ``identity_weight`` · mean |G(x) − x| (0 outside h
by construction, so it limits how far flagged pixels move) + ``style_weight`` · the distance of
G(x)'s per-layer channel mean/std (in ``style_backbone``) to the real images' (unpaired) and,
when the training images have real partners R, ``paired_weight`` · the h-weighted mean
|G(x) − R| in pixels + ``paired_feature_weight`` · the h-weighted mean |F(G(x)) − F(R)| in
``style_backbone``'s layers (each layer scaled by the mean |F(R)|). The paired terms pull
toward real, not only away from the critic.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fakeseg.config import EnhanceConfig, to_dict, versions
from fakeseg.enhance.masks import soft_mask
from fakeseg.enhance.refiner import Refiner
from fakeseg.errors import FakesegError
from fakeseg.features.backbones import FeaturePyramid
from fakeseg.features.registry import build_backbone
from fakeseg.inference.localizer import Localizer
from fakeseg.models.checkpoint import resolve_checkpoint
from fakeseg.progress import progress_bar, warn
from fakeseg.training.trainer import Schedule, StepOutput, Task, Validation

#: real crops per real image for the feature statistics
STYLE_CROPS_PER_IMAGE = 8
#: training images whose central crop is validated (fixed, every epoch)
VALIDATION_CROPS = 4


@dataclass
class RefinerData:
    """What G trains on: synthetic images (float RGB), real images for the feature statistics
    (paired partners or any real photos), the critic's run folder and, for a paired dataset,
    each image's real partner (same size, same order; empty when unpaired)."""

    names: list[str]
    images: list[np.ndarray]
    reals: list[np.ndarray]
    critic: Path
    partners: list[np.ndarray] = field(default_factory=list)


class RefinerBatch(NamedTuple):
    """Crops (B, 3, S, S), their soft masks (B, 1, S, S), the real partners' crops or None."""

    image: torch.Tensor
    mask: torch.Tensor
    partner: torch.Tensor | None


def weights_digest(run: str | Path) -> str:
    """SHA-256 of a run's (or checkpoint's) ``model.safetensors``: same digest, same weights."""
    folder = resolve_checkpoint(run)
    digest = hashlib.sha256()
    with open(folder / "model.safetensors", "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_critic(run: str | Path, device: str | torch.device) -> Localizer:
    """A trained segmenter run, frozen: eval mode, no parameter takes a gradient."""
    critic = Localizer.load(run, device=str(device))
    critic.net.requires_grad_(False)
    critic.net.eval()
    return critic


def critic_probability(critic: Localizer, image: torch.Tensor) -> torch.Tensor:
    """The critic's per-pixel unrealism of (B, 3, H, W), differentiable in the image. Not
    smoothed: only its mean is a loss term, and a blur keeps the mean (the thresholded masks
    come from :meth:`Localizer.predict_tensor`, which smooths)."""
    return torch.sigmoid(critic.net.forward_any_size(image))


def feature_stats(features: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor,
                                                                         torch.Tensor]]:
    """Per layer, each image's channel mean and standard deviation over space: (B, C) each."""
    return {name: (f.mean(dim=(2, 3)), f.std(dim=(2, 3))) for name, f in features.items()}


def style_distance(stats: dict[str, tuple[torch.Tensor, torch.Tensor]],
                   target: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Mean over layers of |μ − μ_real| + |σ − σ_real|, each layer scaled by its real σ."""
    terms = []
    for name, (mean, std) in stats.items():
        real_mean, real_std = target[name]
        scale = real_std.mean() + 1e-6
        terms.append(((mean - real_mean).abs().mean() + (std - real_std).abs().mean()) / scale)
    return torch.stack(terms).mean()


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (B, C, H, W) ``values`` weighted by a (B, 1, h, w) mask resized to H×W."""
    if mask.shape[-2:] != values.shape[-2:]:
        mask = F.interpolate(mask, size=values.shape[-2:], mode="area")
    return (mask * values).sum() / (mask.sum() * values.shape[1] + 1e-6)


def paired_feature_distance(features: dict[str, torch.Tensor],
                            partner: dict[str, torch.Tensor], mask: torch.Tensor
                            ) -> torch.Tensor:
    """Mean over layers of the mask-weighted |F(G(x)) − F(R)|, each layer scaled by mean |F(R)|."""
    terms = []
    for name, value in features.items():
        real = partner[name]
        terms.append(masked_mean((value - real).abs(), mask) / (real.abs().mean() + 1e-6))
    return torch.stack(terms).mean()


def crop_side(images: list[np.ndarray], wanted: int, multiple: int = 64) -> int:
    """The crop size used for every batch: ``wanted``, or less when an image is smaller."""
    smallest = min(min(image.shape[:2]) for image in images)
    side = min(wanted, smallest // multiple * multiple)
    if side < multiple:
        raise FakesegError(f"an image is {smallest} px on its short side; the refiner needs at "
                           f"least {multiple} px")
    return side


def random_crops(images: list[np.ndarray], side: int, count: int,
                 rng: np.random.Generator) -> tuple[list[int], list[tuple[int, int]]]:
    """``count`` (image index, (top, left)) picks of ``side``-pixel crops."""
    picks = rng.integers(0, len(images), size=count).tolist()
    corners = []
    for index in picks:
        height, width = images[index].shape[:2]
        corners.append((int(rng.integers(0, height - side + 1)),
                        int(rng.integers(0, width - side + 1))))
    return picks, corners


class EnhanceTask(Task):
    """The refiner G against a frozen critic; see the module docstring."""

    kind = "refiner"
    config: EnhanceConfig
    data: RefinerData

    def __init__(self, config: EnhanceConfig, data: RefinerData) -> None:
        super().__init__(config, data)
        self.rng = np.random.default_rng(config.seed)
        self.critic: Localizer | None = None
        self.style: FeaturePyramid | None = None
        self.target: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.images: torch.Tensor | None = None
        self.masks: list[torch.Tensor] = []
        self.tensors: list[torch.Tensor] = []
        self.partners: list[torch.Tensor] = []
        self.side = 0
        self.validation: list[tuple[int, tuple[int, int]]] = []

    def schedule(self) -> Schedule:
        c = self.config
        return Schedule(c.steps, c.steps_per_epoch, c.lr, c.weight_decay, c.early_stopping,
                        c.seed, c.device, c.threads, c.amp)

    def check_data(self) -> None:
        if not self.data.images:
            raise FakesegError("no images to train the refiner on; give a folder of synthetic "
                               "images")
        if self.config.style_weight > 0 and not self.data.reals:
            raise FakesegError("the feature-statistics term needs real images: give a paired "
                               "dataset or --real DIR (or --set style_weight=0)")
        c = self.config
        if (c.paired_weight > 0 or c.paired_feature_weight > 0) and not self.data.partners:
            warn("fakeseg: no real partners (IMAGES is not a paired dataset): the paired terms "
                 "(paired_weight, paired_feature_weight) are off for this run")
        for image, partner in zip(self.data.images, self.data.partners, strict=False):
            if partner.shape != image.shape:
                raise FakesegError(f"a real partner is {partner.shape[1]}x{partner.shape[0]}, "
                                   f"its render {image.shape[1]}x{image.shape[0]}; give "
                                   "same-size pairs")

    def build(self) -> nn.Module:
        return Refiner(self.config)

    def prepare(self, net: nn.Module, run_dir: Path, device: torch.device,
                progress: bool) -> None:
        c = self.config
        self.critic = load_critic(self.data.critic, device)
        self.tensors = [torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)
                        for a in self.data.images]
        if c.paired_weight > 0 or c.paired_feature_weight > 0:
            self.partners = [torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)
                             for a in self.data.partners]
        for image in progress_bar(self.tensors, desc="critic maps", unit="img",
                                  enabled=progress):
            probability = self.critic.predict_tensor(image[None])
            self.masks.append(soft_mask(probability, self.critic.threshold,
                                        feather_sigma=c.feather_sigma)[0])
        self.side = crop_side(self.data.images, c.crop_size)
        if c.style_weight > 0 or c.paired_feature_weight > 0:
            self.style = build_backbone(c.style_backbone, c.style_weights).to(device)
        if c.style_weight > 0:
            self.target = self._real_statistics(device)
        fixed = np.random.default_rng(c.seed + 1)
        picks, corners = random_crops(self.data.images, self.side,
                                      min(VALIDATION_CROPS, len(self.data.images)), fixed)
        self.validation = list(zip(picks, corners, strict=True))

    @torch.no_grad()
    def _real_statistics(self, device: torch.device) -> dict[str, tuple[torch.Tensor,
                                                                          torch.Tensor]]:
        """The real images' mean per-layer channel mean and std over seeded random crops."""
        assert self.style is not None
        side = crop_side(self.data.reals, self.side)
        rng = np.random.default_rng(self.config.seed + 2)
        sums: dict[str, list[torch.Tensor]] = {}
        for real in self.data.reals:
            _, corners = random_crops([real], side, STYLE_CROPS_PER_IMAGE, rng)
            batch = torch.stack([torch.from_numpy(np.ascontiguousarray(
                real[t:t + side, left:left + side])).permute(2, 0, 1) for t, left in corners])
            for name, (mean, std) in feature_stats(self.style(batch.to(device))).items():
                sums.setdefault(name, []).append(torch.stack([mean.mean(0), std.mean(0)]))
        return {name: (torch.stack(v).mean(0)[0], torch.stack(v).mean(0)[1])
                for name, v in sums.items()}

    def _batch(self, picks: list[tuple[int, tuple[int, int]]]) -> RefinerBatch:
        side = self.side

        def crops(tensors: list[torch.Tensor]) -> torch.Tensor:
            return torch.stack([tensors[i][:, t:t + side, left:left + side]
                                for i, (t, left) in picks])

        return RefinerBatch(crops(self.tensors), crops(self.masks),
                            crops(self.partners) if self.partners else None)

    def next_batch(self) -> RefinerBatch:
        picks, corners = random_crops(self.data.images, self.side, self.config.batch_size,
                                      self.rng)
        return self._batch(list(zip(picks, corners, strict=True)))

    def _terms(self, net: nn.Module, batch: RefinerBatch, device: torch.device
               ) -> tuple[torch.Tensor, dict[str, float]]:
        assert self.critic is not None
        c = self.config
        image, mask = batch.image.to(device), batch.mask.to(device)
        output = net(image, mask)
        weighted: dict[str, tuple[float, torch.Tensor]] = {
            "critic": (c.critic_weight, critic_probability(self.critic, output).mean()),
            "identity": (c.identity_weight, (output - image).abs().mean())}
        features = self.style(output) if self.style is not None else {}
        if c.style_weight > 0:
            weighted["style"] = (c.style_weight,
                                 style_distance(feature_stats(features), self.target))
        if batch.partner is not None:
            partner = batch.partner.to(device)
            if c.paired_weight > 0:
                weighted["paired"] = (c.paired_weight,
                                      masked_mean((output - partner).abs(), mask))
            if c.paired_feature_weight > 0:
                assert self.style is not None
                with torch.no_grad():
                    real_features = self.style(partner)
                weighted["paired_feature"] = (c.paired_feature_weight, paired_feature_distance(
                    features, real_features, mask))
        total = torch.stack([weight * value for weight, value in weighted.values()]).sum()
        terms = {name: float(value.detach()) for name, (_, value) in weighted.items()}
        terms["total"] = float(total.detach())
        return total, terms

    def loss(self, net: nn.Module, batch: Any, device: torch.device, amp: bool) -> StepOutput:
        total, terms = self._terms(net, batch, device)
        return StepOutput(total, terms)

    def validate(self, net: nn.Module, device: torch.device) -> Validation:
        _, scores = self._terms(net, self._batch(self.validation), device)
        summary = ", ".join(f"{k} {v:.4f}" for k, v in scores.items())
        return Validation(scores, (-scores["total"],), summary=summary)

    def checkpoint_meta(self, net: nn.Module) -> dict[str, Any]:
        return {"config": to_dict(self.config), "critic": str(self.data.critic),
                "critic_sha256": weights_digest(self.data.critic),
                "train_images": list(self.data.names), "versions": versions()}

    def state_dict(self) -> dict[str, Any]:
        return {"numpy_rng": json.dumps(self.rng.bit_generator.state)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = json.loads(state["numpy_rng"])
