"""``fakeseg train``, ``predict``, ``heatmap`` and ``demo``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fakeseg.config import TrainConfig


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    train = subparsers.add_parser(
        "train", parents=[common], help="train FakeSegment on a paired dataset",
        description="Trains S on composites of the training pairs; checkpoints every epoch "
                    "to RUN/last and the best validation F1 to RUN/best.",
    )
    train.add_argument("data", help="paired dataset folder (real/, synthetic/)")
    train.add_argument("--out", required=True, help="run folder")
    train.add_argument("--config", help="YAML file of options (see fakeseg.config.TrainConfig)")
    train.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                       help="override options, e.g. --set steps=200 target_mode=heatmap")
    train.add_argument("--backbone", help="feature backbone (see 'fakeseg weights')")
    train.add_argument("--backbone-weights", help="auto | imagenet | coco | random | PATH")
    train.add_argument("--steps", type=int)
    train.add_argument("--seed", type=int)
    train.add_argument("--device", help="auto | cpu | cuda")
    train.add_argument("--resize", action="store_true", help="resample mis-sized real images")
    train.add_argument("--resume", action="store_true", help="continue from RUN/last")
    train.set_defaults(handler=_train)

    predict = subparsers.add_parser(
        "predict", parents=[common], help="heat maps and scores for images",
        description="Writes NAME_heat.png (16-bit), NAME_heat.npy, NAME_overlay.png per image, "
                    "plus results.jsonl / results.csv with a score per image.",
    )
    predict.add_argument("model", help="run folder or checkpoint folder")
    predict.add_argument("inputs", nargs="+", help="image files, folders or globs")
    predict.add_argument("--out", required=True, help="output folder")
    predict.add_argument("--batch-size", type=int, default=4)
    predict.add_argument("--threshold", type=float, help="override the validation threshold")
    predict.add_argument("--device", default="auto")
    predict.set_defaults(handler=_predict)

    heat = subparsers.add_parser(
        "heatmap", parents=[common], help="the raw |F(R) - F(S)| target map of one pair",
        description="Embeds both images with the same frozen backbone and writes the channel "
                    "mean of the absolute feature difference, fused over the tapped layers.",
    )
    heat.add_argument("--real", required=True)
    heat.add_argument("--synthetic", required=True)
    heat.add_argument("--out", required=True)
    heat.add_argument("--backbone", default="ssdlite_mobilenet_v2")
    heat.add_argument("--backbone-weights", default="auto")
    heat.add_argument("--layers", help="comma-separated layer names (default: the backbone's)")
    heat.add_argument("--resize", action="store_true")
    heat.set_defaults(handler=_heatmap)

    demo = subparsers.add_parser(
        "demo", parents=[common], help="run the whole path on the built-in demo data",
        description="Builds the demo dataset, trains a small model, predicts on held-out "
                    "images, evaluates and writes a report.",
    )
    demo.add_argument("--out", default="runs/demo")
    demo.add_argument("--steps", type=int, default=None)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(handler=_demo)


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """``--config`` YAML, then ``--set`` overrides, then whichever option flags the command has."""
    from fakeseg.config import train_config

    flags = {name: getattr(args, name, None)
             for name in ("backbone", "backbone_weights", "steps", "seed", "device")}
    if getattr(args, "resize", False):
        flags["allow_resize"] = True
    return train_config(args.config, args.overrides, flags)


def _train(args: argparse.Namespace) -> int:
    from fakeseg.training.loop import train

    config = train_config_from_args(args)
    result = train(args.data, args.out, config, resume=args.resume,
                   progress=True)
    val = result.best_val
    print(f"best checkpoint: {result.best_dir}")
    print(f"validation: F1 {val.get('f1_best', float('nan')):.3f} at threshold "
          f"{result.threshold:.2f}, Dice@0.5 {val.get('dice@0.5', float('nan')):.3f}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from fakeseg.predict import predict

    summary = predict(args.model, args.inputs, args.out, batch_size=args.batch_size,
                      threshold=args.threshold, device=args.device,
                      progress=True)
    print(f"{summary.n_done} heat maps in {summary.out} (scores: {summary.out / 'results.csv'})")
    if summary.failures:
        print(f"fakeseg: {len(summary.failures)} image(s) skipped, see above", file=sys.stderr)
        return 1
    return 0


def _heatmap(args: argparse.Namespace) -> int:
    from fakeseg.features.target import heatmap

    layers = args.layers.split(",") if args.layers else None
    summary = heatmap(args.real, args.synthetic, args.out, backbone=args.backbone,
                      weights=args.backbone_weights, layers=layers, allow_resize=args.resize)
    print(f"target map ({summary['weights_tag']}): {summary['files']['heat_png']}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from fakeseg.pipeline import demo

    result = demo(args.out, steps=args.steps, seed=args.seed, progress=True)
    for line in result.lines():
        print(line)
    return 0
