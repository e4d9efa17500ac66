"""``fakeseg train``, ``predict``, ``heatmap`` and ``demo``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fakeseg.config import TrainConfig


def config_default(name: str) -> str:
    """Help text for a flag that overrides TrainConfig field ``name`` (None keeps the config's)."""
    from fakeseg.config import TrainConfig

    return f"(default: {getattr(TrainConfig(), name)}, or the --config file's value)"


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """--config and --set, shared by ``train`` and ``benchmark`` (read by train_config_from_args).

    ``--set`` takes one KEY=VALUE per flag and may repeat, so it can never swallow DATA.
    """
    parser.add_argument("--config", metavar="FILE.yaml",
                        help="YAML file of TrainConfig options "
                             "(default: none, TrainConfig's own values)")
    parser.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                        help="override one TrainConfig option (YAML value); repeat the flag for "
                             "more, e.g. --set steps=200 --set lr=3e-4 (default: none)")


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from fakeseg.cli import DEVICE_HELP, example

    train = subparsers.add_parser(
        "train", parents=[common], help="train FakeSegment on a paired dataset",
        description="Trains S on composites of the training pairs; checkpoints every epoch "
                    "to RUN/last and the best validation F1 to RUN/best. Options come from "
                    "TrainConfig's defaults, then --config, then each --set, then the flags.",
        epilog=example("fakeseg train data/pairs --out runs/a --set steps=2000 --set lr=3e-4"),
    )
    train.add_argument("data", metavar="DATA", help="paired dataset folder (real/, synthetic/)")
    train.add_argument("--out", required=True, metavar="RUN",
                       help="run folder to write (config, split, checkpoints, history)")
    add_config_options(train)
    train.add_argument("--backbone", metavar="NAME",
                       help="feature backbone, see 'fakeseg weights' " + config_default("backbone"))
    train.add_argument("--backbone-weights", metavar="WEIGHTS",
                       help="auto | imagenet | coco | random | PATH: the backbone's weights "
                            + config_default("backbone_weights"))
    train.add_argument("--steps", type=int, metavar="N",
                       help="optimiser steps " + config_default("steps"))
    train.add_argument("--minutes", type=float, metavar="M",
                       help="wall-time budget: stop after the epoch that passes it, 0 = none "
                            + config_default("minutes"))
    train.add_argument("--seed", type=int, metavar="N",
                       help="seed of the split, composites and init " + config_default("seed"))
    train.add_argument("--device", metavar="DEVICE",
                       help=f"{DEVICE_HELP} " + config_default("device"))
    train.add_argument("--resize", action="store_true",
                       help="resample real images whose size differs from their render")
    train.add_argument("--resume", action="store_true",
                       help="continue an interrupted run from RUN/last")
    train.set_defaults(handler=_train)

    predict = subparsers.add_parser(
        "predict", parents=[common], help="heat maps and scores for images",
        description="Writes per image NAME_heat.png, NAME_heat.npy (float32 probability) and "
                    "NAME_overlay.png, plus results.jsonl / results.csv with a score per "
                    "image.\nNAME_heat.png is 16-bit: probability × 65535 (divide by 65535 to "
                    "get the probability back).",
        epilog=example("fakeseg predict runs/a renders/ --out heat --threshold 0.4"),
    )
    predict.add_argument("model", metavar="MODEL", help="run folder or checkpoint folder")
    predict.add_argument("inputs", nargs="+", metavar="IMAGE",
                         help="image files, folders or globs")
    predict.add_argument("--out", required=True, metavar="DIR", help="output folder")
    predict.add_argument("--batch-size", type=int, default=4, metavar="N",
                         help="images per forward pass")
    predict.add_argument("--threshold", type=float, metavar="P",
                         help="probability that flags a pixel, in [0, 1] (default: the "
                              "threshold chosen on the model's validation pairs)")
    predict.add_argument("--device", default="auto", metavar="DEVICE", help=DEVICE_HELP)
    predict.set_defaults(handler=_predict)

    heat = subparsers.add_parser(
        "heatmap", parents=[common], help="the raw |F(R) - F(S)| target map of one pair",
        description="Embeds both images with the same frozen backbone and writes the channel "
                    "mean of the absolute feature difference, fused over the tapped layers.",
        epilog=example("fakeseg heatmap --real real/01316.png --synthetic synthetic/01316.jpg "
                       "--out pair_01316"),
    )
    heat.add_argument("--real", required=True, metavar="IMAGE", help="the real photo")
    heat.add_argument("--synthetic", required=True, metavar="IMAGE",
                      help="its synthetic render (same scene and size)")
    heat.add_argument("--out", required=True, metavar="DIR", help="output folder")
    heat.add_argument("--backbone", default="ssdlite_mobilenet_v2", metavar="NAME",
                      help="feature backbone, see 'fakeseg weights'")
    heat.add_argument("--backbone-weights", default="auto", metavar="WEIGHTS",
                      help="auto | imagenet | coco | random | PATH: the backbone's weights")
    heat.add_argument("--layers", metavar="L1,L2",
                      help="comma-separated layer names (default: the backbone's taps)")
    heat.add_argument("--resize", action="store_true",
                      help="resample the real image when its size differs")
    heat.set_defaults(handler=_heatmap)

    demo = subparsers.add_parser(
        "demo", parents=[common], help="run the whole path on the built-in demo data",
        description="Builds the demo dataset, trains a small model, predicts on held-out "
                    "images, evaluates and writes a report.",
        epilog=example("fakeseg demo --out runs/demo --steps 100"),
    )
    demo.add_argument("--out", default="runs/demo", metavar="DIR",
                      help="output folder; its train/ is replaced")
    demo.add_argument("--steps", type=int, default=None, metavar="N",
                      help="training steps (default: 240)")
    demo.add_argument("--seed", type=int, default=0, metavar="N",
                      help="seed of the dataset, split and training")
    demo.set_defaults(handler=_demo)


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """``--config`` YAML, then ``--set`` overrides, then whichever option flags the command has."""
    from fakeseg.config import train_config
    from fakeseg.models.checkpoint import known_names

    flags = {name: getattr(args, name, None)
             for name in ("backbone", "backbone_weights", "steps", "minutes", "seed", "device")}
    if getattr(args, "resize", False):
        flags["allow_resize"] = True
    saved = Path(args.out) / "config.yaml" if getattr(args, "resume", False) else None
    base = saved if saved is not None and saved.is_file() else None  # resume: only what is given
    return train_config(args.config, args.overrides, flags, known_names(), base=base)


