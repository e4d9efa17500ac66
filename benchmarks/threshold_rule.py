"""Does choosing the threshold on pure-real validation images too lower false alarms?

Today the threshold is the F1-optimal one on the validation *mixed* composites, so nothing in
its choice sees an all-real image; false alarms are then measured on pure-real test images.
This re-scores finished cross-validation runs (``bench_cv.py``; nothing is trained) with the
threshold chosen by micro F1 on the validation mixed composites *and* the pure-real validation
images (all their pixels count as real), and reports both rules side by side, per fold.

    python benchmarks/threshold_rule.py  # today's default and CAT-Net, 1500 steps

Writes ``benchmarks/results/cv_vistas_threshold_rule/metrics.{json,md}``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from fakeseg.config import TrainConfig, versions
from fakeseg.data.pairs import index_pairs
from fakeseg.evaluation import metrics as M
from fakeseg.evaluation.protocol import (
    is_mixed,
    model_scorer,
    score_items,
)
from fakeseg.inference.localizer import Localizer
from fakeseg.io import write_json, write_text
from fakeseg.numbers import mean_std
from fakeseg.workflows.crossval import plan_folds, scored_run, split_sets

HERE = Path(__file__).resolve().parent
SHARED = Path("/work/shared/data/epe_vistas")
RULES = ("mixed val composites (today)", "mixed + pure-real val images")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="es0+lite0+steps1500@default,"
                        "catnet_es0+steps1500@default")
    parser.add_argument("--work", type=Path, default=Path("runs/cv_vistas"))
    parser.add_argument("--vistas", type=Path, default=SHARED)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path,
                        default=HERE / "results" / "cv_vistas_threshold_rule")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = TrainConfig(val_fraction=0.2)  # the @default rows' split (bench_cv.py)
    index = index_pairs(args.vistas)
    plan = plan_folds(index.stems, args.folds, 1, base)
    results: dict[str, dict[str, list[dict[str, float | None]]]] = {}
    for planned in plan:
        fold = planned.fold
        sets = split_sets(index, planned.split, planned.protocol)["controlled"]
        for row in args.rows.split(","):
            model = Localizer.load(scored_run(args.work, 0, fold, row), device="cpu")
            scorer = model_scorer(model)
            chosen = [i for i in sets["val"] if is_mixed(i) or i.kind == "pure_real"]
            probs = {i.name: scorer(i) for i in chosen}
            mixed = [i for i in chosen if is_mixed(i)]
            thresholds = [M.best_threshold([probs[i.name] for i in items],
                                           [i.mask for i in items])[0]
                          for items in (mixed, chosen)]
            for rule, threshold in zip(RULES, thresholds, strict=True):
                scores = score_items(row, scorer, sets["val"], sets["test"],
                                     threshold=threshold)
                results.setdefault(row, {}).setdefault(rule, []).append({
                    "fold": fold, "threshold": float(threshold), "dice": scores.overall["dice"],
                    "iou": scores.overall["iou"], "fp_real": scores.fp_real})
                print(f"fold {fold} {row} [{rule}]: thr {threshold:.3f} Dice "
                      f"{scores.overall['dice']:.3f} IoU {scores.overall['iou']:.3f} "
                      f"FP real {scores.fp_real:.3f}", flush=True)
    lines = ["# Threshold from the mixed validation composites, or from those and the "
             "pure-real validation images", "", f"{args.folds}-fold CV runs of `bench_cv.py` "
             "(nothing retrained), controlled composites; mean ± sample std over folds, per "
             "fold in the JSON.", "", "| row | threshold rule | Dice | IoU | FP real | thr |",
             "|---|---|---|---|---|---|"]
    for row, rules in results.items():
        for rule, folds in rules.items():
            cells = []
            for metric in ("dice", "iou", "fp_real", "threshold"):
                mean, std = mean_std(f[metric] for f in folds)
                cells.append("–" if mean is None else f"{mean:.3f} ± {std or 0:.3f}")
            lines.append(f"| {row} | {rule} | " + " | ".join(cells) + " |")
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "metrics.json", {"rows": results, "versions": versions(),
                                           "protocol": {"seed": plan[0].protocol.seed}})
    write_text(args.out / "metrics.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
