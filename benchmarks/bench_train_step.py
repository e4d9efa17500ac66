"""Training step time on the CPU: the frozen backbone's folded copy against its plain body.

Without gradients a :class:`~fakeseg.features.backbones.FeatureExtractor` runs a copy of its
body with BatchNorm folded and channels-last (``FeatureExtractor.folded_body``); ``plain``
(``fold_without_grad = False``) runs the body itself, the path before that change. Each
setting runs the same FakeSegment training step (forward, BCE, backward, AdamW) on the same
random batch (8 crops of 128², as ``fakeseg train``), interleaved round by round in one
process, so that machine load hits every setting alike. Per setting: median and best ms per
step, and the time of the backbone alone.

    python benchmarks/bench_train_step.py [--rounds 5] [--steps 20] [--threads 2]
        [--backbones efficientnet_lite0,efficientnet_lite0+ssdlite_mobilenet_v2]

Writes ``benchmarks/results/train_step.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from fakeseg.config import TrainConfig, to_dict, versions
from fakeseg.features.backbones import fold_backbones_without_grad
from fakeseg.io import write_json, write_text
from fakeseg.models.fakesegment import FakeSegment
from fakeseg.models.registry import build_model

RESULTS = Path(__file__).resolve().parent / "results"
COMMAND = "python benchmarks/bench_train_step.py"
PATHS = ("plain", "folded")


def measure(backbone: str, batch: torch.Tensor, label: torch.Tensor, rounds: int,
            steps: int) -> list[dict[str, object]]:
    """Both paths' step and backbone times for one backbone, interleaved round by round."""
    torch.manual_seed(0)
    net = build_model(to_dict(TrainConfig(backbone=backbone)))
    assert isinstance(net, FakeSegment)
    net.train()
    optimizer = torch.optim.AdamW(net.trainable_parameters(), lr=TrainConfig.lr)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.binary_cross_entropy_with_logits(net(batch), label).backward()
        optimizer.step()

    def features() -> None:
        with torch.no_grad():
            net.extractor(batch)

    times: dict[tuple[str, str], list[float]] = {}
    for path in PATHS:  # warm-up: first calls allocate and build the folded copy
        fold_backbones_without_grad(net, path == "folded")
        timed(step, 3)
    for _ in range(rounds):
        for path in PATHS:
            fold_backbones_without_grad(net, path == "folded")
            times.setdefault((path, "step"), []).append(timed(step, steps))
            times.setdefault((path, "backbone"), []).append(timed(features, steps))
    base = statistics.median(times[("plain", "step")])
    return [{"backbone": backbone, "path": path,
             "step_ms_median": statistics.median(times[(path, "step")]),
             "step_ms_best": min(times[(path, "step")]),
             "backbone_ms_median": statistics.median(times[(path, "backbone")]),
             "speedup": base / statistics.median(times[(path, "step")])} for path in PATHS]


def timed(fn: Callable[[], object], steps: int) -> float:
    started = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - started) / steps * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default="efficientnet_lite0,"
                        "efficientnet_lite0+ssdlite_mobilenet_v2")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="steps per round and setting")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tag", default="", help="suffix of the result files")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = TrainConfig()
    batch = torch.rand(config.batch_size, 3, config.crop_size, config.crop_size,
                       generator=torch.Generator().manual_seed(0))
    label = (torch.rand(config.batch_size, 1, config.crop_size, config.crop_size,
                        generator=torch.Generator().manual_seed(1)) > 0.5).float()
    load_before = os.getloadavg()
    rows = [row for backbone in args.backbones.split(",")
            for row in measure(backbone, batch, label, args.rounds, args.steps)]
    load_after = os.getloadavg()
    cores = os.cpu_count()
    lines = [f"`{COMMAND} --rounds {args.rounds} --steps {args.steps} --threads {args.threads}`"
             f" — batch {config.batch_size} × {config.crop_size}², {args.threads} threads, "
             f"{args.rounds} interleaved rounds of {args.steps} steps; load average (1/5/15 "
             f"min) {[round(v, 2) for v in load_before]} before, "
             f"{[round(v, 2) for v in load_after]} after, on {cores} CPUs.", "",
             "| backbone | frozen backbone runs | ms/step (median) | ms/step (best) | "
             "backbone ms (median) | × plain |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['backbone']} | {r['path']} | {r['step_ms_median']:.1f} | "
                     f"{r['step_ms_best']:.1f} | {r['backbone_ms_median']:.1f} | "
                     f"{r['speedup']:.2f} |")
    name = f"train_step{args.tag}"
    write_json(RESULTS / f"{name}.json", {"rows": rows, "versions": versions(),
                                          "load_before": load_before, "load_after": load_after,
                                          "args": vars(args)})
    write_text(RESULTS / f"{name}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
