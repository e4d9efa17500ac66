"""``fakeseg classify train|eval|predict`` and ``fakeseg experiment composition``."""

from __future__ import annotations

import argparse
import sys

from fakeseg.numbers import fmt

# register() stays free of torch imports (fakeseg --help must be instant): defaults that live
# in fakeseg.classify are applied there when an option is left out (None).


def _size(text: str) -> int | str:
    """--size of the composition experiment: pixels, or 'original'."""
    return text.strip().lower() if text.strip().lower() == "original" else int(text)


def _training_options(parser: argparse.ArgumentParser, *, size: int, epochs: int,
                      original_size: bool = False) -> None:
    from fakeseg.cli import add_device_option

    parser.add_argument("--backbone", default="mobilenet_v2", metavar="NAME",
                        help="mobilenet_v2 | efficientnet_lite0 (package-shipped weights) | "
                             "efficientnet_b0 | densenet121 (torchvision cache or file) | "
                             "tiny_cnn (random only)")
    parser.add_argument("--backbone-weights", default="auto", metavar="WEIGHTS",
                        help="auto | imagenet | random | PATH")
    parser.add_argument("--epochs", type=int, default=epochs, metavar="N",
                        help="passes over the training images")
    parser.add_argument("--batch-size", type=int, default=16, metavar="N",
                        help="images per optimiser step")
    parser.add_argument("--lr", type=float, default=1e-4, metavar="LR",
                        help="AdamW learning rate")
    if original_size:
        parser.add_argument("--size", type=_size, default=size, metavar="PX|original",
                            help="input side in pixels, or 'original': every image at its own "
                                 f"size, batched by size (the seed's Table 2) (default: {size})")
    else:
        parser.add_argument("--size", type=int, default=size, metavar="PX",
                            help=f"input side in pixels (default: {size})")
    parser.add_argument("--fit", choices=("crop", "resize", "original"), default="crop",
                        help="crop (random in training, central otherwise; keeps the "
                             "high-frequency traces), resize the whole image, or original: "
                             "neither, images batched by size (default: crop)")
    parser.add_argument("--augment", default=None, metavar="LIST",
                        help="comma list of flip, rotate, jitter, blur, jpeg, or none "
                             "(default: flip,rotate,jitter)")
    add_device_option(parser)


