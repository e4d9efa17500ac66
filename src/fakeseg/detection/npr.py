"""Upsampling-trace scorer (NPR-style, Tan et al. 2024): a small CNN on the residual between an
image and its own nearest-neighbour down-then-up-sampled version.

``x − up2(down2(x))`` is zero at the top-left pixel of every 2×2 block and holds the local
neighbouring-pixel relations elsewhere; generators that upsample (transposed convolutions,
nearest/bilinear upsampling) leave correlated patterns there whatever the content. Training
uses random ``crop`` × ``crop`` windows at even offsets (the 2×2 phase is kept) with flips and
class-balanced batches, through the one Trainer (AdamW, warm-up + cosine schedule); scoring
runs the fully convolutional net on each native-resolution window (``detection.common``) and
averages the logits.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
from fakeseg.training.trainer import Schedule, StepOutput, Task, Validation


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


@dataclass
class NPRConfig:
    """What defines an NPR fit (saved as the temporary run's config.yaml)."""

    width: int = 16
    crop: int = 96
    steps: int = 300
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0


class NPRTask(Task):
    """Class-balanced batches of random even-offset crops (flipped at random), BCE on one logit;
    no validation, so the last (only) epoch is kept."""

    kind = "npr"
    config: NPRConfig

    def __init__(self, config: NPRConfig, data: Sequence[Any]) -> None:
        super().__init__(config, data)
        self.rng = np.random.default_rng(config.seed)
        self.images: list[np.ndarray] = []
        self.groups: list[np.ndarray] = []

    def schedule(self) -> Schedule:
        c = self.config
        return Schedule(c.steps, c.steps, c.lr, c.weight_decay, 0, c.seed, "cpu", 0, False)

    def build(self) -> NPRNet:
        return NPRNet(self.config.width)

    def prepare(self, net: nn.Module, run_dir: Path, device: torch.device,
                progress: bool) -> None:
        self.images = [read_rgb(p, self.config.crop) for p in paths_of(self.data)]
        labels = labels_of(self.data)
        self.groups = [np.flatnonzero(labels == c) for c in (0, 1)]
        if not all(len(g) for g in self.groups):
            raise FakesegError("npr: fitting needs real and synthetic training images")

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        c, rng = self.config, self.rng
        target = rng.integers(0, 2, c.batch_size)  # class-balanced draws
        chosen = [int(rng.choice(self.groups[k])) for k in target]
        images = torch.stack([to_batch(_random_crop(self.images[i], c.crop, rng))[0]
                              for i in chosen])
        return images, torch.from_numpy(target).float()

    def loss(self, net: nn.Module, batch: tuple[torch.Tensor, torch.Tensor],
             device: torch.device, amp: bool) -> StepOutput:
        loss = F.binary_cross_entropy_with_logits(net(batch[0].to(device)), batch[1].to(device))
        return StepOutput(loss, {"bce": float(loss.detach())})

    def validate(self, net: nn.Module, device: torch.device) -> Validation:
        return Validation({}, (1.0,), {}, "no validation (the last epoch is kept)")

    def checkpoint_meta(self, net: nn.Module) -> dict[str, Any]:
        return {"family": "npr", "n_train": len(self.images)}

    def state_dict(self) -> dict[str, Any]:
        return {"numpy_rng": json.dumps(self.rng.bit_generator.state)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = json.loads(state["numpy_rng"])


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
        """Train the CNN through the one :class:`~fakeseg.training.trainer.Trainer` (one epoch
        of ``steps`` class-balanced batches; the run folder is temporary)."""
        from fakeseg.models.checkpoint import load_checkpoint, load_into
        from fakeseg.training.trainer import Trainer

        opts = check_options(cls.family, cls.defaults, options)
        config = NPRConfig(width=int(opts["width"]), crop=int(opts["crop"]),
                           steps=int(opts["steps"]), batch_size=int(opts["batch_size"]),
                           lr=float(opts["lr"]), weight_decay=float(opts["weight_decay"]),
                           seed=int(opts["seed"]))
        if config.crop < 8 or config.crop % 2 or config.steps < 1 or config.batch_size < 2:
            raise FakesegError("npr: crop must be even and ≥ 8, steps ≥ 1, batch_size ≥ 2")
        task = NPRTask(config, train)
        with tempfile.TemporaryDirectory(prefix="fakeseg_npr_") as scratch:
            result = Trainer(task, Path(scratch) / "run", progress=progress).fit()
            state, _, folder = load_checkpoint(result.best_dir)
            net = NPRNet(config.width)
            load_into(net, state, folder / "model.safetensors")
        scorer = cls(method or cls.family, opts, net)
        scorer.extra = {"final_loss": result.history[-1].get("loss_bce")}
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
