"""Quality benchmark: FakeSegment variants and the baselines on one split, one budget.

Uses ``../shared/data/epe_vistas`` when present, else builds the demo dataset. Leave-pairs-out
split (the run's seed), crops for training, composites of held-out pairs for scoring.

    python benchmarks/bench_quality.py --suite ablation   # targets, adversarial loss, backbones
    python benchmarks/bench_quality.py --suite baselines  # FakeSegment vs every baseline
    python benchmarks/bench_quality.py --suite all        # both, in one table
    python benchmarks/bench_quality.py --suite all --steps 2000 --tag gpu2000  # a bigger budget

Writes ``benchmarks/results/<suite>_<dataset>[_<tag>]/metrics.{json,md}`` plus curves. An
interrupted run resumes from its last epoch when the same command is given again.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from fakeseg.config import TrainConfig
from fakeseg.evaluation.evaluate import save_evaluation
from fakeseg.workflows.benchmark import DEFAULT_METHODS, benchmark, method_config

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data" / "epe_vistas"


def dataset(choice: str, vistas: Path) -> tuple[str, Path]:
    if choice == "vistas" or (choice == "auto" and vistas.is_dir()):
        return "vistas", vistas
    from fakeseg.data.demo import build_demo_dataset

    root = HERE / "results" / "demo_data"
    build_demo_dataset(root, seed=0, progress=False)
    return "demo", root


def suites(base: TrainConfig) -> dict[str, list[tuple[str, TrainConfig]]]:
    fs = method_config(base, "fakesegment")
    found = {
        "ablation": [
            ("mask", fs),
            ("heatmap", dataclasses.replace(fs, target_mode="heatmap")),
            ("hybrid", dataclasses.replace(fs, target_mode="hybrid")),
            ("mask+adv0.1", dataclasses.replace(fs, adv_weight=0.1)),
            ("mask:random-backbone", dataclasses.replace(fs, backbone_weights="random")),
            ("mask:efficientnet_lite0", dataclasses.replace(fs, backbone="efficientnet_lite0")),
            ("mask:p_pure_real0.15", dataclasses.replace(fs, p_pure_real=0.15)),
            ("mask:work_stride8", dataclasses.replace(fs, work_stride=8)),
        ],
        "baselines": [(m, method_config(base, m)) for m in DEFAULT_METHODS],
    }
    ablation, baselines = found["ablation"], found["baselines"]
    found["all"] = ablation[:3] + baselines[1:] + ablation[3:]  # targets, baselines, the rest
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=("ablation", "baselines", "all"), default="baselines")
    parser.add_argument("--data", choices=("auto", "vistas", "demo"), default="auto")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop-size", type=int, default=128)
    parser.add_argument("--steps-per-epoch", type=int, default=50)
    parser.add_argument("--vistas", type=Path, default=SHARED, help="epe_vistas folder")
    parser.add_argument("--tag", help="suffix for the results folder")
    parser.add_argument("--only", help="comma-separated entry names to run")
    args = parser.parse_args()
    name, root = dataset(args.data, args.vistas)
    base = TrainConfig(steps=args.steps, steps_per_epoch=args.steps_per_epoch, early_stopping=0,
                       minutes=0.0, seed=args.seed, val_fraction=0.25, test_fraction=0.25,
                       batch_size=args.batch_size, crop_size=args.crop_size)
    entries = suites(base)[args.suite]
    if args.only:
        keep = {n.strip() for n in args.only.split(",")}
        names = [name for name, _ in entries]
        if keep - set(names):
            parser.error(f"unknown entries {sorted(keep - set(names))}; the suite has {names}")
        entries = [e for e in entries if e[0] in keep]
    out = HERE / "results" / "_".join([args.suite, name] + ([args.tag] if args.tag else []))
    result = benchmark(root, out, entries=entries, progress=True)
    print(save_evaluation(result.evaluation, out)["metrics_md"].read_text())


if __name__ == "__main__":
    main()
