"""``fakeseg enhance``: heat-map-guided enhancement, learned or blended, and its verification."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from fakeseg.cli import example
    from fakeseg.cli.model_commands import add_config_options
    from fakeseg.config import EnhanceConfig
    from fakeseg.enhance import DEFAULT_FD_FEATURES, DEFAULT_ORACLE_BACKBONE

    defaults = EnhanceConfig()
    parser = subparsers.add_parser(
        "enhance", parents=[common], help="edit images only where a trained model flags them",
        description="Learned mode (no --enhanced): trains a small U-Net refiner G against the "
                    "frozen critic RUN, output = x + h(x)·Δ(x), then applies it. h is the "
                    "critic's flagged pixels (probability ≥ its threshold) feathered inward "
                    "only (feather_sigma): it is 0 on every pixel the critic does not flag, "
                    "so in both modes those pixels come out as the input's, bit for bit. "
                    "With a paired dataset, paired_weight / paired_feature_weight pull G(x) "
                    "toward each render's real partner inside h. Blend mode (--enhanced "
                    "DIR): blends your own enhanced frames in by h. Both verify with judges "
                    "G never trained against "
                    "(--judge, the pair oracle, Fréchet distance) and write enhance.json, "
                    "enhance.md, the enhanced images, triptychs and heat maps. IMAGES is a "
                    "paired dataset (the critic's split decides: G trains on its training "
                    "pairs, --split is enhanced) or synthetic images (give --real DIR).",
        epilog=example("fakeseg enhance runs/critic data/pairs --judge runs/judge "
                       "--out runs/enhance --steps 200"),
    )
    parser.add_argument("run", metavar="RUN", help="the critic: a 'fakeseg train' run folder")
    parser.add_argument("images", nargs="+", metavar="IMAGES",
                        help="a paired dataset folder, or synthetic images / folders / globs")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder (learned mode trains into DIR/refiner)")
    parser.add_argument("--enhanced", metavar="DIR",
                        help="blend mode: your enhanced frames, named like the inputs "
                             "(default: none, learned mode)")
    parser.add_argument("--judge", metavar="RUN2",
                        help="independent critic: a FakeSegment run with another backbone or "
                             "seed on the same pairs; the training critic itself is refused "
                             "(default: none, no critic figure in the headline)")
    parser.add_argument("--real", metavar="DIR",
                        help="real photos for the feature statistics and the FD (default: "
                             "none, the real partners of a paired dataset)")
    parser.add_argument("--split", default="test", choices=("test", "val", "train", "all"),
                        help="with a paired dataset: which part of the critic's split to "
                             "enhance and verify (default: test)")
    add_config_options(parser, "EnhanceConfig")
    parser.add_argument("--steps", type=int, metavar="N",
                        help=f"refiner optimiser steps (default: {defaults.steps}, or the "
                             "--config file's value)")
    parser.add_argument("--oracle-backbone", default=DEFAULT_ORACLE_BACKBONE, metavar="NAME",
                        help="pair-oracle feature backbone, not the critic's; auto: the other "
                             "installed family, efficientnet_lite0 or ssdlite_mobilenet_v2 "
                             "(default: auto)")
    parser.add_argument("--fd-features", default=DEFAULT_FD_FEATURES, metavar="NAME",
                        help="pooled feature space of the Fréchet distance (see 'fakeseg fid'); "
                             "auto: the family the critic does not use (default: auto)")
    parser.add_argument("--device", default="auto", metavar="DEVICE",
                        help="auto | cpu | cuda; auto uses the config's device")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted refiner run from DIR/refiner/last")
    parser.set_defaults(handler=_enhance)


def _enhance(args: argparse.Namespace) -> int:
    from fakeseg.config import EnhanceConfig, build_config
    from fakeseg.enhance.run import db, enhance, pct, save_enhancement

    base = Path(args.out) / "refiner" / "config.yaml"
    given = args.config or args.overrides or args.steps is not None
    config = build_config(EnhanceConfig, args.config, args.overrides, {"steps": args.steps},
                          base=base if args.resume and base.exists() else None) \
        if given or not args.resume else None
    result = enhance(args.run, args.images, args.out, config=config, judge=args.judge,
                     real=args.real, enhanced=args.enhanced, split=args.split,
                     resume=args.resume, oracle_backbone=args.oracle_backbone,
                     fd_features=args.fd_features, device=args.device)
    command = "fakeseg " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    path = save_enhancement(result, args.out, command=command)
    h = result.verification.headline
    print(f"independent critic fall: {pct(h.independent_critic_fall)}; pair oracle fall: "
          f"{pct(h.pair_oracle_fall)}; {h.fd_name or 'FD'}: {h.fd_before} → {h.fd_after}; "
          f"PSNR unflagged: {db(h.psnr_unflagged_db)}; changed: {pct(h.changed_share)}")
    print(f"training critic fall (optimistic): {pct(h.training_critic_fall_optimistic)}")
    print(f"results: {path}")
    if result.skipped:
        print(f"fakeseg: {len(result.skipped)} input(s) skipped, see {path}", file=sys.stderr)
        return 1
    return 0
