"""Predict throughput at 512²: the backbone alone (the floor) against the full predict path.

Same machine, one run, same random images: (1) backbone forward only; (2) FakeSegment
inference (backbone + S + upsampling); (3) the whole ``predict`` command path, which also reads
the images and writes a 16-bit heat map, ``.npy`` and an overlay per image. Reports images/s,
the ratio to the backbone rate, and the peak RSS. A model is built untrained (random S): the
speed does not depend on what S learned.

    python benchmarks/bench_predict_speed.py [--size 512] [--n 24] [--batch 4] [--work-stride 4]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fakeseg.config import TrainConfig, to_dict, versions
from fakeseg.inference.localizer import Localizer
from fakeseg.inference.predict import predict
from fakeseg.io import write_image, write_json
from fakeseg.models.registry import build_model

RESULTS = Path(__file__).resolve().parent / "results"


def rate(fn, n_images: int, repeats: int = 2) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return n_images / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--work-stride", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = TrainConfig(work_stride=args.work_stride)
    net = build_model(to_dict(config))
    model = Localizer(net, {"config": to_dict(config), "threshold": 0.5}, "cpu")
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.random((args.n, 3, args.size, args.size), dtype=np.float32))
    batches = list(images.split(args.batch))

    @torch.no_grad()
    def backbone_only() -> None:
        for batch in batches:
            net.extractor(batch)

    def inference() -> None:
        for batch in batches:
            model.predict_tensor(batch)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        for i, image in enumerate(images):
            write_image(folder / f"{i:03d}.png", image.permute(1, 2, 0).numpy())

        def full_path() -> None:
            predict(model, [str(folder)], Path(tmp) / "out", batch_size=args.batch,
                    progress=False)

        rates = {"backbone_only": rate(backbone_only, args.n),
                 "inference": rate(inference, args.n),
                 "predict_command": rate(full_path, args.n, repeats=1)}
    result = {
        "size": args.size, "n_images": args.n, "batch": args.batch,
        "work_stride": args.work_stride, "threads": torch.get_num_threads(),
        "images_per_s": {k: round(v, 3) for k, v in rates.items()},
        "ratio_to_backbone": {k: round(v / rates["backbone_only"], 3) for k, v in rates.items()},
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "backbone": config.backbone, "weights_tag": net.extractor.weights_tag,
        "versions": versions(),
    }
    name = f"predict_speed_{args.size}_s{args.work_stride}.json"
    write_json(RESULTS / name, result)
    print("| path | images/s | × backbone |\n|---|---|---|")
    for key, value in rates.items():
        print(f"| {key} | {value:.2f} | {value / rates['backbone_only']:.2f} |")
    print(f"peak RSS {result['peak_rss_mib']} MiB; threads {result['threads']}; "
          f"written {RESULTS / name}")


if __name__ == "__main__":
    main()