def _train(args: argparse.Namespace) -> int:
    from fakeseg.training.segmentation import train

    config = train_config_from_args(args)
    result = train(args.data, args.out, config, resume=args.resume,
                   progress=True)
    val = result.best_val
    print(f"best checkpoint: {result.best_dir}")
    print(f"validation: F1 {val.get('f1_best', float('nan')):.3f} at threshold "
          f"{result.threshold:.2f}, Dice@0.5 {val.get('dice@0.5', float('nan')):.3f}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from fakeseg.inference.predict import predict

    summary = predict(args.model, args.inputs, args.out, batch_size=args.batch_size,
                      threshold=args.threshold, device=args.device,
                      progress=True)
    resumed = f" ({summary.n_resumed} done by an earlier run)" if summary.n_resumed else ""
    print(f"{summary.n_done} heat maps in {summary.out}{resumed} "
          f"(scores: {summary.out / 'results.csv'})")
    if summary.failures:
        print(f"fakeseg: {len(summary.failures)} image(s) skipped, see above", file=sys.stderr)
        return 1
    return 0


def _heatmap(args: argparse.Namespace) -> int:
    from fakeseg.features.target import heatmap

    layers = args.layers.split(",") if args.layers else None
    summary = heatmap(args.real, args.synthetic, args.out, backbone=args.backbone,
                      weights=args.backbone_weights, layers=layers, allow_resize=args.resize)
    files = summary["files"]
    assert isinstance(files, dict)
    print(f"target map ({summary['weights_tag']}): {files['heat_png']}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from fakeseg.workflows.demo import demo

    result = demo(args.out, steps=args.steps, seed=args.seed, progress=True)
    for line in result.lines():
        print(line)
    return 0
