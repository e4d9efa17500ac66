"""Verification of an enhancement by judges the refiner never trained against.

The headline figures come only from judges G never saw: an **independent critic** (another
FakeSegment run, refused when it is the training critic's run or weights), the **pair oracle**
mean |F(R) − F(·)| against each image's real partner in a backbone other than the critic's,
and the **Fréchet distance** to real images over 224-px tiles in a pooled feature space. What
was left alone is measured as the PSNR of the critic-unflagged pixels against the input and the
share of pixels changed. The training critic's own fall is reported apart, labelled optimistic:
G was trained to lower exactly that number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fakeseg.enhance import DEFAULT_FD_FEATURES, DEFAULT_ORACLE_BACKBONE, judge_spaces
from fakeseg.enhance.task import weights_digest
from fakeseg.errors import FakesegError
from fakeseg.features.frechet import RunningMoments, feature_space_name, frechet_from_moments
from fakeseg.features.registry import build_backbone
from fakeseg.features.target import discrepancy_maps, to_batch
from fakeseg.features.trunks import build_trunk
from fakeseg.inference.localizer import Localizer, tile_windows
from fakeseg.io import to_uint8
from fakeseg.models.checkpoint import load_meta, resolve_checkpoint
from fakeseg.numbers import at_or_above
from fakeseg.progress import progress_bar

#: FD tiles: side and stride in pixels (at native resolution)
FD_TILE = 224
FD_STRIDE = 112


@dataclass
class EnhancedImage:
    """One image before and after: input (float RGB), output (uint8 RGB), its real partner
    when there is one, and the soft mask the edit was confined to."""

    name: str
    source: Path
    image: np.ndarray
    output: np.ndarray
    mask: np.ndarray
    real: np.ndarray | None = None


@dataclass
class ImageVerdict:
    name: str
    critic_before: float  # the training critic's mean unrealism: optimistic
    critic_after: float
    judge_before: float | None  # the independent critic's mean unrealism
    judge_after: float | None
    oracle_before: float | None  # mean |F(R) − F(x)| in the oracle backbone
    oracle_after: float | None
    psnr_unflagged_db: float | None  # None: the unflagged pixels are identical (∞ dB)
    unflagged_share: float
    changed_share: float
    heats: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


@dataclass
class Headline:
    """The figures to quote. Relative falls are 1 − after/before of the means over images."""

    independent_critic_before: float | None
    independent_critic_after: float | None
    independent_critic_fall: float | None
    pair_oracle_before: float | None
    pair_oracle_after: float | None
    pair_oracle_fall: float | None
    fd_name: str | None
    fd_before: float | None
    fd_after: float | None
    psnr_unflagged_db: float | None  # pooled over the set; None: identical (∞ dB)
    changed_share: float
    # reported apart: G was trained against this critic, so its fall is optimistic
    training_critic_fall_optimistic: float | None


@dataclass
class Verification:
    images: list[ImageVerdict]
    headline: Headline
    critic: str
    critic_backbone: str
    judge: str | None
    judge_backbone: str | None
    oracle_backbone: str | None
    fd_space: str | None
    notes: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"headline": asdict(self.headline), "critic": self.critic,
                "critic_backbone": self.critic_backbone, "judge": self.judge,
                "judge_backbone": self.judge_backbone, "oracle_backbone": self.oracle_backbone,
                "fd_space": self.fd_space, "notes": self.notes,
                "images": [{k: v for k, v in asdict(i).items() if k != "heats"}
                           for i in self.images]}


def _meta_backbone(meta: dict[str, Any]) -> str:
    return str(meta.get("config", {}).get("backbone", "?"))


def backbone_of(localizer: Localizer) -> str:
    return _meta_backbone(localizer.meta)


def critic_backbone(run: str | Path) -> str:
    """:func:`backbone_of` a run's checkpoint, read without its weights."""
    return _meta_backbone(load_meta(run))


def check_independent(critic_run: str | Path, judge_run: str | Path) -> None:
    """Refuse a judge that is the training critic: the same checkpoint or the same weights."""
    critic_folder, judge_folder = resolve_checkpoint(critic_run), resolve_checkpoint(judge_run)
    if critic_folder.resolve() == judge_folder.resolve() or (
            weights_digest(critic_folder) == weights_digest(judge_folder)):
        raise FakesegError(f"{judge_run}: the judge is the critic the refiner trained against "
                           "(same run or same weights); give --judge a FakeSegment run trained "
                           "with another backbone or seed")


