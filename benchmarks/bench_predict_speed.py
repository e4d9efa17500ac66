"""Predict speed at 512² on the CPU: today's path against the optimised torch path and ONNX
Runtime, batch 1 and 4, in one process, interleaved.

Settings (each timed on the same random images, every round running every setting once, so a
change in machine load hits all of them alike):

* ``before``: the path before issue 14 (one forward pass per batch, no_grad, NCHW, BatchNorm
  unfolded): exactly the old ``Localizer.predict_tensor`` for images up to the tile size;
* ``torch``: today's ``Localizer.predict_tensor`` without smoothing (an inference copy with
  BatchNorm folded, channels-last, inference mode): the network path, comparable to ``before``;
* ``torch+smooth``: the same with the default ``smooth_sigma`` (the ``predict`` default);
* ``onnx``: the ``predict`` default through ONNX Runtime (``fakeseg export``; smoothed), when
  it is installed.

Per setting: images/s (median and best round), CPU time and minor page faults per image
(``getrusage``: user + system time, so page-fault work shows), and the largest probability gap
to ``before`` (smoothed the same way for the smoothed paths). The model is an untrained
FakeSegment with the default config (the speed does not depend on what S learned). The load
average before and after is recorded: on a shared machine compare rows of one run, not runs.

    python benchmarks/bench_predict_speed.py [--size 512] [--n 8] [--rounds 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from fakeseg.config import TrainConfig, to_dict, versions
from fakeseg.features.backbones import fold_backbones_without_grad
from fakeseg.inference.backends import OnnxBackend, onnx_available, to_onnx
from fakeseg.inference.localizer import Localizer
from fakeseg.io import write_json, write_text
from fakeseg.models.base import smooth_probabilities
from fakeseg.models.registry import build_model

RESULTS = Path(__file__).resolve().parent / "results"
COMMAND = "python benchmarks/bench_predict_speed.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="image side (default: 512)")
    parser.add_argument("--n", type=int, default=8, help="images per round (default: 8)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (default: 5)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default: 2)")
    parser.add_argument("--tag", default="", help="suffix of the result files (default: none)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = to_dict(TrainConfig())
    net = build_model(config).eval()
    meta = {"kind": "segmenter", "config": config, "threshold": 0.5}
    model = Localizer(net, meta, "cpu")  # the predict default: smoothed
    plain = Localizer(net, {**meta, "config": {**config, "smooth_sigma": 0.0}}, "cpu")
    images = torch.rand(args.n, 3, args.size, args.size,
                        generator=torch.Generator().manual_seed(0))

    fold_backbones_without_grad(net, False)  # the backbone's own body, BatchNorm unfolded

    def before(batch: torch.Tensor) -> torch.Tensor:  # the pre-issue-14 predict_tensor
        with torch.no_grad():
            return torch.sigmoid(net.forward_any_size(batch)).float().cpu()

    paths: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "before": before, "torch": plain.predict_tensor, "torch+smooth": model.predict_tensor}
    export_seconds = None
    if onnx_available():
        started = time.perf_counter()
        exported = to_onnx(net, meta)
        export_seconds = time.perf_counter() - started
        onnx_model = Localizer(None, meta, "cpu",
                               backend=OnnxBackend(exported.model, exported.multiple, "bench"))
        paths["onnx"] = onnx_model.predict_tensor
    settings = [(name, batch) for name in paths for batch in (1, 4)]

    reference = torch.cat([before(part) for part in images.split(1)])
    smoothed = smooth_probabilities(reference, model.smooth_sigma)
    gaps = {}
    for name, batch in settings:  # warm-up (allocator, oneDNN primitives) and parity
        maps = torch.cat([paths[name](part) for part in images.split(batch)])
        wanted = reference if name in ("before", "torch") else smoothed
        gaps[(name, batch)] = float((maps - wanted).abs().max())

    load_before = os.getloadavg()
    timings: dict[tuple[str, int], list[tuple[float, float, float]]] = {s: [] for s in settings}
    for _ in range(args.rounds):
        for name, batch in settings:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            started = time.perf_counter()
            for part in images.split(batch):
                paths[name](part)
            wall = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_SELF)
            cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
            timings[(name, batch)].append((wall, cpu, after.ru_minflt - usage.ru_minflt))
    load_after = os.getloadavg()

    rows = []
    for name, batch in settings:
        walls, cpus, faults = zip(*timings[(name, batch)], strict=True)
        rows.append({
            "backend": "onnx" if name == "onnx" else "torch", "path": name, "batch": batch,
            "images_per_s_median": round(args.n / statistics.median(walls), 3),
            "images_per_s_best": round(args.n / min(walls), 3),
            "cpu_ms_per_image": round(1000 * statistics.median(cpus) / args.n, 1),
            "page_faults_per_image": round(statistics.median(faults) / args.n),
            "max_prob_gap_to_before": gaps[(name, batch)],
        })
    base = {r["batch"]: r["images_per_s_median"] for r in rows if r["path"] == "before"}
    for row in rows:
        row["speedup_vs_before_batch4"] = round(row["images_per_s_median"] / base[4], 2)
        row["speedup_vs_before_batch1"] = round(row["images_per_s_median"] / base[1], 2)
    result = {
        "command": f"{COMMAND} --size {args.size} --n {args.n} --rounds {args.rounds} "
                   f"--threads {args.threads}",
        "size": args.size, "n_images": args.n, "rounds": args.rounds,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(), "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "onnx_export_seconds": None if export_seconds is None else round(export_seconds, 1),
        "backbone": config["backbone"],
        "weights_tag": getattr(net.feature_extractor, "weights_tag", None),
        "config": config, "rows": rows, "versions": versions(),
    }
    if onnx_available():
        import onnxruntime

        result["versions"]["onnxruntime"] = onnxruntime.__version__
    name = f"predict_speed{args.tag}"
    write_json(RESULTS / f"{name}.json", result)
    table = markdown(result)
    write_text(RESULTS / f"{name}.md", table)
    print(table)


def markdown(result: dict) -> str:
    lines = [
        f"`{result['command']}` — {result['size']}², {result['threads']} threads, "
        f"{result['n_images']} images × {result['rounds']} interleaved rounds; load average "
        f"(1/5/15 min) {result['load_average_before']} before, {result['load_average_after']} "
        f"after, on {result['cpus']} CPUs.", "",
        "| backend | path | batch | images/s (median) | images/s (best) | CPU ms/image | "
        "page faults/image | × before b4 | × before b1 | max prob gap to before |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['backend']} | {r['path']} | {r['batch']} | {r['images_per_s_median']:.2f} | "
            f"{r['images_per_s_best']:.2f} | {r['cpu_ms_per_image']:.0f} | "
            f"{r['page_faults_per_image']} | {r['speedup_vs_before_batch4']:.2f} | "
            f"{r['speedup_vs_before_batch1']:.2f} | {r['max_prob_gap_to_before']:.1e} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
