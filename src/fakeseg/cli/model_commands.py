"""``fakeseg train``, ``predict``, ``export``, ``heatmap`` and ``demo``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fakeseg.config import TrainConfig


def train_default(name: str) -> Any:
    """TrainConfig's own value of field ``name``."""
    from fakeseg.config import TrainConfig

    return getattr(TrainConfig(), name)


def config_default(name: str) -> str:
    """Help text for a flag that overrides TrainConfig field ``name`` (None keeps the config's)."""
    return f"(default: {train_default(name)}, or the --config file's value)"


def add_config_options(parser: argparse.ArgumentParser, config: str = "TrainConfig") -> None:
    """--config and --set, shared by ``train``, ``benchmark`` (read by train_config_from_args)
    and ``enhance`` (``config="EnhanceConfig"``).

    ``--set`` takes one KEY=VALUE per flag and may repeat, so it can never swallow DATA.
    """
    parser.add_argument("--config", metavar="FILE.yaml",
                        help=f"YAML file of {config} options "
                             f"(default: none, {config}'s own values)")
    parser.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                        help=f"override one {config} option (YAML value); repeat the flag for "
                             "more, e.g. --set steps=200 --set lr=3e-4 (default: none)")


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from fakeseg.cli import DEVICE_HELP, add_mask_options, example

    train = subparsers.add_parser(
        "train", parents=[common], help="train FakeSegment (or a baseline) on pairs or masks",
        description="Paired mode: fakeseg train DATA trains S on composites of the training "
                    "pairs.\nMask mode (MediaEval Task B): fakeseg train --images DIR --masks "
                    "DIR trains on crops of the images with their masks as labels "
                    "(target_mode must be mask), e.g. fakeseg train --images taskb/images "
                    "--masks taskb/masks --out runs/b --set model=unet_rgb.\nCheckpoints every "
                    "epoch to RUN/last and the best validation F1 to RUN/best. Options come "
                    "from TrainConfig's defaults, then --config, then each --set, then the "
                    "flags.",
        epilog=example("fakeseg train data/pairs --out runs/a --set steps=2000 --set lr=3e-4"),
    )
    train.add_argument("data", nargs="?", metavar="DATA",
                       help="paired dataset folder (real/, synthetic/) (default: none, mask "
                            "mode with --images/--masks)")
    add_mask_options(train, what="for mask mode")
    train.add_argument("--missing-mask", choices=("error", "real"), default="error",
                       help="an image without a mask: 'error' names them and stops, 'real' "
                            "trains on it as all real (default: error)")
    train.add_argument("--out", required=True, metavar="RUN",
                       help="run folder to write (config, split, checkpoints, history)")
    add_config_options(train)
    train.add_argument("--backbone", metavar="NAME",
                       help="feature backbone, see 'fakeseg weights'; two side by side as "
                            "A+B (layers A:LAYER) " + config_default("backbone"))
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
    train.add_argument("--workers", type=int, metavar="N",
                       help="DataLoader worker processes per training process; -1: the cores "
                            "left (cores - 1, shared between --nproc processes) "
                            + config_default("workers"))
    train.add_argument("--nproc", type=int, metavar="N",
                       help="train in N processes with DistributedDataParallel, started "
                            "through torchrun on this machine (same as 'torchrun "
                            "--nproc_per_node=N -m fakeseg train ...') (default: 1, no DDP)")
    train.set_defaults(handler=_train)

    targets = subparsers.add_parser(
        "targets", parents=[common], help="compute a run's target maps |F(R) - F(S)| once",
        description="Stores the per-layer target maps of the run's training pairs as float16 "
                    "files in RUN/targets (memory-mapped by train) and fits their scales in "
                    "one streaming pass. Resumable: pairs already stored are skipped. 'train' "
                    "runs this itself when the maps are missing.",
        epilog=example("fakeseg targets data/pairs --out runs/a --set target_mode=hybrid"),
    )
    targets.add_argument("data", metavar="DATA", help="paired dataset folder (real/, synthetic/)")
    targets.add_argument("--out", required=True, metavar="RUN",
                         help="run folder (its config.yaml wins when it has one)")
    add_config_options(targets)
    targets.add_argument("--backbone", metavar="NAME",
                         help="feature backbone " + config_default("backbone"))
    targets.add_argument("--backbone-weights", metavar="WEIGHTS",
                         help="auto | imagenet | coco | random | PATH "
                              + config_default("backbone_weights"))
    targets.add_argument("--device", metavar="DEVICE",
                         help=f"{DEVICE_HELP} " + config_default("device"))
    targets.add_argument("--workers", type=int, metavar="N",
                         help="decoding worker processes; -1: cores - 1 "
                              + config_default("workers"))
    targets.add_argument("--resize", action="store_true",
                         help="resample real images whose size differs from their render")
    targets.set_defaults(handler=_targets)

    predict = subparsers.add_parser(
        "predict", parents=[common], help="heat maps and scores for images",
        description="Writes per image NAME_heat.npy (float32 probability), NAME_mask.png "
                    "(0/255 at the threshold) and NAME_overlay.jpg (map over the image, "
                    "flagged regions boxed, colour bar), plus results.jsonl / results.csv with "
                    "a score per image; --outputs adds NAME_heat.png (16-bit: probability × "
                    "65535) or leaves files out.\nA rerun into the same --out skips the images "
                    "already done. --shard i/n (or torchrun's RANK/WORLD_SIZE) predicts every "
                    "n-th image so that n processes share one --out; the last shard to finish "
                    "merges the tables, or run 'fakeseg predict --merge OUT'.",
        epilog=example("fakeseg predict runs/a renders/ --out heat --threshold 0.4"),
    )
    predict.add_argument("model", nargs="?", metavar="MODEL",
                         help="run folder, checkpoint folder or ONNX file from 'fakeseg export' "
                              "(not with --merge)")
    predict.add_argument("inputs", nargs="*", metavar="IMAGE",
                         help="image files, folders, globs or .txt lists of image paths (one "
                              "per line, relative to the list's folder; # comments)")
    predict.add_argument("--out", metavar="DIR",
                         help="output folder (default: none; required unless --merge)")
    predict.add_argument("--batch-size", type=int, default=4, metavar="N",
                         help="images per forward pass")
    predict.add_argument("--threshold", type=float, metavar="P",
                         help="probability that flags a pixel, in [0, 1] (default: the "
                              "threshold chosen on the model's validation pairs)")
    predict.add_argument("--flip-tta", action="store_true",
                         help="flip test-time augmentation: average each map with its mirror "
                              "image's (twice the time; on vistas CV +0.008 Dice, +0.012 IoU)")
    predict.add_argument("--smooth-sigma", type=float, metavar="S",
                         help="Gaussian σ in pixels on each map, 0 for the raw maps (default: "
                              "the model's own, its smooth_sigma; its threshold was chosen "
                              "there)")
    predict.add_argument("--device", default="auto", metavar="DEVICE", help=DEVICE_HELP)
    predict.add_argument("--workers", type=int, metavar="N",
                         help="processes that decode images; 0 decodes in the main process "
                              "(default: 0 when the model runs on the CPU, whose threads use "
                              "every core; else the CPU cores less one)")
    predict.add_argument("--shard", metavar="I/N",
                         help="predict only shard I of N (every N-th image of the sorted "
                              "inputs, from the I-th) into the shared --out (default: none, "
                              "or RANK/WORLD_SIZE under torchrun)")
    predict.add_argument("--merge", metavar="OUT",
                         help="only merge the finished shards of OUT into one results table "
                              "(default: off)")
    predict.add_argument("--outputs", metavar="LIST",
                         help="files to write per image, comma-separated, from "
                              "heat_npy,heat_png,mask,overlay (default: heat_npy,mask,overlay)")
    predict.add_argument("--overlay-format", choices=("jpg", "png"), default="jpg",
                         help="the overlay as JPEG (quality 90; about 10x faster to encode "
                              "than PNG at full HD) or lossless PNG (default: jpg)")
    predict.add_argument("--backend", choices=("torch", "onnx"), default=None,
                         help="torch, or onnx (ONNX Runtime, CPU; needs fakeseg[onnx]; uses "
                              "the run's exported model.onnx, else exports in memory) "
                              "(default: onnx for an ONNX file, else torch)")
    predict.set_defaults(handler=_predict)

    export = subparsers.add_parser(
        "export", parents=[common], help="write a trained model as an ONNX graph",
        description="Exports the run's best checkpoint to ONNX (dynamic batch and size, the "
                    "checkpoint's threshold and config inside), checks it against PyTorch on a "
                    "random image, and writes it atomically. 'fakeseg predict FILE.onnx' or "
                    "'--backend onnx' run it in ONNX Runtime (pip install 'fakeseg[onnx]').",
        epilog=example("fakeseg export runs/a --onnx runs/a/model.onnx"),
    )
    export.add_argument("model", metavar="RUN", help="run folder or checkpoint folder")
    export.add_argument("--onnx", metavar="FILE.onnx", default=None,
                        help="where to write the graph (default: model.onnx in the checkpoint "
                             "folder, where '--backend onnx' finds it)")
    export.set_defaults(handler=_export)

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
    heat.add_argument("--backbone", default=train_default("backbone"), metavar="NAME",
                      help="feature backbone, see 'fakeseg weights' (default: train's, "
                           "%(default)s)")
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
             for name in ("backbone", "backbone_weights", "steps", "minutes", "seed", "device",
                          "workers")}
    if getattr(args, "resize", False):
        flags["allow_resize"] = True
    saved = Path(args.out) / "config.yaml" if getattr(args, "resume", False) else None
    base = saved if saved is not None and saved.is_file() else None  # resume: only what is given
    return train_config(args.config, args.overrides, flags, known_names(), base=base)


