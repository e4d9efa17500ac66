"""Cross-validated choice of FakeSegment's defaults on the vistas pairs (issue 14).

One change at a time against a reference row, every row on the same k folds (by pair), CAT-Net
under the same folds and budget. Rows are trained and scored once per fold and reused by every
later call (``OUT/repeat*/fold*/scores``), so the grid can grow call by call::

    python benchmarks/bench_cv.py --only ref,catnet          # two rows
    python benchmarks/bench_cv.py --only ref,catnet,stride8  # adds one, reuses the others
    python benchmarks/bench_cv.py --list                     # the rows and their changes

Writes ``benchmarks/results/cv_vistas[_TAG]/metrics.{json,md}`` (only the rows asked for).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from fakeseg.config import TrainConfig
from fakeseg.workflows.benchmark import method_config
from fakeseg.workflows.crossval import cross_validate, save_cv

HERE = Path(__file__).resolve().parent
SHARED = Path("/work/shared/data/epe_vistas")

#: name → (what changes against the row's base, TrainConfig changes). A row runs at the
#: screening budget (--steps); ``NAME@long`` at the long one (--long-steps, early stopping) and
#: ``NAME@default`` at TrainConfig's own defaults (steps, early stopping, validation share;
#: without the wall-time budget, so that a row does not depend on the machine's speed)
GRID: dict[str, tuple[str, dict[str, Any]]] = {
    "ref": ("fakesegment, screening budget", {}),
    "catnet": ("CAT-Net baseline, screening budget", {"model": "catnet"}),
    "stride8": ("work_stride 8", {"work_stride": 8}),
    "lite0": ("backbone efficientnet_lite0", {"backbone": "efficientnet_lite0"}),
    "both": ("backbones efficientnet_lite0 and ssdlite_mobilenet_v2 concatenated (each with "
             "its default taps)", {"backbone": "efficientnet_lite0+ssdlite_mobilenet_v2"}),
    "taps6": ("efficientnet_lite0 taps stage1, stage2, stage4 and stage6 (stride 32: more "
              "context)", {"layers": ["stage1", "stage2", "stage4", "stage6"]}),
    "reduce64": ("64 channels per tapped layer into S (was 32)", {"reduce_channels": 64}),
    "lr2e-3": ("learning rate 2e-3 (was 1e-3)", {"lr": 2e-3}),
    "lr5e-4": ("learning rate 5e-4 (was 1e-3)", {"lr": 5e-4}),
    "crop256": ("crop 256 (4× pixels per step)", {"crop_size": 256}),
    "batch2": ("batch 2 (with crop256: the pixels per step of crop 128, batch 8)",
               {"batch_size": 2}),
    "color0.2": ("colour jitter 0.2 (brightness, contrast, saturation; both sides alike)",
                 {"color_jitter": 0.2}),
    "scale0.25": ("scale jitter 0.25 (windows 0.8–1.25 × the crop, resized)",
                  {"scale_jitter": 0.25}),
    "realw2": ("real-pixel loss weight 2", {"real_pixel_weight": 2.0}),
    "dice1": ("+ soft Dice loss, weight 1 (smp's DiceLoss next to the BCE)",
              {"dice_weight": 1.0}),
    "adv0.1": ("+ the paper's adversarial loss, weight 0.1 (patch discriminator)",
               {"adv_weight": 0.1}),
    "ema0.99": ("validate and keep an EMA of the weights, decay 0.99", {"ema_decay": 0.99}),
    "hardneg": ("+ BCE of the hardest 5 % real pixels", {"hard_negative_fraction": 0.05}),
    "pure_real0.45": ("p_pure_real 0.45 (was 0.3)", {"p_pure_real": 0.45}),
    "es0": ("no early stopping (the best checkpoint by validation F1 is kept)",
            {"early_stopping": 0}),
    "es8": ("early stopping after 8 epochs without a gain (was 4)", {"early_stopping": 8}),
    "steps1500": ("1500 steps (was 1000)", {"steps": 1500}),
    "steps3000": ("3000 steps", {"steps": 3000}),
    "steps5000": ("5000 steps", {"steps": 5000}),
    "val100": ("validate (and keep the best checkpoint) every 100 steps (was 50)",
               {"steps_per_epoch": 100}),
    "catnet_es0": ("CAT-Net baseline, no early stopping", {"model": "catnet", "early_stopping": 0}),
    "smooth16": ("Gaussian σ 16 px on the probability maps (validation, threshold, prediction)",
                 {"smooth_sigma": 16.0}),
}
BUDGETS = ("long", "default")


#: the reference settings every row changes one thing of: pinned (TrainConfig's defaults when
#: the grid was run), so that a later change of the defaults does not silently change the rows
REFERENCE: dict[str, Any] = {
    "backbone": "ssdlite_mobilenet_v2", "work_stride": 4, "crop_size": 128, "batch_size": 8,
    "p_pure_real": 0.3, "p_pure_synthetic": 0.15, "lr": 1e-3, "minutes": 0.0,
    "real_pixel_weight": 1.0, "hard_negative_fraction": 0.0, "steps_per_epoch": 50,
    "val_fraction": 0.25, "smooth_sigma": 0.0,
}


def entries(args: argparse.Namespace) -> list[tuple[str, TrainConfig]]:
    screen = TrainConfig(**REFERENCE, steps=args.steps, early_stopping=0, seed=args.seed,
                         threads=args.threads)
    budgets = {
        "": screen,
        "long": dataclasses.replace(screen, steps=args.long_steps, early_stopping=args.patience),
        # TrainConfig's defaults when the @default rows ran (early stopping 4 then; the
        # es0 row chose today's default, 0)
        "default": TrainConfig(**{**REFERENCE, "val_fraction": 0.2}, steps=1000,
                               early_stopping=4, seed=args.seed, threads=args.threads),
    }
    found = []
    for name in args.only.split(","):
        row, _, budget = name.partition("@")
        parts = row.split("+")  # "es0+hardneg": the changes of both rows
        if any(part not in GRID for part in parts) or budget not in budgets:
            raise SystemExit(f"unknown row {name!r}; see --list (budgets: @long, @default)")
        changes = {k: v for part in parts for k, v in GRID[part][1].items()}
        config = method_config(budgets[budget], changes.get("model", "fakesegment"))
        found.append((name, dataclasses.replace(
            config, **{k: v for k, v in changes.items() if k != "model"})))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="ref,catnet", help="comma-separated rows of GRID")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--steps", type=int, default=150, help="screening budget")
    parser.add_argument("--long-steps", type=int, default=450, help="long budget")
    parser.add_argument("--patience", type=int, default=4, help="long budget: early stopping")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--sections", default="controlled",
                        help="composite sets scored: controlled (shortcut controls), raw")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--flip-tta", default="ref",
                        help="comma-separated rows also scored with flip TTA")
    parser.add_argument("--vistas", type=Path, default=SHARED, help="epe_vistas folder")
    parser.add_argument("--val-fraction", type=float, default=TrainConfig.val_fraction,
                        help="validation share of each fold's training side (the fold plan)")
    parser.add_argument("--train-pairs", type=int,
                        help="train on only N of each fold's training pairs (learning curve)")
    parser.add_argument("--tag", help="suffix for the results folder")
    parser.add_argument("--reference", help="row the IoU ratio divides by (default: the first "
                        "CAT-Net row)")
    parser.add_argument("--work", type=Path, default=Path("runs/cv_vistas"),
                        help="runs and per-fold scores (not committed)")
    parser.add_argument("--only-folds", help="comma-separated folds (0 to K-1) this process "
                        "trains, e.g. one process per core; the last one writes the table")
    parser.add_argument("--list", action="store_true", help="print the rows and exit")
    args = parser.parse_args()
    if args.list:
        for name, (what, changes) in GRID.items():
            print(f"{name:16s} {what}  {changes}")
        print("each row also as NAME@long or NAME@default (the budget); NAME+NAME combines "
              "the changes of two rows")
        return
    if args.threads:  # scoring too: on a crowded machine 2 spinning threads cost 5-10×
        import torch

        torch.set_num_threads(args.threads)
    out = HERE / "results" / "_".join(["cv_vistas"] + ([args.tag] if args.tag else []))
    rows = entries(args)
    flip = [name for name, _ in rows if name in args.flip_tta.split(",")]
    result = cross_validate(args.vistas, args.work, entries=rows, folds=args.folds,
                            repeats=args.repeats, flip_tta=flip,
                            base=TrainConfig(val_fraction=args.val_fraction),
                            sections=args.sections.split(","), train_pairs=args.train_pairs,
                            only_folds=[int(f) for f in args.only_folds.split(",")]
                            if args.only_folds else None, progress=True)
    if result.gaps:
        print(result.gaps)
        return
    print(save_cv(result, out, args.reference)["metrics_md"].read_text())


if __name__ == "__main__":
    main()
