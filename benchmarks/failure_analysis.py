"""Why a benchmarked model misses: its errors split by what the pair oracle can see.

For one finished benchmark entry, on the test composites with shortcut controls:

* a ground-truth synthetic pixel is *visible* when the pair oracle |F(R) − F(C)| is at or above
  the oracle's own validation threshold, *invisible* otherwise (the real and synthetic images
  barely differ there, so no method that sees only the composite can be sure);
* the model's recall on visible and invisible synthetic pixels, and its false-alarm rate on
  real pixels of mixed composites and on pure-real images, overall and by image third (top,
  middle, bottom: sky and façades, mid-scene, road);
* the false alarms on pure-real images split the same way: a real pixel is *visible* when the
  pair oracle of the same pair's pure-synthetic image, |F(R) − F(S)|, is at or above its
  threshold there. A false alarm where R and S do not differ flags content the enhancer left
  as it was rendered: the label says real, the pixels are the render's.

    python benchmarks/failure_analysis.py benchmarks/results/all_vistas --entry mask
    python benchmarks/failure_analysis.py runs/cv_vistas --cv es0+lite0+steps1500@default \
        --repeats 2 --out benchmarks/results/cv_vistas_false_alarms

Writes ``failure_analysis_<entry>.json`` beside the benchmark's metrics.json; with ``--cv``
(finished ``bench_cv.py`` runs: every fold's test pairs, the threshold chosen on its validation
composites as CV does, counts summed over folds) ``failure_analysis.json`` in ``--out``.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from fakeseg.config import TrainConfig, versions
from fakeseg.data.composites import CompositeItem
from fakeseg.data.pairs import index_pairs, load_split
from fakeseg.evaluation.protocol import (
    LayerMapCache,
    ProtocolConfig,
    fit_oracle_scales,
    is_mixed,
    model_scorer,
    oracle_scorer,
    validation_threshold,
)
from fakeseg.inference.localizer import Localizer
from fakeseg.io import write_json
from fakeseg.workflows.crossval import plan_folds, scored_run, split_sets


def share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


THIRDS = ("top", "middle", "bottom")


def error_counts(model: Localizer, threshold: float, parts: dict[str, list[CompositeItem]]
                 ) -> tuple[Counter[str], float]:
    """Pixel counts of hits, misses and false alarms on one split's controlled test composites
    (``parts``: "val" and "test"), split by image third and by what the pair oracle (the
    model's own backbone) can see; and the oracle's threshold, chosen on "val"."""
    extractor = model.net.feature_extractor
    if extractor is None:
        raise SystemExit("the pair oracle needs a model with a feature extractor")
    cache: LayerMapCache = {}
    scales = fit_oracle_scales(extractor, parts["val"], cache=cache)
    oracle = oracle_scorer(extractor, scales, cache=cache)
    oracle_threshold = validation_threshold(oracle, parts["val"])
    scorer = model_scorer(model)
    pure_synthetic: dict[str, CompositeItem] = {
        i.stem: i for i in parts["test"] if i.kind == "pure_synthetic"}
    counts: Counter[str] = Counter()
    for item in parts["test"]:
        flagged = scorer(item) >= threshold
        real, height = ~item.mask, flagged.shape[0]
        for b, name in enumerate(THIRDS):
            rows = slice(b * height // 3, (b + 1) * height // 3)
            counts[f"real_{name}"] += int(real[rows].sum())
            counts[f"alarm_{name}"] += int((flagged & real)[rows].sum())
        if item.kind == "pure_real":
            counts["pure_real"] += flagged.size
            counts["alarm_pure_real"] += int(flagged.sum())
            partner = pure_synthetic.get(item.stem)
            if partner is not None and partner.mask.shape == flagged.shape:
                differs = oracle(partner) >= oracle_threshold  # where R and S differ
                counts["pure_real_visible"] += int(differs.sum())
                counts["pure_real_invisible"] += int((~differs).sum())
                counts["alarm_pure_real_visible"] += int((flagged & differs).sum())
                counts["alarm_pure_real_invisible"] += int((flagged & ~differs).sum())
        elif is_mixed(item):
            visible = oracle(item) >= oracle_threshold
            counts["visible"] += int((item.mask & visible).sum())
            counts["invisible"] += int((item.mask & ~visible).sum())
            counts["hit_visible"] += int((flagged & item.mask & visible).sum())
            counts["hit_invisible"] += int((flagged & item.mask & ~visible).sum())
            counts["real"] += int(real.sum())
            counts["alarm_real"] += int((flagged & real).sum())
    return counts, oracle_threshold


def summary(counts: Counter[str]) -> dict[str, object]:
    return {
        "invisible_share_of_synthetic": share(counts["invisible"],
                                              counts["visible"] + counts["invisible"]),
        "recall_visible": share(counts["hit_visible"], counts["visible"]),
        "recall_invisible": share(counts["hit_invisible"], counts["invisible"]),
        "false_alarms_real_pixels_in_composites": share(counts["alarm_real"], counts["real"]),
        "false_alarms_pure_real": share(counts["alarm_pure_real"], counts["pure_real"]),
        "false_alarms_real_by_third": {
            name: share(counts[f"alarm_{name}"], counts[f"real_{name}"]) for name in THIRDS},
        "pure_real_share_where_r_equals_s": share(
            counts["pure_real_invisible"],
            counts["pure_real_visible"] + counts["pure_real_invisible"]),
        "false_alarms_pure_real_where_r_differs": share(counts["alarm_pure_real_visible"],
                                                        counts["pure_real_visible"]),
        "false_alarms_pure_real_where_r_equals_s": share(counts["alarm_pure_real_invisible"],
                                                         counts["pure_real_invisible"]),
        "share_of_pure_real_alarms_where_r_equals_s": share(
            counts["alarm_pure_real_invisible"],
            counts["alarm_pure_real_visible"] + counts["alarm_pure_real_invisible"]),
    }


def benchmark_entry(results: Path, entry: str) -> None:
    metrics = json.loads((results / "metrics.json").read_text())
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                              for k, v in metrics["protocol"].items()}
    protocol = ProtocolConfig(**fields)
    run = results / "runs" / entry
    split = load_split(run / "split.json")
    row = next(r for r in metrics["results"]["composites, with shortcut controls"]
               if r["name"] == entry)
    threshold = float(row["threshold"])
    parts = split_sets(index_pairs(Path(metrics["data"])), split, protocol)["controlled"]
    counts, oracle_threshold = error_counts(Localizer.load(run, device="cpu"), threshold, parts)
    result = {"entry": entry, "threshold": threshold, "oracle_threshold": oracle_threshold,
              **summary(counts), "test_pairs": split.test, "protocol": metrics["protocol"],
              "versions": versions()}
    write_json(results / f"failure_analysis_{entry.replace(':', '_')}.json", result)
    print(json.dumps({k: v for k, v in result.items() if k not in ("protocol", "versions")},
                     indent=1))


def cross_validation_row(work: Path, row: str, data: Path, folds: int, repeats: int,
                         out: Path) -> None:
    """Counts summed over every fold of a finished ``bench_cv.py`` @default row, each fold at
    the threshold CV chose (micro F1 on its validation composites)."""
    index = index_pairs(data)
    total: Counter[str] = Counter()
    per_fold = []
    base = TrainConfig(val_fraction=0.2)  # the @default rows' split (bench_cv.py)
    for planned in plan_folds(index.stems, folds, repeats, base):
        parts = split_sets(index, planned.split, planned.protocol)["controlled"]
        model = Localizer.load(scored_run(work, planned.repeat, planned.fold, row),
                               device="cpu")
        threshold = validation_threshold(model_scorer(model), parts["val"])
        counts, oracle_threshold = error_counts(model, threshold, parts)
        total += counts
        per_fold.append({"repeat": planned.repeat, "fold": planned.fold,
                         "test_pairs": planned.split.test, "threshold": threshold,
                         "oracle_threshold": oracle_threshold, **summary(counts)})
        print(json.dumps(per_fold[-1]), flush=True)
    result = {"row": row, "folds": folds, "repeats": repeats, **summary(total),
              "per_fold": per_fold, "versions": versions()}
    write_json(out / "failure_analysis.json", result)
    print(json.dumps({k: v for k, v in result.items() if k not in ("per_fold", "versions")},
                     indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a benchmark output folder, or with --cv "
                        "bench_cv.py's work folder (runs/cv_vistas)")
    parser.add_argument("--entry", default="mask", help="the run under RESULTS/runs/")
    parser.add_argument("--cv", metavar="ROW", help="a finished bench_cv.py row instead")
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/epe_vistas"),
                        help="--cv: the paired data the row was trained on")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, help="--cv: where failure_analysis.json goes")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.cv:
        cross_validation_row(args.results, args.cv, args.data, args.folds, args.repeats,
                             args.out or args.results)
    else:
        benchmark_entry(args.results, args.entry)


if __name__ == "__main__":
    main()