def _train(args: argparse.Namespace) -> int:
    from fakeseg.errors import FakesegError
    from fakeseg.training.segmentation import train

    if args.nproc is not None and args.nproc > 1:
        from fakeseg.training.distributed import launch

        return launch(args.nproc, without_nproc(args.argv))
    if (args.data is None) == (args.images is None):
        raise FakesegError("give either a paired dataset folder, or --images and --masks")
    config = train_config_from_args(args)
    if args.data is not None:
        result = train(args.data, args.out, config, resume=args.resume, progress=True)
    elif args.masks is None:
        raise FakesegError("--images needs --masks (binary ground-truth masks, same stems)")
    else:
        from fakeseg.data.masked import MaskOptions
        from fakeseg.training.masked import train_masked

        options = MaskOptions(invert=args.invert_masks, resize=args.resize_masks,
                              missing=args.missing_mask)
        result = train_masked(args.images, args.masks, args.out, config, options=options,
                              resume=args.resume, progress=True)
    from fakeseg.training.distributed import ranks_from_environment

    if not ranks_from_environment().main:  # under torchrun, rank 0 alone reports
        return 0
    val = result.best_val
    print(f"best checkpoint: {result.best_dir}")
    print(f"validation: F1 {val.get('f1_best', float('nan')):.3f} at threshold "
          f"{result.threshold:.2f}, Dice@0.5 {val.get('dice@0.5', float('nan')):.3f}")
    return 0


