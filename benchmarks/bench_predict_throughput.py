"""Bulk predict throughput: ``fakeseg predict`` (files in, four files + a row out per image)
against the model-only rate on the same, already decoded images, for several decoding-worker
counts.

Images: N renders at W×H made by the demo simulator (``fakeseg.data.demo``: a bundled photo,
cropped and resized, with 2–4 artifact regions), written as PNG. The model is FakeSegment with
TrainConfig's defaults, untrained (speed does not depend on what S learned). Model-only rate:
``Localizer.predict_tensor`` over the decoded images in same-size batches (the best of two
passes after a warm-up). Predict rate: one run of :func:`fakeseg.inference.predict.predict`
per worker count into a fresh folder, wall time from start to finished tables; the ratio is
predict / model-only. The machine's load average is recorded: on a shared machine the figures
move with it.

    python benchmarks/bench_predict_throughput.py --n 100 --width 1024 --height 768 --workers 0,1
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fakeseg.config import TrainConfig, to_dict, versions
from fakeseg.data.demo import ARTIFACT_FAMILIES, apply_artifact, load_photos, random_regions
from fakeseg.inference.localizer import Localizer, same_shape_batches
from fakeseg.inference.predict import predict
from fakeseg.io import read_image, write_image, write_json, write_text
from fakeseg.models.registry import build_model

RESULTS = Path(__file__).resolve().parent / "results"


def make_renders(folder: Path, n: int, width: int, height: int, seed: int) -> list[Path]:
    """N demo-simulator renders of width × height, written as PNG."""
    photos = [image for _, _, image in load_photos(max(width, height))]
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        photo = photos[i % len(photos)].astype(np.float32) / 255.0
        top = (photo.shape[0] - height) // 2
        left = (photo.shape[1] - width) // 2
        render = np.ascontiguousarray(photo[top:top + height, left:left + width])
        for family_index, (_, alpha) in enumerate(random_regions(height, width, rng)):
            family = ARTIFACT_FAMILIES[(i + family_index) % len(ARTIFACT_FAMILIES)]
            render = apply_artifact(render, alpha, family, rng)
        paths.append(write_image(folder / f"render_{i:04d}.png", render))
    return paths


def model_only_rate(model: Localizer, images: list[torch.Tensor], batch: int) -> float:
    """Images/s of the network alone on decoded images (best of two passes, after warm-up)."""
    def one_pass() -> None:
        for group in same_shape_batches(images, batch, key=lambda t: tuple(t.shape)):
            model.predict_tensor(torch.stack(group))

    model.predict_tensor(images[0][None])
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        one_pass()
        best = min(best, time.perf_counter() - started)
    return len(images) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="images (default: 100)")
    parser.add_argument("--width", type=int, default=1024, help="(default: 1024)")
    parser.add_argument("--height", type=int, default=768, help="(default: 768)")
    parser.add_argument("--batch", type=int, default=4, help="batch size (default: 4)")
    parser.add_argument("--workers", default="0,1",
                        help="comma-separated decoding-worker counts (default: 0,1)")
    parser.add_argument("--seed", type=int, default=0, help="(default: 0)")
    parser.add_argument("--name", default=None,
                        help="results file stem (default: predict_throughput_WxH)")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    config = TrainConfig()
    net = build_model(to_dict(config))
    model = Localizer(net, {"config": to_dict(config), "threshold": 0.5}, "cpu")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "renders"
        paths = make_renders(folder, args.n, args.width, args.height, args.seed)
        decoded = [torch.from_numpy(read_image(p)).permute(2, 0, 1) for p in paths]
        model_rate = model_only_rate(model, decoded, args.batch)
        del decoded
        runs = []
        for workers in (int(w) for w in args.workers.split(",")):
            started = time.perf_counter()
            summary = predict(model, [str(folder)], Path(tmp) / f"out_w{workers}",
                              batch_size=args.batch, workers=workers, progress=False)
            seconds = time.perf_counter() - started
            assert summary.n_done == args.n and not summary.skipped
            runs.append({"workers": workers, "seconds": round(seconds, 2),
                         "images_per_s": round(args.n / seconds, 3),
                         "ratio_to_model_only": round(args.n / seconds / model_rate, 3)})
    result = {
        "command": "python benchmarks/bench_predict_throughput.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None),
        "n_images": args.n, "width": args.width, "height": args.height, "batch": args.batch,
        "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "load_average_1m_before_after": [round(load_before[0], 2),
                                         round(os.getloadavg()[0], 2)],
        "model_only_images_per_s": round(model_rate, 3), "predict": runs,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "children_peak_rss_mib_incl_shared_at_fork": round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "model": config.model, "backbone": config.backbone,
        "weights_tag": getattr(net.feature_extractor, "weights_tag", None),
        "versions": versions(),
    }
    stem = args.name or f"predict_throughput_{args.width}x{args.height}"
    write_json(RESULTS / f"{stem}.json", result)
    lines = [f"# Bulk predict throughput, {args.n} images at {args.width}×{args.height}", "",
             f"`{result['command']}`", "",
             f"CPU cores {result['cpu_cores']}, torch threads {result['torch_threads']}, "
             f"1-min load average before/after {result['load_average_1m_before_after']} "
             "(shared machine: other jobs ran at the same time).", "",
             "| path | workers | images/s | × model-only |", "|---|---|---|---|",
             f"| model only (decoded tensors) | – | {model_rate:.3f} | 1.00 |"]
    lines += [f"| fakeseg predict | {r['workers']} | {r['images_per_s']:.3f} | "
              f"{r['ratio_to_model_only']:.2f} |" for r in runs]
    children = result["children_peak_rss_mib_incl_shared_at_fork"]
    lines += ["", f"Peak RSS {result['peak_rss_mib']} MiB (main), {children} MiB (largest "
                  "worker, counting the pages it shares with the main process since the fork)."]
    write_text(RESULTS / f"{stem}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
