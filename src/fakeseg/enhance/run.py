"""``fakeseg enhance``: learned mode (train G, apply it) and blend mode, then verification.

``enhance(...)`` computes and returns an :class:`EnhanceResult`; ``save_enhancement`` writes
the enhanced images, triptychs, heat maps, ``enhance.json`` and ``enhance.md``.

Inputs: ``IMAGES`` is a paired dataset (``real/``, ``synthetic/``) or images. With a paired
dataset the critic run's ``split.json`` decides: G trains on the training pairs' renders
(their real partners give the feature statistics and the paired terms) and the ``--split``
part (default: test) is enhanced and verified against its real partners. Plain images are all
trained on and enhanced; ``--real DIR`` then gives the real photos (unpaired).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fakeseg.config import EnhanceConfig, to_dict, versions
from fakeseg.data.pairs import index_pairs, load_pair, load_split
from fakeseg.device import resolve_device
from fakeseg.enhance import DEFAULT_FD_FEATURES, DEFAULT_ORACLE_BACKBONE
from fakeseg.enhance.masks import soft_mask_array
from fakeseg.enhance.refiner import Refiner
from fakeseg.enhance.task import EnhanceTask, RefinerData, load_critic
from fakeseg.enhance.verify import (
    EnhancedImage,
    Verification,
    check_independent,
    critic_backbone,
    verify,
)
from fakeseg.errors import FakesegError, Skipped
from fakeseg.io import (
    check_output_dir,
    expand_inputs,
    folder_lock,
    list_images,
    read_image,
    to_uint8,
    write_image,
    write_json,
    write_text,
)
from fakeseg.models.checkpoint import load_checkpoint, load_into, resolve_checkpoint
from fakeseg.numbers import fmt
from fakeseg.progress import progress_bar, say, warn
from fakeseg.training.trainer import Trainer, resolve_config
from fakeseg.viz import colorize, new_figure, save_figure

RESULT_JSON = "enhance.json"
RESULT_MD = "enhance.md"
SPLITS = ("test", "val", "train", "all")


@dataclass
class Inputs:
    """Images to train on and to enhance, with real partners / real photos where known."""

    train_names: list[str]
    train_images: list[np.ndarray]
    train_reals: list[np.ndarray]
    targets: list[EnhancedImage]  # output not yet filled in
    fd_reals: list[np.ndarray]
    skipped: list[Skipped] = field(default_factory=list)
    train_partners: list[np.ndarray] = field(default_factory=list)  # paired dataset only


@dataclass
class EnhanceResult:
    mode: str  # "learned" | "blend"
    items: list[EnhancedImage]
    verification: Verification
    config: dict[str, Any]
    refiner_run: Path | None
    skipped: list[Skipped]


def _run_folder(run: str | Path) -> Path:
    folder = resolve_checkpoint(run)
    return folder.parent if folder.name in ("best", "last") else folder


def _read_all(paths: Sequence[Path], skipped: list[Skipped]) -> list[tuple[Path, np.ndarray]]:
    """Read every image; one that fails is warned about and listed in ``skipped``."""
    read = []
    for path in paths:
        try:
            read.append((path, read_image(path)))
        except FakesegError as exc:
            skipped.append(Skipped(str(path), str(exc)))
            warn(f"fakeseg: skipped: {skipped[-1]}")
    return read


def gather_inputs(run: str | Path, images: Sequence[str | Path], *, real: str | Path | None,
                  split: str, need_training: bool) -> Inputs:
    """See the module docstring."""
    skipped: list[Skipped] = []
    reals = [a for _, a in _read_all(list_images(real), skipped)] if real else []
    root = Path(images[0]) if len(images) == 1 else None
    if root is not None and (root / "real").is_dir() and (root / "synthetic").is_dir():
        index = index_pairs(root)
        split_file = _run_folder(run) / "split.json"
        if not split_file.exists():
            raise FakesegError(f"{split_file}: the critic run has no split; pass the "
                               "synthetic images themselves instead of the paired folder")
        parts = load_split(split_file)
        wanted = (parts.train + parts.val + parts.test) if split == "all" \
            else list(getattr(parts, split))
        loaded = {}
        for pair in index.subset(sorted(set(wanted) | (set(parts.train) if need_training
                                                         else set()))):
            try:
                loaded[pair.stem] = (pair, load_pair(pair))
            except FakesegError as exc:
                skipped.append(Skipped(pair.stem, str(exc)))
                warn(f"fakeseg: skipped: {skipped[-1]}")
        train = [loaded[s][1] for s in parts.train if s in loaded] if need_training else []
        targets = [EnhancedImage(s, loaded[s][0].synthetic, loaded[s][1].synthetic,
                                 np.zeros((0, 0, 3), np.uint8), np.zeros((0, 0), np.float32),
                                 loaded[s][1].real) for s in wanted if s in loaded]
        return Inputs([p.stem for p in train], [p.synthetic for p in train],
                      reals or [p.real for p in train], targets,
                      reals or [t.real for t in targets if t.real is not None], skipped,
                      [p.real for p in train])
    read = _read_all(expand_inputs([str(i) for i in images]), skipped)
    if not read:
        raise FakesegError(f"{images[0]}: no readable image; check the inputs")
    targets = [EnhancedImage(p.stem, p, a, np.zeros((0, 0, 3), np.uint8),
                             np.zeros((0, 0), np.float32)) for p, a in read]
    return Inputs([p.stem for p, _ in read], [a for _, a in read] if need_training else [],
                  reals, targets, reals, skipped)


def _masks(critic: Any, items: Sequence[EnhancedImage], config: EnhanceConfig,
           progress: bool) -> None:
    for item in progress_bar(items, desc="critic maps", unit="img", enabled=progress):
        heat = critic.predict(item.image)
        item.mask = soft_mask_array(heat.probability, critic.threshold,
                                    feather_sigma=config.feather_sigma)


def keep_unmasked(edited: np.ndarray, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """uint8 ``edited`` where ``mask`` > 0; elsewhere the input's own 8-bit pixels, bit for bit."""
    return np.where(mask[..., None] > 0, to_uint8(edited), to_uint8(image))


