"""``fakeseg evaluate`` and ``fakeseg benchmark``."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from fakeseg.cli import add_device_option, add_mask_options, example

    evaluate = subparsers.add_parser(
        "evaluate", parents=[common], help="score a model on composites or on masked images",
        description="Paired mode: fakeseg evaluate MODEL DATA --out DIR builds seeded "
                    "composites of held-out pairs (saved under DIR/composites).\n"
                    "Mask mode: fakeseg evaluate MODEL --images DIR --masks DIR --out DIR.\n"
                    "Writes metrics.json, metrics.md and failures_*.png galleries.",
        epilog=example("fakeseg evaluate runs/a data/pairs --out runs/a/evaluate"),
    )
    evaluate.add_argument("model", metavar="MODEL", help="run folder or checkpoint folder")
    evaluate.add_argument("data", nargs="?", metavar="DATA",
                          help="paired dataset folder (paired mode)")
    evaluate.add_argument("--out", required=True, metavar="DIR", help="output folder")
    add_mask_options(evaluate, what="for mask mode")
    evaluate.add_argument("--threshold", type=float, metavar="P",
                          help="fixed pixel threshold in [0, 1] (default: chosen on the "
                               "validation pairs, else the checkpoint's)")
    evaluate.add_argument("--sources-csv", metavar="FILE.csv",
                          help="CSV of path,source for per-source tables (default: none)")
    evaluate.add_argument("--source-pattern", metavar="REGEX",
                          help="regex whose first group names the source in a file name, "
                               "e.g. '_([a-z]+)_fake' (default: no per-source tables)")
    evaluate.add_argument("--seed", type=int, default=2024, metavar="N",
                          help="seed of the composites")
    add_device_option(evaluate)
    evaluate.set_defaults(handler=_evaluate)
    register_benchmark(subparsers, common)


def _evaluate(args: argparse.Namespace) -> int:
    from fakeseg.errors import FakesegError
    from fakeseg.evaluation.evaluate import evaluate_masks, evaluate_pairs, save_evaluation
    from fakeseg.evaluation.protocol import ProtocolConfig

    if (args.data is None) == (args.images is None):
        raise FakesegError("give either a paired dataset folder, or --images and --masks")
    if args.data is not None:
        result = evaluate_pairs(args.model, args.data, protocol=ProtocolConfig(seed=args.seed),
                                threshold=args.threshold, device=args.device, progress=True)
    elif args.masks is None:
        raise FakesegError("--images needs --masks (binary ground-truth masks, same stems)")
    else:
        result = evaluate_masks(args.model, args.images, args.masks, threshold=args.threshold,
                                resize_masks=args.resize_masks, invert_masks=args.invert_masks,
                                sources_csv=args.sources_csv,
                                source_pattern=args.source_pattern, device=args.device,
                                progress=True)
    return _print_tables(save_evaluation(result, args.out))


def _print_tables(files: dict[str, Path]) -> int:
    print(files["metrics_md"].read_text())
    print(f"metrics: {files['metrics_json']}")
    return 0


def register_benchmark(subparsers: argparse._SubParsersAction,
                       common: argparse.ArgumentParser) -> None:
    from fakeseg.cli import example
    from fakeseg.cli.model_commands import add_config_options, config_default

    bench = subparsers.add_parser(
        "benchmark", parents=[common], help="train FakeSegment and the baselines, compare",
        description="Trains every method with the same trainer, split, composites and step "
                    "budget, then prints a Table-1-style comparison (Dice/IoU per class and "
                    "average, F1, AUC, wall time, parameters) with the trivial floors. "
                    "An interrupted benchmark resumes each run from its last epoch. "
                    "--folds K cross-validates by pair (the oracle row is left out there).",
        epilog=example("fakeseg benchmark data/pairs --out runs/bench --methods "
                       "fakesegment,catnet --folds 3"),
    )
    bench.add_argument("data", metavar="DATA", help="paired dataset folder")
    bench.add_argument("--out", required=True, metavar="DIR",
                       help="output folder (runs/, composites/, metrics.*)")
    bench.add_argument("--methods", metavar="M1,M2",
                       help="comma-separated: fakesegment and baseline names (default: "
                            "fakesegment and every trainable baseline)")
    add_config_options(bench)
    bench.add_argument("--steps", type=int, metavar="N",
                       help="step budget for every method " + config_default("steps"))
    bench.add_argument("--no-oracle", action="store_true", help="skip the pair-oracle row")
    bench.add_argument("--folds", type=int, default=1, metavar="K",
                       help="K-fold cross-validation by pair: every pair tested once, mean ± "
                            "std over folds plus per-fold rows; resumable per fold (default: "
                            "1, one split by val_fraction/test_fraction)")
    bench.add_argument("--repeats", type=int, default=1, metavar="R",
                       help="with --folds: reshuffle the folds and reseed R times (default: 1)")
    bench.add_argument("--flip-tta", action="store_true",
                       help="with --folds: also score every method with flip test-time "
                            "augmentation (default: off)")
    bench.add_argument("--train-pairs", type=int, metavar="N",
                       help="with --folds: train on only N of each fold's training pairs "
                            "(rerun with several N for a learning curve: would more pairs "
                            "help?) (default: all of them)")
    bench.add_argument("--only-folds", metavar="F1,F2", type=_fold_list,
                       help="with --folds: train and score only these folds (0 to K-1), e.g. "
                            "one process or machine each on a shared --out; the table is "
                            "written by the run that finds every fold scored (default: all)")
    bench.set_defaults(handler=_benchmark)


def _fold_list(text: str) -> list[int]:
    try:
        folds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        folds = []
    if not folds or min(folds) < 0:
        raise argparse.ArgumentTypeError(f"expected fold numbers like 0,2, got {text!r}")
    return folds


def _benchmark(args: argparse.Namespace) -> int:
    from fakeseg.cli.model_commands import train_config_from_args
    from fakeseg.errors import FakesegError
    from fakeseg.evaluation.evaluate import save_evaluation
    from fakeseg.progress import say
    from fakeseg.workflows.benchmark import DEFAULT_METHODS, benchmark

    base = train_config_from_args(args)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods \
        else list(DEFAULT_METHODS)
    if args.folds > 1:
        from fakeseg.workflows.crossval import cross_validate, save_cv

        cv = cross_validate(args.data, args.out, base=base, methods=methods, folds=args.folds,
                            repeats=args.repeats,
                            flip_tta=methods if args.flip_tta else (),
                            train_pairs=args.train_pairs, only_folds=args.only_folds,
                            progress=True)
        if cv.gaps:
            say(f"[benchmark] {args.out}: {cv.gaps}")
            return 0
        return _print_tables(save_cv(cv, args.out))
    if args.repeats != 1 or args.flip_tta or args.train_pairs is not None or args.only_folds:
        raise FakesegError("--repeats, --flip-tta, --train-pairs and --only-folds need "
                           "--folds K (K ≥ 2)")
    result = benchmark(args.data, args.out, base=base, methods=methods,
                       oracle=not args.no_oracle, progress=True)
    return _print_tables(save_evaluation(result.evaluation, args.out))
