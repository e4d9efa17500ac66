"""Which test-time variant helps a trained FakeSegment: flips, scales, smoothing?

Re-scores finished cross-validation runs (``bench_cv.py``; nothing is trained) under several
test-time variants. Each variant is a mean of probability maps: the image's own, its mirror's
(mirrored back), and those of the image resized by each scale (resized back, bilinear); then
Gaussian smoothing of σ pixels (the Localizer's ``smooth_sigma``, as ``predict`` applies it).
Every variant chooses its own threshold on the fold's validation composites, as CV does.

    python benchmarks/tta_variants.py --rows es0+lite0+steps1500@default --repeats 2

Writes ``benchmarks/results/cv_vistas_tta/metrics.{json,md}`` (``--out``: elsewhere).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from fakeseg.config import TrainConfig, versions
from fakeseg.data.pairs import index_pairs
from fakeseg.evaluation.protocol import probability_scorer, score_items
from fakeseg.inference.localizer import Localizer
from fakeseg.io import write_json, write_text
from fakeseg.numbers import mean_std
from fakeseg.workflows.crossval import plan_folds, scored_run, split_sets

HERE = Path(__file__).resolve().parent
SHARED = Path("/work/shared/data/epe_vistas")
# name → (flip, scales, smoothing σ in pixels)
VARIANTS: dict[str, tuple[bool, tuple[float, ...], float]] = {
    "none": (False, (1.0,), 0.0),
    "flip": (True, (1.0,), 0.0),
    "scales 0.75 1 1.25": (False, (0.75, 1.0, 1.25), 0.0),
    "scales 1 1.25": (False, (1.0, 1.25), 0.0),
    "flip + scales 1 1.25": (True, (1.0, 1.25), 0.0),
    **{f"smooth {sigma}": (False, (1.0,), float(sigma)) for sigma in (4, 8, 12, 16, 24, 32)},
    "flip + smooth 16": (True, (1.0,), 16.0),
}
METRICS = ("dice", "iou", "pixel_auc", "fp_real", "threshold")


def tta_probabilities(model: Localizer, flip: bool, scales: Sequence[float]
                      ) -> Callable[[torch.Tensor], torch.Tensor]:
    """(1, 3, H, W) → the mean probability map over ``scales`` (each with ``flip``)."""
    def run(image: torch.Tensor) -> torch.Tensor:
        size = image.shape[-2:]
        total = torch.zeros((image.shape[0], 1, *size))
        for scale in scales:
            resized = image if scale == 1.0 else F.interpolate(
                image, scale_factor=scale, mode="bilinear", align_corners=False,
                antialias=scale < 1.0).clamp(0.0, 1.0)
            probs = model.predict_tensor(resized, flip_tta=flip)
            total += probs if scale == 1.0 else F.interpolate(
                probs, size=size, mode="bilinear", align_corners=False)
        return total / len(scales)
    return run


def _better(folds: list[dict[str, Any]], plain: list[dict[str, Any]] | None) -> str:
    """On how many folds a variant beats ``none``: higher Dice, higher AUC, fewer false
    alarms (undefined figures count as no gain)."""
    if plain is None or folds is plain:
        return "–"
    pairs = list(zip(folds, plain, strict=True))

    def count(metric: str, sign: int) -> int:
        return sum(1 for a, b in pairs if a[metric] is not None and b[metric] is not None
                   and sign * (a[metric] - b[metric]) > 0)
    return (f"{count('dice', 1)} / {count('pixel_auc', 1)} / {count('fp_real', -1)} "
            f"of {len(pairs)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="es0+lite0+steps1500@default")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated names of VARIANTS")
    parser.add_argument("--work", type=Path, default=Path("runs/cv_vistas"))
    parser.add_argument("--vistas", type=Path, default=SHARED)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--val-fraction", type=float, default=0.2,
                        help="the fold plan's validation share (bench_cv.py --val-fraction)")
    parser.add_argument("--train-pairs", type=int, help="as bench_cv.py --train-pairs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "cv_vistas_tta")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = args.variants.split(",")
    base = TrainConfig(val_fraction=args.val_fraction)  # the fold plan (bench_cv.py)
    index = index_pairs(args.vistas)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    plan = plan_folds(index.stems, args.folds, args.repeats, base, train_pairs=args.train_pairs)
    for planned in plan:
        repeat, fold = planned.repeat, planned.fold
        sets = split_sets(index, planned.split, planned.protocol)["controlled"]
        for row in args.rows.split(","):
            model = Localizer.load(scored_run(args.work, repeat, fold, row), device="cpu")
            for variant in variants:
                flip, scales, model.smooth_sigma = VARIANTS[variant]
                scorer = probability_scorer(tta_probabilities(model, flip, scales))
                scores = score_items(row, scorer, sets["val"], sets["test"])
                found = {"repeat": repeat, "fold": fold, "test_pairs": planned.split.test,
                         "threshold": scores.threshold,
                         "fp_real": scores.fp_real,
                         **{k: scores.overall[k] for k in ("dice", "iou", "pixel_auc")}}
                results.setdefault(row, {}).setdefault(variant, []).append(found)
                print(f"repeat {repeat} fold {fold} {row} [{variant}]: " + " ".join(
                    f"{k} {found[k]:.3f}" for k in METRICS if found[k] is not None),
                    flush=True)
    lines = ["# Test-time augmentation variants on finished CV runs", "",
             f"{args.folds}-fold CV × {args.repeats} repeat(s) of `bench_cv.py` (nothing "
             "retrained), controlled composites; mean ± sample std over folds; Dice per fold "
             "in the last column, every fold in the JSON. Against `none` on the same folds: on "
             "how many the variant has the higher Dice, the higher pixel AUC, fewer false "
             "alarms.", "",
             "| row | test-time variant | Dice | IoU | pixel AUC | FP real | thr | "
             "better than none (Dice / AUC / FP) | Dice per fold |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row, by_variant in results.items():
        for variant, folds in by_variant.items():
            cells = []
            for metric in METRICS:
                mean, std = mean_std(f[metric] for f in folds)
                cells.append("–" if mean is None else f"{mean:.3f} ± {std or 0:.3f}")
            cells.append(_better(folds, by_variant.get("none")))
            per_fold = " / ".join(f"{f['dice']:.3f}" for f in folds)
            lines.append(f"| {row} | {variant} | " + " | ".join(cells) + f" | {per_fold} |")
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "metrics.json", {"rows": results, "variants": {
        v: {"flip": VARIANTS[v][0], "scales": list(VARIANTS[v][1]), "smooth_sigma": VARIANTS[v][2]}
        for v in variants},
        "versions": versions(), "protocol": {"seed": plan[0].protocol.seed}})
    write_text(args.out / "metrics.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
