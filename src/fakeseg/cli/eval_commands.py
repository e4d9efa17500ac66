"""``fakeseg evaluate`` and ``fakeseg benchmark``."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    evaluate = subparsers.add_parser(
        "evaluate", parents=[common], help="score a model on composites or on masked images",
        description="Paired mode: fakeseg evaluate MODEL PAIRS_DIR --out DIR builds seeded "
                    "composites of held-out pairs (saved under DIR/composites). Mask mode: "
                    "fakeseg evaluate MODEL --images DIR --masks DIR --out DIR.",
    )
    evaluate.add_argument("model", help="run folder or checkpoint folder")
    evaluate.add_argument("data", nargs="?", help="paired dataset folder (paired mode)")
    evaluate.add_argument("--out", required=True)
    evaluate.add_argument("--images", help="image folder (mask mode)")
    evaluate.add_argument("--masks", help="binary ground-truth masks, same stems (mask mode)")
    evaluate.add_argument("--resize-masks", action="store_true",
                          help="resample masks whose size differs from the image")
    evaluate.add_argument("--invert-masks", action="store_true",
                          help="masks mark real (not manipulated) pixels")
    evaluate.add_argument("--threshold", type=float, help="fixed threshold instead of the "
                                                          "validation-chosen one")
    evaluate.add_argument("--sources-csv", help="CSV of path,source for per-source tables")
    evaluate.add_argument("--source-pattern", help="regex whose first group names the source "
                                                   "in a file name, e.g. '_([a-z]+)_fake'")
    evaluate.add_argument("--seed", type=int, default=2024, help="composite seed")
    evaluate.add_argument("--device", default="auto")
    evaluate.set_defaults(handler=_evaluate)
    register_benchmark(subparsers, common)


def _evaluate(args: argparse.Namespace) -> int:
    from fakeseg.evaluation.evaluate import evaluate
    from fakeseg.evaluation.protocol import ProtocolConfig

    result = evaluate(args.model, args.data, out=args.out, images=args.images, masks=args.masks,
                      protocol=ProtocolConfig(seed=args.seed), threshold=args.threshold,
                      resize_masks=args.resize_masks, invert_masks=args.invert_masks,
                      sources_csv=args.sources_csv, source_pattern=args.source_pattern,
                      device=args.device, progress=True)
    print(Path(result["files"]["metrics_md"]).read_text())
    print(f"metrics: {result['files']['metrics_json']}")
    return 0


def register_benchmark(subparsers: argparse._SubParsersAction,
                       common: argparse.ArgumentParser) -> None:
    bench = subparsers.add_parser(
        "benchmark", parents=[common], help="train FakeSegment and the baselines, compare",
        description="Trains every method with the same trainer, split, composites and step "
                    "budget, then prints a Table-1-style comparison (Dice/IoU per class and "
                    "average, F1, AUC, wall time, parameters) with the trivial floors.",
    )
    bench.add_argument("data", help="paired dataset folder")
    bench.add_argument("--out", required=True)
    bench.add_argument("--methods", help="comma-separated: fakesegment and baseline names "
                       "(default: fakesegment and every trainable baseline)")
    bench.add_argument("--config", help="YAML of TrainConfig options shared by all methods")
    bench.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE")
    bench.add_argument("--steps", type=int, help="step budget for every method")
    bench.add_argument("--no-oracle", action="store_true", help="skip the pair-oracle row")
    bench.set_defaults(handler=_benchmark)


def _benchmark(args: argparse.Namespace) -> int:
    from fakeseg.cli.model_commands import train_config_from_args
    from fakeseg.workflows.benchmark import DEFAULT_METHODS, benchmark

    base = train_config_from_args(args)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods \
        else list(DEFAULT_METHODS)
    result = benchmark(args.data, args.out, base=base, methods=methods,
                       oracle=not args.no_oracle, progress=True)
    print(Path(result["files"]["metrics_md"]).read_text())
    print(f"metrics: {result['files']['metrics_json']}")
    return 0
