"""Upsampling-trace scorer (NPR-style, Tan et al. 2024): a small CNN on the residual between an
image and its own nearest-neighbour down-then-up-sampled version.

``x − up2(down2(x))`` is zero at the top-left pixel of every 2×2 block and holds the local
neighbouring-pixel relations elsewhere; generators that upsample (transposed convolutions,
nearest/bilinear upsampling) leave correlated patterns there whatever the content. Training
uses random ``crop`` × ``crop`` windows at even offsets (the 2×2 phase is kept) with flips,
class-balanced batches and AdamW; scoring runs the fully convolutional net on each
native-resolution window (``detection.common``) and averages the logits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fakeseg.detection.common import (
    MAX_TILES,
    NATIVE_TILE,
    Scorer,
    check_options,
    finite_scores,
    labels_of,
    native_tiles,
    paths_of,
    read_rgb,
    sigmoid,
    to_batch,
)
from fakeseg.errors import FakesegError
from fakeseg.progress import progress_bar
from fakeseg.training.trainer import seed_everything


def npr_residual(x: torch.Tensor) -> torch.Tensor:
    """x − nearest-up(nearest-down(x)) on the largest even-sided top-left part of x."""
    height, width = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    x = x[..., :height, :width]
    down = F.interpolate(x, scale_factor=0.5, mode="nearest")
    return x - F.interpolate(down, scale_factor=2.0, mode="nearest")


class NPRNet(nn.Module):
    """Residual → four 3×3 conv blocks (strides 1, 2, 2, 2) → global average → one logit."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        chans = [3, width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for i, stride in enumerate((1, 2, 2, 2)):
            layers += [nn.Conv2d(chans[i], chans[i + 1], 3, stride, 1, bias=False),
                       nn.BatchNorm2d(chans[i + 1]), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(chans[-1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] → (B,) logits."""
        residual = npr_residual(x) * 4.0  # residuals are small; keep the first conv's input O(1)
        return self.head(self.body(residual).mean((-2, -1))).squeeze(1)


def _random_crop(image: np.ndarray, crop: int, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape[:2]
    top = int(rng.integers(0, (height - crop) // 2 + 1)) * 2
    left = int(rng.integers(0, (width - crop) // 2 + 1)) * 2
    window = image[top:top + crop, left:left + crop]
    return window[:, ::-1] if rng.random() < 0.5 else window


class NPRScorer(Scorer):
    family = "npr"
    defaults: ClassVar[dict[str, Any]] = {"width": 16, "crop": 96, "steps": 300, "batch_size": 32,
                                          "lr": 2e-3, "weight_decay": 1e-4, "tile": NATIVE_TILE,
                                          "seed": 0}

    def __init__(self, method: str, options: dict[str, Any], net: NPRNet) -> None:
        super().__init__(method, options)
        self.net = net.eval()

    @classmethod
    def fit(cls, train: Sequence[Any], val: Sequence[Any], options: Mapping[str, Any] | None,
            *, method: str | None = None, progress: bool = False) -> NPRScorer:
        opts = check_options(cls.family, cls.defaults, options)
        crop, steps, batch = int(opts["crop"]), int(opts["steps"]), int(opts["batch_size"])
        if crop < 8 or crop % 2 or steps < 1 or batch < 2:
            raise FakesegError("npr: crop must be even and ≥ 8, steps ≥ 1, batch_size ≥ 2")
        seed_everything(int(opts["seed"]))
        rng = np.random.default_rng(int(opts["seed"]))
        images = [read_rgb(p, crop) for p in paths_of(train)]
        labels = labels_of(train)
        groups = [np.flatnonzero(labels == c) for c in (0, 1)]
        if not all(len(g) for g in groups):
            raise FakesegError("npr: fitting needs real and synthetic training images")
        net = NPRNet(int(opts["width"]))
        optimizer = torch.optim.AdamW(net.parameters(), lr=float(opts["lr"]),
                                      weight_decay=float(opts["weight_decay"]))
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, float(opts["lr"]),
                                                       total_steps=steps)
        net.train()
        bar = progress_bar(range(steps), desc="npr", unit="step", enabled=progress)
        for _ in bar:
            target = rng.integers(0, 2, batch)  # class-balanced draws
            chosen = [int(rng.choice(groups[c])) for c in target]
            batch_x = torch.stack([to_batch(_random_crop(images[i], crop, rng))[0]
                                   for i in chosen])
            loss = F.binary_cross_entropy_with_logits(net(batch_x),
                                                      torch.from_numpy(target).float())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        scorer = cls(method or cls.family, opts, net)
        scorer.extra = {"final_loss": float(loss.detach())}
        return scorer

    @torch.no_grad()
    def score(self, paths: Sequence[str | Path], *, progress: bool = False) -> np.ndarray:
        self.net.eval()
        out = []
        for path in progress_bar(paths, desc="npr", unit="img", enabled=progress):
            windows = native_tiles(read_rgb(path, 8), int(self.options["tile"]), MAX_TILES)
            out.append(float(np.mean([float(self.net(to_batch(w))[0]) for w in windows])))
        return finite_scores(sigmoid(np.array(out)), paths, self.method)

    def tensors(self) -> dict[str, torch.Tensor]:
        return dict(self.net.state_dict())

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], meta: dict[str, Any],
                   folder: Path) -> NPRScorer:
        from fakeseg.models.checkpoint import load_into

        net = NPRNet(int(meta["options"]["width"]))
        load_into(net, state, folder / "model.safetensors")
        return cls(meta["method"], meta["options"], net)

    def describe(self) -> str:
        return (f"{self.method}: {self.options['width']}-wide CNN on the 2× nearest "
                f"down-up residual, {self.options['steps']} steps of {self.options['crop']} px "
                "crops")
