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
from pathlib import Path

import numpy as np

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
from fakeseg.io import write_json
from fakeseg.models.fakesegment import FakeSegment


def share(numerator: np.ndarray, denominator: np.ndarray) -> float | None:
    total = int(denominator.sum())
    return float(numerator.sum() / total) if total else None


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
    model = FakeSegment.load(run, device="cpu")
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
    counts: dict[str, list[np.ndarray]] = {k: [] for k in (
        "visible", "invisible", "hit_visible", "hit_invisible", "real", "alarm_real",
        "pure_real", "alarm_pure_real")}
    bands = {name: ([], []) for name in ("top", "middle", "bottom")}
    for item in parts["test"]:
        flagged = scorer(item) >= threshold
        height = flagged.shape[0]
        for b, (real_px, alarms) in enumerate(bands.values()):
            rows = slice(b * height // 3, (b + 1) * height // 3)
            real_px.append(~item.mask[rows])
            alarms.append(flagged[rows] & ~item.mask[rows])
        if item.kind == "pure_real":
            counts["pure_real"].append(np.ones_like(flagged))
            counts["alarm_pure_real"].append(flagged)
            continue
        if not is_mixed(item):
            continue
        visible = oracle(item) >= oracle_threshold
        counts["visible"].append(item.mask & visible)
        counts["invisible"].append(item.mask & ~visible)
        counts["hit_visible"].append(flagged & item.mask & visible)
        counts["hit_invisible"].append(flagged & item.mask & ~visible)
        counts["real"].append(~item.mask)
        counts["alarm_real"].append(flagged & ~item.mask)
    total = {k: np.concatenate([a.ravel() for a in v]) for k, v in counts.items()}
    synthetic = int(total["visible"].sum() + total["invisible"].sum())
    result = {
        "entry": args.entry, "threshold": threshold, "oracle_threshold": float(oracle_threshold),
        "invisible_share_of_synthetic": float(total["invisible"].sum() / synthetic),
        "recall_visible": share(total["hit_visible"], total["visible"]),
        "recall_invisible": share(total["hit_invisible"], total["invisible"]),
        "false_alarms_real_pixels_in_composites": share(total["alarm_real"], total["real"]),
        "false_alarms_pure_real": share(total["alarm_pure_real"], total["pure_real"]),
        "false_alarms_real_by_third": {
            name: share(np.concatenate([a.ravel() for a in alarms]),
                        np.concatenate([r.ravel() for r in real_px]))
            for name, (real_px, alarms) in bands.items()},
        "test_pairs": split.test, "protocol": metrics["protocol"], "versions": versions(),
    }
    write_json(args.results / f"failure_analysis_{args.entry.replace(':', '_')}.json", result)
    print(json.dumps({k: v for k, v in result.items() if k not in ("protocol", "versions")},
                     indent=1))


if __name__ == "__main__":
    main()
