"""``fakeseg data check``, ``fakeseg demo-data`` and ``fakeseg weights``."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from fakeseg.cli import example

    data = subparsers.add_parser("data", parents=[common], help="inspect paired datasets",
                                 epilog=example("fakeseg data check data/pairs"))
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION",
                                   parser_class=type(data))
    data_sub.required = True
    check = data_sub.add_parser(
        "check", parents=[common], help="read every file of a paired dataset and report problems",
        description="Pairs real/ and synthetic/ by stem, reads every image and reports unpaired, "
                    "unreadable and size-mismatched files, one line each. Exits 1 when it "
                    "finds a problem.",
        epilog=example("fakeseg data check data/pairs --resize"),
    )
    check.add_argument("root", metavar="DATA",
                       help="dataset folder with real/ and synthetic/ (labels/, masks/)")
    check.add_argument("--resize", action="store_true",
                       help="accept real images whose size differs (they are resampled)")
    check.set_defaults(handler=_data_check)

    demo = subparsers.add_parser(
        "demo-data", parents=[common], help="build the built-in demo dataset",
        description="Builds a paired dataset from photos that ship inside installed packages; "
                    "the synthetic side is a render-look simulation (demo/test data only).",
        epilog=example("fakeseg demo-data data/demo --size 256 --variants 3"),
    )
    demo.add_argument("out", metavar="DIR", help="output folder")
    demo.add_argument("--seed", type=int, default=0, metavar="N",
                      help="seed of the simulated artifacts")
    demo.add_argument("--size", type=int, default=192, metavar="PX",
                      help="side of the square images in pixels")
    demo.add_argument("--variants", type=int, default=2, metavar="N",
                      help="synthetic versions per photo")
    demo.set_defaults(handler=_demo_data)

    weights = subparsers.add_parser(
        "weights", parents=[common], help="list pretrained weights available locally",
        description="Lists backbone weights found in the torchvision cache, in installed "
                    "packages and at the paths given.",
        epilog=example("fakeseg weights ~/Downloads/mobilenet_v2-b0353104.pth"),
    )
    weights.add_argument("paths", nargs="*", metavar="FILE", help="extra weight files to check")
    weights.set_defaults(handler=_weights)


def _data_check(args: argparse.Namespace) -> int:
    from fakeseg.data.pairs import check_dataset

    report = check_dataset(args.root, allow_resize=args.resize, progress=True)
    print(report.summary())
    for problem in report.problems:
        print(f"fakeseg: problem: {problem}", file=sys.stderr)
    return 0 if report.ok else 1


def _demo_data(args: argparse.Namespace) -> int:
    from fakeseg.data.demo import build_demo_dataset

    summary = build_demo_dataset(args.out, seed=args.seed, size=args.size,
                                 variants=args.variants)
    print(f"demo dataset: {summary.n_pairs} pairs in {summary.root}")
    return 0


def _weights(args: argparse.Namespace) -> int:
    from fakeseg.features import available_weights

    rows = available_weights(args.paths)
    width = max((len(row.backbone) for row in rows), default=8)
    for row in rows:
        state = "yes" if row.exists else "no "
        print(f"{row.backbone:<{width}}  {state}  {row.source:<28} {row.path}"
              + (f"  ({row.note})" if row.note else ""))
    return 0