def relative_fall(before: float | None, after: float | None) -> float | None:
    if before is None or after is None or not before > 0:
        return None
    fall = 1.0 - after / before
    return fall if math.isfinite(fall) else None


def psnr(squared_error: float, count: int) -> float | None:
    """PSNR in dB of pixels in [0, 1]; None when they are identical (∞)."""
    if count == 0 or squared_error == 0:
        return None
    return float(10.0 * math.log10(count / squared_error))


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known and len(known) == len(values) else None


@torch.no_grad()
def oracle_discrepancy(extractor: torch.nn.Module, real: np.ndarray, image: np.ndarray,
                       device: torch.device) -> float:
    """Mean over the extractor's layers of mean_c,xy |F(R) − F(image)|."""
    maps = discrepancy_maps(extractor, to_batch(real, device), to_batch(image, device))
    return float(np.mean([float(m.mean()) for m in maps.values()]))


def tile_side(images: Sequence[np.ndarray]) -> int:
    """:data:`FD_TILE`, or half the smallest side when images are small (at least 32 px)."""
    smallest = min(min(image.shape[:2]) for image in images)
    return min(FD_TILE, max(32, smallest // 2))


def tiles(image: np.ndarray, side: int = FD_TILE, stride: int = FD_STRIDE) -> torch.Tensor:
    """Overlapping ``side``-pixel tiles of an (H, W, 3) image covering it: (N, 3, side, side)."""
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)
    height, width = tensor.shape[-2:]
    if min(height, width) < side:
        raise FakesegError(f"an image is {width}x{height}; FD tiles need {side} px a side")
    return torch.stack([tensor[:, top:top + side, left:left + side]
                        for top in tile_windows(height, side, side - stride)
                        for left in tile_windows(width, side, side - stride)])


@torch.no_grad()
def tile_moments(trunk: torch.nn.Module, images: Sequence[np.ndarray], dims: int, side: int,
                 device: torch.device) -> RunningMoments:
    moments = RunningMoments(dims)
    for image in images:
        batch = tiles(image, side, max(1, side // 2)).to(device)
        moments.add(trunk(batch).double().cpu().numpy())
    return moments


def verify(critic: Localizer, items: Sequence[EnhancedImage], *, critic_run: str | Path,
           judge_run: str | Path | None = None, fd_reals: Sequence[np.ndarray] = (),
           oracle_backbone: str = DEFAULT_ORACLE_BACKBONE,
           fd_features: str = DEFAULT_FD_FEATURES, fd_weights: str = "auto",
           style_backbone: str | None = None,
           device: torch.device | str = "cpu", progress: bool = True) -> Verification:
    """Score ``items`` before and after with every judge; see the module docstring."""
    device = torch.device(device)
    notes: list[str] = []
    judge: Localizer | None = None
    if judge_run is not None:
        check_independent(critic_run, judge_run)
        judge = Localizer.load(judge_run, device=str(device))
        if backbone_of(judge) == backbone_of(critic):
            notes.append(f"the independent critic shares the training critic's backbone "
                         f"({backbone_of(judge)}): it differs in seed only")
    else:
        notes.append("no independent critic (--judge): the headline has no critic figure; "
                     "the training critic's fall alone would be optimistic")
    if "auto" in (oracle_backbone, fd_features):
        auto_oracle, auto_fd = judge_spaces(backbone_of(critic))
        oracle_backbone = auto_oracle if oracle_backbone == "auto" else oracle_backbone
        fd_features = auto_fd if fd_features == "auto" else fd_features
    paired = all(item.real is not None for item in items) and bool(items)
    extractor = None
    if paired:
        if oracle_backbone in backbone_of(critic).split("+"):
            raise FakesegError(f"oracle backbone {oracle_backbone} is (part of) the critic's "
                               "own feature space; choose another backbone or 'auto'")
        extractor = build_backbone(oracle_backbone).to(device)
        if oracle_backbone == style_backbone:
            notes.append(f"the pair oracle's backbone {oracle_backbone} is the one the refiner "
                         "matched feature statistics in: it is not an unseen judge")
    else:
        notes.append("no real partners: the pair oracle is not measured")
    verdicts: list[ImageVerdict] = []
    unflagged_error, unflagged_count, changed, pixels = 0.0, 0, 0, 0
    for item in progress_bar(items, desc="verify", unit="img", enabled=progress):
        before_u8 = to_uint8(item.image)
        after = item.output.astype(np.float32) / 255.0
        heats = {"critic_before": critic.predict(item.image).probability,
                 "critic_after": critic.predict(after).probability}
        if judge is not None:
            heats["judge_before"] = judge.predict(item.image).probability
            heats["judge_after"] = judge.predict(after).probability
        unflagged = ~at_or_above(heats["critic_before"], critic.threshold)  # as soft_mask
        difference = before_u8.astype(np.float64) - item.output.astype(np.float64)
        squared = float(((difference[unflagged] / 255.0) ** 2).sum())
        count = int(unflagged.sum()) * 3
        unflagged_error += squared
        unflagged_count += count
        moved = int((difference != 0).any(axis=2).sum())
        changed += moved
        pixels += unflagged.size
        oracle: tuple[float | None, float | None] = (None, None)
        if extractor is not None and item.real is not None:
            oracle = (oracle_discrepancy(extractor, item.real, item.image, device),
                      oracle_discrepancy(extractor, item.real, after, device))
        verdicts.append(ImageVerdict(
            name=item.name,
            critic_before=float(heats["critic_before"].mean()),
            critic_after=float(heats["critic_after"].mean()),
            judge_before=float(heats["judge_before"].mean()) if judge else None,
            judge_after=float(heats["judge_after"].mean()) if judge else None,
            oracle_before=oracle[0], oracle_after=oracle[1],
            psnr_unflagged_db=psnr(squared, count), unflagged_share=float(unflagged.mean()),
            changed_share=moved / unflagged.size, heats=heats))
    fd_name, fd_space, fd_before, fd_after = None, None, None, None
    if len(fd_reals) >= 1 and items:
        trunk = build_trunk(fd_features, fd_weights).to(device).eval()
        side = tile_side([*fd_reals, *(i.image for i in items)])
        fd_name, fd_space = feature_space_name(trunk)
        fd_name = f"{fd_name} over {side}-px tiles"
        real_moments = tile_moments(trunk, fd_reals, trunk.dims, side, device)
        values = []
        for images in ([i.image for i in items],
                       [i.output.astype(np.float32) / 255.0 for i in items]):
            moments = tile_moments(trunk, images, trunk.dims, side, device)
            if min(moments.n, real_moments.n) < 2:
                raise FakesegError(f"{moments.n} image tile(s) and {real_moments.n} real "
                                   "tile(s): a Fréchet distance needs at least two each; "
                                   "give more or larger images")
            values.append(frechet_from_moments(moments.mean, moments.covariance,
                                               real_moments.mean, real_moments.covariance))
        fd_before, fd_after = values
        notes.append(f"FD from {moments.n} tiles against {real_moments.n} real tiles in "
                     f"{trunk.dims} dimensions: rank-deficient covariances, compare before "
                     "with after only")
        others = [n for n in (oracle_backbone, backbone_of(critic), style_backbone) if n]
        if any(fd_features in name or name in fd_features for name in others):  # one network
            notes.append(f"the FD space ({fd_features}) shares its network with another judge "
                         "or the refiner's loss; only two pretrained families are installed")
    else:
        notes.append("no real images: Fréchet distance not measured")

    def means(key: str) -> tuple[float | None, float | None]:
        return (_mean([getattr(v, f"{key}_before") for v in verdicts]),
                _mean([getattr(v, f"{key}_after") for v in verdicts]))

    judge_b, judge_a = means("judge")
    oracle_b, oracle_a = means("oracle")
    critic_b, critic_a = means("critic")
    headline = Headline(
        independent_critic_before=judge_b, independent_critic_after=judge_a,
        independent_critic_fall=relative_fall(judge_b, judge_a),
        pair_oracle_before=oracle_b, pair_oracle_after=oracle_a,
        pair_oracle_fall=relative_fall(oracle_b, oracle_a),
        fd_name=fd_name, fd_before=fd_before, fd_after=fd_after,
        psnr_unflagged_db=psnr(unflagged_error, unflagged_count),
        changed_share=changed / max(pixels, 1),
        training_critic_fall_optimistic=relative_fall(critic_b, critic_a))
    return Verification(verdicts, headline, str(critic_run), backbone_of(critic),
                        str(judge_run) if judge_run is not None else None,
                        backbone_of(judge) if judge else None,
                        oracle_backbone if extractor is not None else None, fd_space, notes)
