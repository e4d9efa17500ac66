"""``fakeseg featdiff`` and ``fakeseg report``: views for people."""

from __future__ import annotations

import argparse
import sys

from fakeseg.errors import FakesegError


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from fakeseg.cli import add_device_option, example

    featdiff = subparsers.add_parser(
        "featdiff", parents=[common], help="per-layer feature discrepancy maps, MSE and SSIM",
        description="Embeds each real/synthetic pair with every backbone and writes, per "
                    "layer, the map mean_c |F(R) - F(S)| over the synthetic image, the MSE and "
                    "SSIM of the activations, a grid per pair and a table over pairs. Give "
                    "--real and --synthetic, or --pairs.",
        epilog=example("fakeseg featdiff --pairs data/pairs --out runs/featdiff --layers "
                       "ssdlite_mobilenet_v2=all"),
    )
    featdiff.add_argument("--real", metavar="PATH",
                          help="real image, or folder of real images (default: none, use "
                               "--pairs)")
    featdiff.add_argument("--synthetic", metavar="PATH",
                          help="synthetic image, or folder; pairs match by stem (default: none, "
                               "use --pairs)")
    featdiff.add_argument("--pairs", metavar="DATA",
                          help="paired dataset folder (real/, synthetic/) instead of the two "
                               "(default: none)")
    featdiff.add_argument("--out", required=True, metavar="DIR", help="output folder")
    featdiff.add_argument("--backbones", default="ssdlite_mobilenet_v2,efficientnet_lite0",
                          metavar="B1,B2",
                          help="comma-separated backbone names (see 'fakeseg weights') and/or "
                               "run folders of 'fakeseg classify train' (their trained trunk "
                               "on mobilenet_v2 or efficientnet_lite0, tapped like that "
                               "backbone)")
    featdiff.add_argument("--backbone-weights", default="auto", metavar="WEIGHTS",
                          help="auto | imagenet | coco | random | PATH; auto skips backbones "
                               "without weights")
    featdiff.add_argument("--layers", nargs="+", metavar="SPEC",
                          help="'all', or BACKBONE=l1,l2 / BACKBONE=all per backbone (default: "
                               "each backbone's default taps)")
    featdiff.add_argument("--max-side", type=int, default=768, metavar="PX",
                          help="downscale images whose long side exceeds this (0: never)")
    featdiff.add_argument("--resize", action="store_true", help="resample mis-sized real images")
    add_device_option(featdiff)
    featdiff.set_defaults(handler=_featdiff)

    report = subparsers.add_parser(
        "report", parents=[common], help="one self-contained HTML file of a whole audit",
        description="Scans folders (runs, evaluations, predictions, fingerprints, featdiff, "
                    "attacks) and writes one HTML file with everything embedded.",
        epilog=example("fakeseg report runs/demo runs/featdiff --out runs/report.html"),
    )
    report.add_argument("inputs", nargs="+", metavar="FOLDER",
                        help="result folders (searched recursively)")
    report.add_argument("--out", required=True, metavar="FILE.html", help="the HTML file to write")
    report.add_argument("--title", default="fakeseg audit", metavar="TEXT",
                        help="the page's title")
    report.add_argument("--max-images", type=int, default=24, metavar="N",
                        help="predicted images shown, highest score first")
    report.add_argument("--display-px", type=int, default=480, metavar="PX",
                        help="width of displayed images (full size is linked)")
    report.set_defaults(handler=_report)


def parse_layers(specs: list[str] | None) -> dict[str, list[str] | str] | None:
    """``["all"]`` or ``["ssdlite_mobilenet_v2=block3,block6", ...]`` → featdiff's ``layers``."""
    if not specs:
        return None
    layers: dict[str, list[str] | str] = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep:
            if spec.strip() != "all":
                raise FakesegError(f"--layers '{spec}': use 'all' or BACKBONE=layer1,layer2")
            name, value = "*", "all"
        names = [v.strip() for v in value.split(",") if v.strip()]
        layers[name.strip()] = "all" if names == ["all"] else names
    return layers


def _featdiff(args: argparse.Namespace) -> int:
    from fakeseg.api import featdiff
    from fakeseg.features.featdiff import save_featdiff

    result = featdiff(args.real, args.synthetic, pairs=args.pairs, backbones=args.backbones,
                      weights=args.backbone_weights, layers=parse_layers(args.layers),
                      allow_resize=args.resize, max_side=args.max_side or None,
                      device=args.device, progress=True)
    files = save_featdiff(result, args.out)
    for name in result.random_weights:
        print(f"WARNING: {name} used RANDOM weights; its numbers say nothing about realism",
              file=sys.stderr)
    print(f"{len(result.pairs)} pair(s), backbones: "
          + ", ".join(f"{b} ({t})" for b, t in result.weights_tags.items()))
    print(f"table: {files['markdown']}")
    print(f"grids: {args.out}/grid_*.png")
    if result.skipped:
        print(f"fakeseg: {len(result.skipped)} pair(s) skipped, see featdiff.json",
              file=sys.stderr)
        return 1
    return 0


def _report(args: argparse.Namespace) -> int:
    from fakeseg.reporting import report

    path = report(args.inputs, args.out, title=args.title, max_images=args.max_images,
                  display_px=args.display_px)
    print(f"report: {path}")
    return 0
