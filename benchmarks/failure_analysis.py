"""Why a benchmarked model misses: its errors split by what the pair oracle can see.

For one finished benchmark entry, on the test composites with shortcut controls:

* a ground-truth synthetic pixel is *visible* when the pair oracle |F(R) − F(C)| is at or above
  the oracle's own validation threshold, *invisible* otherwise (the real and synthetic images
  barely differ there, so no method that sees only the composite can be sure);
* the model's recall on visible and invisible synthetic pixels, and its false-alarm rate on
  real pixels of mixed composites and on pure-real images, overall and by image third (top,
  middle, bottom: sky and façades, mid-scene, road).

    python benchmarks/failure_analysis.py benchmarks/results/all_vistas --entry mask

Writes ``failure_analysis_<entry>.json`` beside the benchmark's metrics.json.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from fakeseg.config import versions
from fakeseg.data.pairs import index_pairs, load_pair, load_split
from fakeseg.evaluation.metrics import best_threshold
from fakeseg.evaluation.protocol import (
    LayerMapCache,
    ProtocolConfig,
    fit_oracle_scales,
    is_mixed,
    model_scorer,
    oracle_scorer,
    protocol_sets,
)
from fakeseg.inference.localizer import Localizer
from fakeseg.io import write_json


def share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a benchmark output folder")
    parser.add_argument("--entry", default="mask", help="the run under RESULTS/runs/")
    args = parser.parse_args()
    metrics = json.loads((args.results / "metrics.json").read_text())
    protocol = ProtocolConfig(**{k: tuple(v) if isinstance(v, list) else v
                                 for k, v in metrics["protocol"].items()})
    data = Path(metrics["data"])
    run = args.results / "runs" / args.entry
    split = load_split(run / "split.json")
    model = Localizer.load(run, device="cpu")
    row = next(r for r in metrics["results"]["composites, with shortcut controls"]
               if r["name"] == args.entry)
    threshold = float(row["threshold"])
    index = index_pairs(data)
    val = [load_pair(p) for p in index.subset(split.val)]
    test = [load_pair(p) for p in index.subset(split.test)]
    parts = protocol_sets(val, test, protocol)["controlled"]
    extractor = model.net.extractor
    cache: LayerMapCache = {}
    scales = fit_oracle_scales(extractor, parts["val"], cache=cache)
    oracle = oracle_scorer(extractor, scales, cache=cache)
    mixed_val = [i for i in parts["val"] if is_mixed(i)]
    oracle_threshold, _ = best_threshold([oracle(i) for i in mixed_val],
                                         [i.mask for i in mixed_val])
    scorer = model_scorer(model)
    counts: Counter[str] = Counter()  # pixel counts
    thirds = ("top", "middle", "bottom")
    for item in parts["test"]:
        flagged = scorer(item) >= threshold
        real, height = ~item.mask, flagged.shape[0]
        for b, name in enumerate(thirds):
            rows = slice(b * height // 3, (b + 1) * height // 3)
            counts[f"real_{name}"] += int(real[rows].sum())
            counts[f"alarm_{name}"] += int((flagged & real)[rows].sum())
        if item.kind == "pure_real":
            counts["pure_real"] += flagged.size
            counts["alarm_pure_real"] += int(flagged.sum())
        elif is_mixed(item):
            visible = oracle(item) >= oracle_threshold
            counts["visible"] += int((item.mask & visible).sum())
            counts["invisible"] += int((item.mask & ~visible).sum())
            counts["hit_visible"] += int((flagged & item.mask & visible).sum())
            counts["hit_invisible"] += int((flagged & item.mask & ~visible).sum())
            counts["real"] += int(real.sum())
            counts["alarm_real"] += int((flagged & real).sum())
    result = {
        "entry": args.entry, "threshold": threshold, "oracle_threshold": float(oracle_threshold),
        "invisible_share_of_synthetic": share(counts["invisible"],
                                              counts["visible"] + counts["invisible"]),
        "recall_visible": share(counts["hit_visible"], counts["visible"]),
        "recall_invisible": share(counts["hit_invisible"], counts["invisible"]),
        "false_alarms_real_pixels_in_composites": share(counts["alarm_real"], counts["real"]),
        "false_alarms_pure_real": share(counts["alarm_pure_real"], counts["pure_real"]),
        "false_alarms_real_by_third": {
            name: share(counts[f"alarm_{name}"], counts[f"real_{name}"]) for name in thirds},
        "test_pairs": split.test, "protocol": metrics["protocol"], "versions": versions(),
    }
    write_json(args.results / f"failure_analysis_{args.entry.replace(':', '_')}.json", result)
    print(json.dumps({k: v for k, v in result.items() if k not in ("protocol", "versions")},
                     indent=1))


if __name__ == "__main__":
    main()