def without_nproc(argv: list[str]) -> list[str]:
    """The command line less its ``--nproc N`` (each torchrun process runs the rest)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            kept.append(arg)
    return kept


def _targets(args: argparse.Namespace) -> int:
    from fakeseg.training.segmentation import compute_targets

    result = compute_targets(args.data, args.out, train_config_from_args(args), progress=True)
    scales = ", ".join(f"{name} {value:.4g}" for name, value in result.scales.items())
    print(f"target maps of {result.n_pairs} training pairs in {result.root} "
          f"({result.n_computed} computed now, {result.seconds:.1f} s); scales: {scales}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from fakeseg.errors import FakesegError
    from fakeseg.inference.predict import Outputs, Shard, merge_predictions, predict

    if args.merge is not None:
        if args.model or args.inputs or args.out or args.shard:
            raise FakesegError("--merge OUT takes no MODEL, IMAGE, --out or --shard; "
                               "run it alone: fakeseg predict --merge OUT")
        summary = merge_predictions(args.merge)
    else:
        if not (args.model and args.inputs and args.out):
            raise FakesegError("predict needs MODEL, at least one IMAGE and --out, e.g. "
                               "fakeseg predict runs/a renders/ --out heat")
        summary = predict(args.model, args.inputs, args.out, batch_size=args.batch_size,
                          threshold=args.threshold, device=args.device, workers=args.workers,
                          backend=args.backend, flip_tta=args.flip_tta,
                          smooth_sigma=args.smooth_sigma,
                          outputs=Outputs.parse(args.outputs, args.overlay_format),
                          shard=Shard.parse(args.shard) if args.shard else None, progress=True)
    resumed = f" ({summary.n_resumed} done by an earlier run)" if summary.n_resumed else ""
    where = "" if summary.shard is None else f" for shard {summary.shard}"
    table = (f"scores: {summary.out / 'results.csv'}" if summary.shard is None or summary.merged
             else "merge when every shard is done: fakeseg predict --merge " + str(summary.out))
    print(f"{summary.n_done} heat maps in {summary.out}{where}{resumed} ({table})")
    if summary.skipped:
        print(f"fakeseg: {len(summary.skipped)} image(s) skipped, see above", file=sys.stderr)
        return 1
    return 0


def _export(args: argparse.Namespace) -> int:
    from fakeseg.inference.localizer import export_run

    result = export_run(args.model, args.onnx)
    print(f"wrote {result.path} ({result.size_mib:.1f} MiB, opset {result.opset}) in "
          f"{result.seconds:.1f} s; ONNX Runtime vs PyTorch: max logit gap "
          f"{result.max_abs_logit_diff:.2g}")
    return 0


def _heatmap(args: argparse.Namespace) -> int:
    from fakeseg.features.target import pair_target, save_pair_target

    layers = args.layers.split(",") if args.layers else None
    target = pair_target(args.real, args.synthetic, backbone=args.backbone,
                         weights=args.backbone_weights, layers=layers, allow_resize=args.resize)
    files = save_pair_target(target, args.out)
    print(f"target map ({target.weights_tag}): {files['heat_png']}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from fakeseg.workflows.demo import demo

    result = demo(args.out, steps=args.steps, seed=args.seed, progress=True)
    for line in result.lines():
        print(line)
    return 0
