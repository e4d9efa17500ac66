"""``fakeseg benchmark-detection``: leave-one-generator-out for every detection method."""

from __future__ import annotations

import argparse
import shlex
import sys


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from fakeseg.cli import example

    bench = subparsers.add_parser(
        "benchmark-detection", parents=[common],
        help="leave-one-generator-out benchmark of the detection methods",
        description="For every method, seed and generator of DATA: train on all other "
                    "generators' real + synthetic images, test on the held-out generator's; "
                    "plus an in-distribution random split. Writes OUT/metrics.json and "
                    "OUT/metrics.md (mean ± std over generators, bootstrap CI, per-generator "
                    "rows) and one file per finished cell under OUT/cells/; rerunning skips "
                    "finished cells.",
        epilog=example("fakeseg benchmark-detection data/cnndetection --out "
                       "runs/detection_logo --methods probe,npr --seeds 2"))
    bench.add_argument("data", metavar="DATA",
                       help="folder with real/ and synthetic/ (or fake/), or a CSV with a "
                            "source column; generators from file names")
    bench.add_argument("--out", required=True, metavar="DIR",
                       help="output folder (resumable)")
    bench.add_argument("--methods", default=None, metavar="A,B",
                       help="comma list (default: every method: probe, probe_lite0, "
                            "probe_concat, spectral, npr, cnn, cnn_blurjpeg, ensemble)")
    bench.add_argument("--seeds", type=int, default=1, metavar="N", help="seeds 0..N-1")
    bench.add_argument("--val-fraction", type=float, default=0.2,
                       help="share of each cell's training images kept for validation")
    bench.add_argument("--test-fraction", type=float, default=0.3,
                       help="test share of the in-distribution random split")
    bench.add_argument("--source-pattern", default=None,
                       help="regex on file stems whose first group names the generator "
                            "(default: N_GENERATOR_{real,fake})")
    bench.add_argument("--threads", type=int, default=None, metavar="N",
                       help="torch CPU threads (default: torch's choice)")
    bench.set_defaults(handler=_benchmark)


def _benchmark(args: argparse.Namespace) -> int:
    from fakeseg.data.labeled import DEFAULT_SOURCE_PATTERN
    from fakeseg.detection.benchmark import benchmark_detection

    methods = [m for m in args.methods.split(",") if m.strip()] if args.methods else None
    pattern = DEFAULT_SOURCE_PATTERN if args.source_pattern is None else \
        (args.source_pattern or None)
    command = "fakeseg " + " ".join(shlex.quote(a) for a in sys.argv[1:]
                                    if a not in ("-q", "--quiet")) if sys.argv[1:2] == \
        ["benchmark-detection"] else ""
    result = benchmark_detection(args.data, args.out, methods=methods, seeds=args.seeds,
                                 val_fraction=args.val_fraction,
                                 test_fraction=args.test_fraction, source_pattern=pattern,
                                 threads=args.threads, command=command, progress=True)
    print(f"metrics: {args.out}/metrics.json, {args.out}/metrics.md")
    for name, m in sorted(result.methods.items(),
                          key=lambda kv: -(kv[1]["logo_roc_auc_mean"] or 0.0)):
        mean, std = m["logo_roc_auc_mean"], m["logo_roc_auc_std_over_generators"]
        ind = m["in_distribution_roc_auc"]
        print(f"  {name}: LOGO ROC AUC "
              f"{'n/a' if mean is None else f'{mean:.3f} ± {std:.3f}'}, worst "
              f"{m['worst_generator']}, in-distribution "
              f"{'n/a' if ind is None else f'{ind:.3f}'}")
    return 0