def blend_frame(image: np.ndarray, enhanced: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """uint8 output: the enhanced frame blended in by ``mask`` (see :func:`keep_unmasked`)."""
    if enhanced.shape != image.shape:
        raise FakesegError(f"enhanced frame is {enhanced.shape[1]}x{enhanced.shape[0]}, the "
                           f"input {image.shape[1]}x{image.shape[0]}; give same-size frames")
    weight = mask[..., None]
    return keep_unmasked((1.0 - weight) * image + weight * enhanced, image, mask)


@torch.no_grad()
def apply_refiner(refiner: Refiner, image: np.ndarray, mask: np.ndarray,
                  device: torch.device) -> np.ndarray:
    """The refined image as uint8 (H, W, 3); where ``mask`` is 0, the input's own pixels."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].to(device)
    h = torch.from_numpy(np.ascontiguousarray(mask))[None, None].to(device)
    out = refiner(x, h)[0].permute(1, 2, 0).cpu().numpy()
    if not np.isfinite(out).all():
        raise FakesegError("the refiner produced NaN or infinite pixels; retrain it")
    return keep_unmasked(out, image, mask)


def enhance(run: str | Path, images: Sequence[str | Path], out: str | Path, *,
            config: EnhanceConfig | None = None, judge: str | Path | None = None,
            real: str | Path | None = None, enhanced: str | Path | None = None,
            split: str = "test", resume: bool = False,
            oracle_backbone: str = DEFAULT_ORACLE_BACKBONE,
            fd_features: str = DEFAULT_FD_FEATURES, fd_weights: str = "auto",
            device: str = "auto",
            progress: bool = True, stop_after: int | None = None) -> EnhanceResult:
    """Enhance ``images`` where the critic ``run`` flags them, and verify; see module docs."""
    if split not in SPLITS:
        raise FakesegError(f"--split {split}: use one of {', '.join(SPLITS)}")
    out = check_output_dir(out)
    resolve_checkpoint(run)  # a bad critic is one line before any image is read
    if judge is not None:  # refused before any training, not after
        check_independent(run, judge)
    learned = enhanced is None
    refiner_run = out / "refiner"
    if learned:
        given = None if config is None and resume else config or EnhanceConfig()
        if given is not None and given.style_backbone == "auto":
            given = replace(given, style_backbone=critic_backbone(run))
        config = resolve_config(refiner_run, given, resume, EnhanceConfig)
    else:
        config = (config or EnhanceConfig()).validate()
    inputs = gather_inputs(run, images, real=real, split=split, need_training=learned)
    torch_device = resolve_device(device if device != "auto" else config.device)
    critic = load_critic(run, torch_device)
    if learned:
        data = RefinerData(inputs.train_names, inputs.train_images, inputs.train_reals,
                           Path(run), inputs.train_partners)
        Trainer(EnhanceTask(config, data), refiner_run, progress=progress,
                stop_after=stop_after).fit(resume=resume)
        state, _, folder = load_checkpoint(refiner_run)
        refiner = Refiner(config)
        load_into(refiner, state, folder / "model.safetensors")
        refiner.eval().to(torch_device)
    _masks(critic, inputs.targets, config, progress)
    done: list[EnhancedImage] = []
    skipped = list(inputs.skipped)
    enhanced_files = {p.stem: p for p in list_images(enhanced)} if enhanced else {}
    for item in progress_bar(inputs.targets, desc="enhance", unit="img", enabled=progress):
        try:
            if learned:
                item.output = apply_refiner(refiner, item.image, item.mask, torch_device)
            else:
                if item.name not in enhanced_files:
                    raise FakesegError(f"{enhanced}: no enhanced frame named {item.name}.*; "
                                       "name each like its input")
                frame = read_image(enhanced_files[item.name])
                try:
                    item.output = blend_frame(item.image, frame, item.mask)
                except FakesegError as exc:
                    raise FakesegError(f"{enhanced_files[item.name]}: {exc}") from None
        except FakesegError as exc:
            skipped.append(Skipped(item.name, str(exc)))
            warn(f"fakeseg: skipped: {skipped[-1]}")
            continue
        done.append(item)
    if not done:
        raise FakesegError("no image was enhanced; see the messages above")
    verification = verify(critic, done, critic_run=run, judge_run=judge,
                          fd_reals=inputs.fd_reals, oracle_backbone=oracle_backbone,
                          fd_features=fd_features, fd_weights=fd_weights,
                          style_backbone=config.style_backbone if learned else None,
                          device=torch_device, progress=progress)
    return EnhanceResult("learned" if learned else "blend", done, verification,
                         to_dict(config), refiner_run if learned else None, skipped)


# --------------------------------------------------------------------------- saving


def _triptych(item: EnhancedImage, path: Path) -> Path:
    difference = np.abs(item.output.astype(np.float32) / 255.0 - item.image).max(axis=2)
    scale = max(float(difference.max()), 1e-6)
    figure = new_figure(12, 3.4)
    panels = ((item.image, "input"), (item.output, "enhanced"),
              (colorize(difference, "magma", 0.0, scale), f"|difference| (0 – {scale:.3f})"))
    for axis, (picture, title) in zip(figure.subplots(1, 3), panels, strict=True):
        axis.imshow(picture)
        axis.set_title(title, fontsize=9)
        axis.axis("off")
    return save_figure(figure, path)


def _heat_panels(heats: dict[str, np.ndarray], path: Path) -> Path:
    rows = [k for k in ("critic", "judge") if f"{k}_before" in heats]
    figure = new_figure(8, 2.6 * len(rows))
    axes = np.atleast_2d(figure.subplots(len(rows), 2))
    labels = {"critic": "training critic (optimistic)", "judge": "independent critic"}
    for row, who in enumerate(rows):
        for col, when in enumerate(("before", "after")):
            heat = heats[f"{who}_{when}"]
            axes[row, col].imshow(colorize(heat))
            axes[row, col].set_title(f"{labels[who]}, {when}: mean {heat.mean():.3f}",
                                     fontsize=8)
            axes[row, col].axis("off")
    return save_figure(figure, path)


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def db(value: float | None) -> str:
    """PSNR text; None means identical pixels (∞ dB)."""
    return "∞ (identical)" if value is None else f"{value:.2f} dB"


def _markdown(result: EnhanceResult, command: str) -> str:
    h = result.verification.headline
    v = result.verification
    why = "G trained against it" if result.mode == "learned" else "its map chose the edit"
    lines = [f"# fakeseg enhance ({result.mode} mode)", "", f"Command: `{command}`", "",
             "## Headline: judges the refiner never trained against", "",
             "| figure | before | after | change |", "|---|---|---|---|",
             f"| independent critic mean unrealism ({v.judge_backbone or 'none'}) | "
             f"{fmt(h.independent_critic_before, 4)} | {fmt(h.independent_critic_after, 4)} | "
             f"fall {pct(h.independent_critic_fall)} |",
             f"| pair oracle mean abs(F(R) − F(·)) ({v.oracle_backbone or 'none'}) | "
             f"{fmt(h.pair_oracle_before, 4)} | {fmt(h.pair_oracle_after, 4)} | "
             f"fall {pct(h.pair_oracle_fall)} |",
             f"| {h.fd_name or 'Fréchet distance'} | {fmt(h.fd_before, 2)} | "
             f"{fmt(h.fd_after, 2)} | |",
             f"| PSNR of critic-unflagged pixels vs input | | {db(h.psnr_unflagged_db)} | |",
             f"| share of pixels changed | | {pct(h.changed_share)} | |", "",
             f"Optimistic ({why}): the training critic's mean unrealism fell "
             f"{pct(h.training_critic_fall_optimistic)}.", "",
             "## Per image", "",
             "| image | judge before | judge after | oracle before | oracle after | critic "
             "before | critic after | PSNR unflagged | changed |",
             "|---|---|---|---|---|---|---|---|---|"]
    for i in v.images:
        lines.append(f"| {i.name} | {fmt(i.judge_before, 4)} | {fmt(i.judge_after, 4)} | "
                     f"{fmt(i.oracle_before, 4)} | {fmt(i.oracle_after, 4)} | "
                     f"{fmt(i.critic_before, 4)} | {fmt(i.critic_after, 4)} | "
                     f"{db(i.psnr_unflagged_db)} | {pct(i.changed_share)} |")
    lines += ["", "Notes:", *[f"- {n}" for n in v.notes], ""]
    if result.skipped:
        lines += ["Skipped inputs:", *[f"- {f}" for f in result.skipped], ""]
    return "\n".join(lines)


def save_enhancement(result: EnhanceResult, out: str | Path, *, command: str = "") -> Path:
    """Write images, figures, ``enhance.json`` and ``enhance.md``; returns the JSON path."""
    out = check_output_dir(out)
    with folder_lock(out, "enhance"):
        rows = []
        for item, verdict in zip(result.items, result.verification.images, strict=True):
            files = {"enhanced": f"images/{item.name}.png",
                     "triptych": f"figures/{item.name}_triptych.png",
                     "heat": f"figures/{item.name}_heat.png"}
            write_image(out / files["enhanced"], item.output)
            _triptych(item, out / files["triptych"])
            _heat_panels(verdict.heats, out / files["heat"])
            rows.append({"name": item.name, "input": str(item.source), **files})
        payload = {"mode": result.mode, "command": command,
                   **result.verification.to_json(), "files": rows, "config": result.config,
                   "refiner_run": result.refiner_run,
                   "skipped": [s.to_json() for s in result.skipped], "versions": versions()}
        write_json(out / RESULT_JSON, payload)
        write_text(out / RESULT_MD, _markdown(result, command))
    say(f"enhance: {len(rows)} image(s) → {out / RESULT_MD}")
    return out / RESULT_JSON
