"""Learning curve of FakeSegment on the vistas pairs: quality against the number of training pairs.

Each point is a finished cross-validation (``bench_cv.py`` or ``fakeseg benchmark --folds``,
``--train-pairs N`` for the smaller sets); this script only reads their ``metrics.json``::

    R=benchmarks/results
    python benchmarks/learning_curve.py --row es0+lite0+steps1500@default \\
        --point 5=$R/cv_vistas_lopo_train5 --point 7=$R/cv_vistas_lopo_train7 \\
        --out $R/learning_curve

Writes ``OUT/learning_curve.{md,png}``: mean ± std over folds per point, and for two points
tested on the same folds, the per-fold gain of the larger training set (a paired comparison,
much less noisy than the two means).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from fakeseg.io import write_text
from fakeseg.numbers import fmt, fmt_mean_std, mean_std
from fakeseg.viz import new_figure, save_figure

#: metric → (label, issue 14's target)
METRICS = {"dice": ("Dice", 0.88), "pixel_auc": ("pixel AUC", 0.97),
           "fp_real": ("FP on pure real", 0.03)}
SECTION = "controlled"


def read_point(spec: str, row: str) -> dict[str, Any]:
    """One ``N=DIR`` point: the row's folds in DIR/metrics.json (one-line exit if unusable)."""
    n, _, folder = spec.partition("=")
    if not n.isdigit() or not folder:
        raise SystemExit(f"--point {spec!r}: expected N=DIR, e.g. 5=benchmarks/results/cv_vistas")
    path = Path(folder) / "metrics.json"
    try:
        payload = json.loads(path.read_text())
        folds = [f for f in payload["folds"] if f["row"] == row]
        rows = payload["rows"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SystemExit(f"{path}: not a finished cross-validation ({error}); run bench_cv.py "
                         "or fakeseg benchmark --folds first") from None
    if not folds:
        raise SystemExit(f"{path}: no row {row!r} (rows: {', '.join(rows)})")
    if any(SECTION not in f["metrics"] for f in folds):
        raise SystemExit(f"{path}: row {row!r} was not scored on the {SECTION} composites")
    return {"n": int(n), "folder": Path(folder), "folds": folds}


def plan_of(point: dict[str, Any]) -> int:
    """The number of folds of a point's cross-validation."""
    return len({f["fold"] for f in point["folds"]})


def paired_changes(small: dict[str, Any], large: dict[str, Any], metric: str) -> list[float] | None:
    """Per-fold change from ``small`` to ``large`` on the folds both tested on the same pairs
    with the same seed (None when they share fewer than two)."""
    key = {(f["repeat"], tuple(f["test_pairs"])): f["metrics"][SECTION][metric]
           for f in small["folds"]}
    pairs = [(key[where], f["metrics"][SECTION][metric]) for f in large["folds"]
             if (where := (f["repeat"], tuple(f["test_pairs"]))) in key]
    if len(pairs) < 2 or any(a is None or b is None for a, b in pairs):
        return None
    return [b - a for a, b in pairs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--row", required=True, help="the CV row to read in every folder")
    parser.add_argument("--point", action="append", required=True, metavar="N=DIR",
                        help="N training pairs per fold = a CV results folder (repeatable)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    points = []
    for spec in args.point:
        points.append(read_point(spec, args.row))
    points.sort(key=lambda p: (plan_of(p), p["n"]))
    lines = [f"# Learning curve: `{args.row}`, {SECTION} composites\n",
             "mean ± sample std over test folds; targets from issue 14.\n",
             "| training pairs | CV | test pairs per fold | "
             + " | ".join(label for label, _ in METRICS.values())
             + " | median Dice | results |", "|---|---|---|" + "---|" * (len(METRICS) + 2)]
    for p in points:
        cells = [fmt_mean_std(*mean_std(f["metrics"][SECTION][m] for f in p["folds"]))
                 for m in METRICS]
        dices = [d for f in p["folds"] if (d := f["metrics"][SECTION]["dice"]) is not None]
        median = statistics.median(dices) if dices else None
        lines.append(f"| {p['n']} | {plan_of(p)}-fold, {len(p['folds'])} test folds | "
                     f"{len(p['folds'][0]['test_pairs'])} | " + " | ".join(cells)
                     + f" | {fmt(median)} | `{p['folder'].name}` |")
    lines += ["", "## Paired changes (the same test folds and seeds, more training pairs)\n",
              "| from → to | CV | folds | " + " | ".join(f"{label} change" for label, _ in
                                                        METRICS.values())
              + " | folds better (Dice) |", "|---|---|---|" + "---|" * (len(METRICS) + 1)]
    for i, small in enumerate(points):
        for large in points[i + 1:]:
            changes = {m: paired_changes(small, large, m) for m in METRICS}
            dice = changes["dice"]
            if dice is None or large["n"] <= small["n"]:
                continue
            cells = [fmt_mean_std(*mean_std(c or []), digits=3) for c in changes.values()]
            lines.append(f"| {small['n']} → {large['n']} | {plan_of(large)}-fold | {len(dice)} | "
                         + " | ".join(cells) + f" | {sum(g > 0 for g in dice)} of {len(dice)} |")
    figure = new_figure(4.0 * len(METRICS), 3.2)
    for axis, (metric, (label, target)) in zip(figure.subplots(1, len(METRICS)),
                                                   METRICS.items(), strict=True):
        # one line per fold plan, shifted a little so that the error bars do not overlap
        for shift, plan in enumerate(sorted({plan_of(p) for p in points})):
            mine = [p for p in points if plan_of(p) == plan]
            means, stds = zip(*(mean_std(f["metrics"][SECTION][metric] for f in p["folds"])
                                for p in mine), strict=True)
            axis.errorbar([p["n"] + 0.08 * shift for p in mine], means,
                          yerr=[s or 0.0 for s in stds],
                          marker="o", capsize=4, label=f"{plan}-fold CV")
        axis.axhline(target, color="tab:red", linestyle="--", label=f"target {fmt(target)}")
        axis.set(xlabel="training pairs per fold", title=label,
                 xticks=sorted({p["n"] for p in points}))
        axis.legend(loc="best", fontsize="small")
    save_figure(figure, args.out / "learning_curve.png")
    write_text(args.out / "learning_curve.md", "\n".join(lines) + "\n\n![learning curve]"
               "(learning_curve.png)\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
