"""``fakeseg data check``, ``fakeseg demo-data`` and ``fakeseg weights``."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from fakeseg.cli import example

    data = subparsers.add_parser("data", parents=[common],
                                 help="inspect datasets: pairs, shortcuts, frames",
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

    shortcuts = data_sub.add_parser(
        "shortcuts", parents=[common],
        help="can the labels of a real/ + synthetic/ folder be read off the frame or size?",
        description="Fits a cross-validated logistic regression on cues that carry no picture "
                    "content (the outer 4-px edge colour; the image size) and reports each one "
                    "that alone tells real from synthetic images (balanced accuracy ≥ 0.9). "
                    "Exits 1 when it finds one. classify train, classify eval and "
                    "benchmark-detection run the same check and warn.",
        epilog=example("fakeseg data shortcuts data/cnndetection"),
    )
    shortcuts.add_argument("root", metavar="DATA",
                           help="folder with real/ and synthetic/ (or fake/), or a CSV")
    shortcuts.set_defaults(handler=_data_shortcuts)

    unframe = data_sub.add_parser(
        "unframe", parents=[common], help="copy a folder with every image's frame cropped off",
        description="Measures each image's uniform frame (a border in the corner's colour) and "
                    "writes a lossless PNG copy without it, same relative paths; in a JPEG the "
                    "crop goes on to the first 16-px block past the frame, which carries its "
                    "colour. Images without a frame are copied unchanged, unreadable ones "
                    "skipped with a line each; a rerun keeps finished files. The copy of a real/ "
                    "+ synthetic/ folder is then checked as 'data shortcuts' does.",
        epilog=example("fakeseg data unframe data/cnndetection --out data/cnndetection_unframed"),
    )
    unframe.add_argument("root", metavar="DATA", help="folder of images (searched recursively)")
    unframe.add_argument("--out", required=True, metavar="DIR", help="output folder")
    unframe.add_argument("--border", type=int, metavar="PX",
                         help="cut this many pixels off every side of every image (default: "
                              "each image's own frame, measured)")
    unframe.set_defaults(handler=_data_unframe)

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


def _data_shortcuts(args: argparse.Namespace) -> int:
    from fakeseg.data.labeled import load_labeled
    from fakeseg.data.shortcuts import find_shortcuts

    found = find_shortcuts(load_labeled(args.root, source_pattern=None))
    for shortcut in found:
        print(f"fakeseg: problem: {shortcut.message(args.root)}", file=sys.stderr)
    if not found:
        print(f"{args.root}: neither the edge colour nor the image size tells real from "
              "synthetic images")
    return 1 if found else 0


def _data_unframe(args: argparse.Namespace) -> int:
    from fakeseg.data.shortcuts import unframe

    result = unframe(args.root, args.out, border=args.border, progress=True)
    for shortcut in result.shortcuts or []:
        print(f"fakeseg: problem: {shortcut.message(args.out)}", file=sys.stderr)
    print(result.summary())
    return 1 if result.shortcuts else 0


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