_PATTERN_HELP = ("regex on file stems whose first group names the generator, '' for none "
                 "(default: '^\\d+_(.+)_(?:real|fake)$', for N_GENERATOR_real.jpg)")


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from fakeseg.cli import add_device_option, example

    classify = subparsers.add_parser(
        "classify", parents=[common], help="image-level real-vs-synthetic detection",
        description="Train, evaluate and apply a classifier that scores whole images.",
        epilog=example("fakeseg classify train data/labelled --out runs/clf --epochs 5"))
    actions = classify.add_subparsers(dest="classify_command", metavar="ACTION",
                                      parser_class=type(classify))
    actions.required = True

    train = actions.add_parser(
        "train", parents=[common], help="train a real-vs-synthetic classifier",
        description="Fits a detection method (--method) on DATA (real/ + synthetic/ or fake/, "
                    "or a CSV of path,label[,source]); the fitted scorer goes to RUN/best. The "
                    "cnn methods fine-tune an ImageNet trunk with one logit and class-balanced "
                    "sampling, keeping the epoch with the best validation balanced accuracy.",
        epilog=example("fakeseg classify train data/labelled --out runs/clf --method probe"),
    )
    train.add_argument("data", metavar="DATA",
                       help="folder with real/ and synthetic/ (or fake/), or a CSV")
    train.add_argument("--out", required=True, metavar="RUN", help="run folder")
    train.add_argument("--method", default=None, metavar="NAME",
                       help="detection method: probe | probe_lite0 | probe_concat | spectral | "
                            "npr | cnn | cnn_blurjpeg | ensemble (default: the best of "
                            "'fakeseg benchmark-detection'); the options below apply to cnn*; "
                            "--backbone/--backbone-weights also set the probe's trunk")
    _training_options(train, size=224, epochs=5)
    train.add_argument("--seed", type=int, default=0, metavar="N",
                       help="seed of the split, sampling and init")
    train.add_argument("--val-fraction", type=float, default=0.2, metavar="F",
                       help="share of the images held out for validation")
    train.add_argument("--source-pattern", default=None, metavar="REGEX", help=_PATTERN_HELP)
    train.add_argument("--threads", type=int, default=None, metavar="N",
                       help="torch CPU threads (default: torch's choice)")
    train.add_argument("--resume", action="store_true", help="continue RUN from RUN/last")
    train.set_defaults(handler=_train)

    evaluate = actions.add_parser(
        "eval", parents=[common], help="detection metrics on labelled images",
        description="Accuracy, precision, recall, F1, ROC AUC, AP, balanced accuracy and EER, "
                    "overall and per source; writes metrics.json, metrics.md and "
                    "predictions.csv. With --scorer heatmap the score is the flagged-pixel "
                    "fraction of a FakeSegment heat map (give its run as RUN or --model).",
        epilog=example("fakeseg classify eval runs/clf data/test --out runs/clf/eval"),
    )
    evaluate.add_argument("run", metavar="RUN",
                          help="the scorer's run folder (a classifier run, or a FakeSegment "
                               "run with --scorer heatmap); leave it out when --model gives it")
    evaluate.add_argument("data", nargs="?", metavar="DATA",
                          help="labelled data: real/ + synthetic/ (or fake/), or a CSV")
    evaluate.add_argument("--out", required=True, metavar="DIR", help="output folder")
    evaluate.add_argument("--scorer", choices=("model", "heatmap"), default="model",
                          help="the classifier's probability, or a FakeSegment heat map's "
                               "flagged-pixel fraction")
    evaluate.add_argument("--model", metavar="RUN",
                          help="the run folder, instead of the first positional (default: none)")
    evaluate.add_argument("--threshold", type=float, default=None, metavar="T",
                          help="decision threshold (default: 0.5; heatmap: 0.05 of pixels)")
    evaluate.add_argument("--source-pattern", default=None, metavar="REGEX", help=_PATTERN_HELP)
    evaluate.add_argument("--batch-size", type=int, default=16, metavar="N",
                          help="images per forward pass")
    add_device_option(evaluate)
    evaluate.set_defaults(handler=_eval)

    predict = actions.add_parser(
        "predict", parents=[common], help="probability synthetic per image",
        description="Writes OUT/predictions.csv with image, probability_synthetic.",
        epilog=example("fakeseg classify predict runs/clf renders/ --out runs/clf/predict"),
    )
    predict.add_argument("run", metavar="RUN", help="classifier run folder")
    predict.add_argument("images", nargs="+", metavar="IMAGE",
                         help="image files, folders or globs")
    predict.add_argument("--out", required=True, metavar="DIR", help="output folder")
    predict.add_argument("--batch-size", type=int, default=16, metavar="N",
                         help="images per forward pass")
    add_device_option(predict)
    predict.set_defaults(handler=_predict)

    experiment = subparsers.add_parser(
        "experiment", parents=[common], help="experiments from the seed papers",
        description="Reproduces experiments of the papers fakeseg builds on.",
        epilog=example("fakeseg experiment composition --a-real cats/real --a-synthetic "
                       "cats/synthetic --b-real dogs/real --b-synthetic dogs/synthetic "
                       "--out runs/composition"))
    kinds = experiment.add_subparsers(dest="experiment_command", metavar="EXPERIMENT",
                                      parser_class=type(experiment))
    kinds.required = True
    comp = kinds.add_parser(
        "composition", parents=[common],
        help="train on real / synthetic / mixed class compositions, test on real",
        description="Wimmer et al.'s Table 2: a class-A-vs-class-B classifier trained on "
                    "real/real, synthetic/real and synthetic/synthetic images, tested on "
                    "held-out real images of both classes over several seeds; with "
                    "--defingerprint msa|fpa also Table 3 (the compositions rerun after "
                    "fingerprint removal); writes results.md (mean ± std per-class and "
                    "balanced accuracy) and results.json.",
        epilog=example("fakeseg experiment composition --a-real cats/real --a-synthetic "
                       "cats/synthetic --b-real dogs/real --b-synthetic dogs/synthetic "
                       "--names cat,dog --out runs/composition --defingerprint msa"),
    )
    comp.add_argument("--a-real", required=True, metavar="DIR", help="real images of class A")
    comp.add_argument("--a-synthetic", required=True, metavar="DIR",
                      help="synthetic images of class A")
    comp.add_argument("--b-real", required=True, metavar="DIR", help="real images of class B")
    comp.add_argument("--b-synthetic", required=True, metavar="DIR",
                      help="synthetic images of class B")
    comp.add_argument("--out", required=True, metavar="DIR", help="output folder")
    comp.add_argument("--seeds", type=int, default=5, metavar="N",
                      help="runs per composition, as mean ± std (default: 5, as the seed)")
    comp.add_argument("--defingerprint", default="", metavar="msa|fpa",
                      help="comma list of fingerprint-removal attacks (seed 003's Table 3): each "
                           "is fitted per class on its real training images vs its synthetic "
                           "images, applied to those, and every composition with synthetic "
                           "images is rerun on them (default: none)")
    comp.add_argument("--attack-size", type=int, default=None, metavar="PX",
                      help="side of the square centre crop the attacks work on (default: the "
                           "largest side all of a class's images share)")
    comp.add_argument("--names", default="A,B", metavar="A,B", help="the two class names")
    comp.add_argument("--compositions", default="real/real,synthetic/real,synthetic/synthetic",
                      metavar="LIST", help="comma list of X/Y (training source of A / of B)")
    comp.add_argument("--test-fraction", type=float, default=0.3, metavar="F",
                      help="share of each class's real images held out for testing")
    _training_options(comp, size=128, epochs=3, original_size=True)
    comp.set_defaults(handler=_composition)


