"""Where ``fakeseg predict``'s time goes per full-HD image: decode, model, and each output
file's drawing, encoding and atomic write, timed stage by stage in one thread.

Stages run one after another on the same images (no overlap, so each figure is that stage's
cost, not its share of a concurrent run). The model is a run folder (``--run``; e.g. the one
``bench_scale.py`` trains) or, without it, TrainConfig's default FakeSegment untrained. Encode
variants (zlib level 0/1/6, level 1 with the Z_RLE strategy, JPEG) are measured on the same
arrays, with their sizes, so that the chosen defaults can be checked. ``write_heatmap_files``
(what predict's writer thread runs per image, default outputs) is timed last, whole.

    python benchmarks/profile_predict_outputs.py IMAGES [--run RUN] [--images 10] --name NAME
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from fakeseg.config import TrainConfig, to_dict, versions
from fakeseg.inference.localizer import HeatMap, Localizer
from fakeseg.inference.predict import write_heatmap_files
from fakeseg.io import (
    atomic_path,
    list_images,
    pixels_to_float,
    read_pixels,
    to_uint8,
    write_json,
    write_npy,
    write_text,
)
from fakeseg.models.registry import build_model
from fakeseg.viz import annotated_overlay, overlay, top_regions

RESULTS = Path(__file__).resolve().parent / "results"


def encoded(array: np.ndarray, fmt: str = "PNG", **options: Any) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def saved(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def quantise(probability: np.ndarray) -> np.ndarray:
    return (np.clip(probability, 0, 1) * 65535 + 0.5).astype(np.uint16)


def mask_image(heat: HeatMap) -> np.ndarray:
    return heat.mask.astype(np.uint8) * 255


def blended(image: np.ndarray, probability: np.ndarray) -> np.ndarray:
    return to_uint8(overlay(image, probability))


PNG_VARIANTS: dict[str, dict[str, Any]] = {
    "level 0": {"compress_level": 0}, "level 1": {"compress_level": 1},
    "level 6": {"compress_level": 6},
    "level 1 Z_RLE": {"compress_level": 1, "compress_type": zlib.Z_RLE}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", help="a folder of images (full HD for the issue's figures)")
    parser.add_argument("--run", help="a trained run folder (default: untrained FakeSegment)")
    parser.add_argument("--images", type=int, default=10, dest="n",
                        help="how many images (default: 10)")
    parser.add_argument("--name", default="predict_outputs_profile",
                        help="result file stem under benchmarks/results (default: "
                             "predict_outputs_profile)")
    args = parser.parse_args()
    import scipy.ndimage  # noqa: F401  # imported once, outside the timings

    if args.run:
        model = Localizer.load(args.run, device="cpu")
    else:
        torch.manual_seed(0)
        model = Localizer(build_model(to_dict(TrainConfig())), {"threshold": 0.5}, "cpu")
    paths = list_images(args.images)[:args.n]
    times: dict[str, list[float]] = {}
    sizes: dict[str, list[int]] = {}

    def timed(stage: str, fn: Callable[..., Any], *fn_args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        result = fn(*fn_args, **kwargs)
        times.setdefault(stage, []).append(time.perf_counter() - started)
        return result

    def encode(stage: str, array: np.ndarray, fmt: str = "PNG", **options: Any) -> bytes:
        data: bytes = timed(stage, encoded, array, fmt, **options)
        sizes.setdefault(stage, []).append(len(data))
        return data

    load_start = os.getloadavg()
    images = []
    for path in paths:
        pixels = timed("decode: file -> uint8 (read_pixels)", read_pixels, path)
        images.append(timed("decode: uint8 -> float32", pixels_to_float, pixels))
    model.predict_tensor(torch.from_numpy(images[0]).permute(2, 0, 1)[None])  # warm-up
    probabilities: list[np.ndarray] = []
    for start in range(0, len(images), 4):
        batch = torch.stack([torch.from_numpy(a).permute(2, 0, 1)
                             for a in images[start:start + 4]])
        began = time.perf_counter()
        probabilities.extend(p[0].numpy() for p in model.predict_tensor(batch))
        per_image = (time.perf_counter() - began) / len(batch)
        times.setdefault("model (predict_tensor, batch 4, per image)", []).extend(
            [per_image] * len(batch))
    out = Path(tempfile.mkdtemp(prefix="profile_predict_"))
    for i, (image, probability) in enumerate(zip(images, probabilities, strict=True)):
        heat = HeatMap(probability, model.threshold)
        timed("summary (score, max, top 1 %)", heat.summary)
        quantised = timed("heat_png: quantise to uint16", quantise, probability)
        for variant, options in PNG_VARIANTS.items():
            encode(f"heat_png: encode {variant}", quantised, **options)
        timed("heat_png: atomic write", saved, out / f"{i}_heat.png",
              encoded(quantised, compress_level=1))
        timed("heat_npy: np.save, atomic", write_npy, out / f"{i}_heat.npy", probability)
        mask = timed("mask: to uint8 0/255", mask_image, heat)
        for variant in ("level 1", "level 1 Z_RLE"):
            encode(f"mask: encode {variant}", mask, **PNG_VARIANTS[variant])
        timed("overlay: blend (colorize, mix, to_uint8)", blended, image, probability)
        timed("overlay: top_regions", top_regions, probability, model.threshold)
        drawn = timed("overlay: annotated_overlay (blend + regions + boxes + bar)",
                      annotated_overlay, image, probability, model.threshold)
        for variant in ("level 1", "level 1 Z_RLE"):
            encode(f"overlay: encode PNG {variant}", drawn, **PNG_VARIANTS[variant])
        for quality in (90, 95):
            encode(f"overlay: encode JPEG quality {quality} 4:4:4", drawn, "JPEG",
                   quality=quality, subsampling=0)
        timed("overlay: atomic write (PNG level 1)", saved, out / f"{i}_overlay.png",
              encoded(drawn, compress_level=1))
        timed("write_heatmap_files (the writer's work per image, default outputs)",
              write_heatmap_files, out, f"w{i}", image, heat)
    load_end = os.getloadavg()
    rows = [{"stage": stage, "median_ms": round(1000 * statistics.median(values), 1),
             "mean_ms": round(1000 * statistics.mean(values), 1),
             "mean_mb": round(statistics.mean(sizes[stage]) / 1e6, 3) if stage in sizes else None}
            for stage, values in times.items()]
    command = "python benchmarks/profile_predict_outputs.py " + " ".join(sys.argv[1:])
    write_json(RESULTS / f"{args.name}.json", {
        "command": command, "images": [str(p) for p in paths],
        "size": f"{images[0].shape[1]}x{images[0].shape[0]}", "torch_threads":
        torch.get_num_threads(), "cpus": os.cpu_count(), "load_start": load_start,
        "load_end": load_end, "stages": rows, "versions": versions()})
    lines = [f"# predict per-image cost by stage ({images[0].shape[1]}x{images[0].shape[0]}, "
             f"{len(paths)} images)", "", f"`{command}`", "",
             f"{os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}; load average "
             f"(1, 5, 15 min) {tuple(round(x, 2) for x in load_start)} at start, "
             f"{tuple(round(x, 2) for x in load_end)} at end (a shared machine: absolute "
             "times move with the load, compare stages within one table).", "",
             "| stage | median ms | mean ms | size MB |", "|---|---|---|---|"]
    lines += [f"| {r['stage']} | {r['median_ms']} | {r['mean_ms']} | "
              f"{'' if r['mean_mb'] is None else r['mean_mb']} |" for r in rows]
    write_text(RESULTS / f"{args.name}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