def _augment(text: str | None) -> tuple[str, ...]:
    if text is None:
        from fakeseg.data.labeled import DEFAULT_AUGMENT

        return DEFAULT_AUGMENT
    return tuple(part.strip() for part in text.split(",") if part.strip()) or ("none",)


def _pattern(text: str | None) -> str | None:
    """None: the default pattern; an empty string: no sources from file names."""
    if text is None:
        from fakeseg.data.labeled import DEFAULT_SOURCE_PATTERN

        return DEFAULT_SOURCE_PATTERN
    return text or None


def _train(args: argparse.Namespace) -> int:
    from fakeseg.config import ClassifierConfig
    from fakeseg.detection.registry import DEFAULT_METHOD, METHODS, check_method, train_method
    from fakeseg.training.classification import train_classifier

    method = check_method(args.method or DEFAULT_METHOD)
    family, preset = METHODS[method]
    if family != "cnn":
        options = {"trunks": args.backbone, "weights": args.backbone_weights} \
            if family == "probe" and (args.backbone, args.backbone_weights) != \
            ("mobilenet_v2", "auto") else {}
        result = train_method(args.data, args.out, method, options=options, seed=args.seed,
                              val_fraction=args.val_fraction,
                              source_pattern=_pattern(args.source_pattern), progress=True)
        print(f"best checkpoint: {result.best} ({result.description}; "
              f"{result.n_train} train / {result.n_val} validation images)")
        if result.val:
            print(f"validation: balanced accuracy {fmt(result.val['balanced_accuracy'])}, "
                  f"ROC AUC {fmt(result.val['roc_auc'])}")
        return 0
    if args.augment is None and "augment" in preset:
        args.augment = preset["augment"]
    config = ClassifierConfig(
        backbone=args.backbone, weights=args.backbone_weights, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, size=args.size, fit=args.fit, seed=args.seed,
        augment=list(_augment(args.augment)), val_fraction=args.val_fraction,
        source_pattern=_pattern(args.source_pattern), device=args.device,
        threads=args.threads or 0)
    trained = train_classifier(args.data, args.out, config, resume=args.resume, progress=True)
    val = trained.best_val
    print(f"best checkpoint: {trained.best_dir} (step {trained.steps}, {config.epochs} "
          f"epochs, {config.backbone})")
    if val:
        print(f"validation: balanced accuracy {fmt(val['balanced_accuracy'])}, "
              f"ROC AUC {fmt(val.get('roc_auc'))}, F1 {fmt(val.get('f1'))}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from fakeseg.detection.evaluate import evaluate_detection, save_detection_evaluation
    from fakeseg.errors import FakesegError

    if args.model:
        if args.data is not None:
            raise FakesegError("with --model RUN give only DATA as a positional argument")
        run, data = args.model, args.run
    elif args.data is not None:
        run, data = args.run, args.data
    else:
        raise FakesegError("give RUN and DATA (or DATA with --model RUN)")
    result = evaluate_detection(run, data, scorer=args.scorer, threshold=args.threshold,
                                source_pattern=_pattern(args.source_pattern),
                                batch_size=args.batch_size, device=args.device, progress=True)
    save_detection_evaluation(result, args.out)
    overall = result.overall
    print(f"metrics: {args.out}/metrics.json, {args.out}/metrics.md")
    print(f"{result.n} images, {args.scorer} scorer: ROC AUC {fmt(overall['roc_auc'])}, "
          f"AP {fmt(overall['average_precision'])}, balanced accuracy "
          f"{fmt(overall['balanced_accuracy'])}, F1 {fmt(overall['f1'])} at "
          f"{result.score_name} ≥ {result.threshold:g}")
    for source, report in (result.per_source or {}).items():
        if source != "all":
            print(f"  {source}: n {report['n']}, ROC AUC {fmt(report['roc_auc'])}, "
                  f"balanced accuracy {fmt(report['balanced_accuracy'])}")
    if result.n_seen_in_training:
        print(f"fakeseg: warning: {result.n_seen_in_training} of these images were used in "
              "training or validation", file=sys.stderr)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from fakeseg.detection.evaluate import classify_predict

    result = classify_predict(args.run, args.images, args.out, batch_size=args.batch_size,
                              device=args.device, progress=True)
    print(f"{result.n} predictions in {result.csv} ({result.n_flagged} at or above "
          f"{result.threshold:g})")
    if result.skipped:
        print(f"fakeseg: {len(result.skipped)} image(s) skipped, see above", file=sys.stderr)
        return 1
    return 0


def _composition(args: argparse.Namespace) -> int:
    from fakeseg.errors import FakesegError
    from fakeseg.workflows.composition import experiment_composition

    names = tuple(part.strip() for part in args.names.split(","))
    if len(names) != 2 or not all(names) or names[0] == names[1]:
        raise FakesegError(f"--names needs two different names, e.g. AUTH,VOID; got "
                           f"'{args.names}'")
    result = experiment_composition(
        args.a_real, args.a_synthetic, args.b_real, args.b_synthetic, args.out,
        seeds=args.seeds, class_names=(names[0], names[1]),
        compositions=[c for c in args.compositions.split(",") if c.strip()],
        defingerprint_methods=args.defingerprint.split(","), attack_size=args.attack_size,
        test_fraction=args.test_fraction, backbone=args.backbone,
        weights=args.backbone_weights, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, size=args.size, fit=args.fit, augment=_augment(args.augment),
        device=args.device, progress=True)
    print(f"results: {result.results_md} (and {result.results_json.name})")
    for row in result.rows:
        removal = f" after {row.defingerprint.upper()}" if row.defingerprint else ""
        print(f"  {row.composition}{removal}: balanced accuracy "
              f"{row.balanced_accuracy.cell()}")
    return 0
