"""Throughput of ``compute_fingerprint`` next to the pure decode rate (its floor).

Uses the 356×356 JPEGs of ``../shared/data/cnndetection/{real,fake}`` when present, else
generates 2×60 seeded 356×356 JPEGs (quality 75) in a temporary folder, and times on the same
files: ``read_image`` alone (1 thread and the fingerprint's thread count) and
``compute_fingerprint(real, fake, size=256, crop="center")`` with FFT and DCT. One untimed
decode pass warms the page cache. Each case runs ``--repeats`` times; the rate uses the best
run (least disturbed by other processes on a shared machine), the median is shown beside it,
and CPU ms/image (process CPU time over all threads, best run) is the cost that contention on
a busy machine does not inflate much.

    .venv/bin/python benchmarks/bench_fingerprint.py [--repeats 5] [--workers N]

Prints a Markdown table and writes ``benchmarks/results/fingerprint_speed.json``.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from fakeseg.io import list_images, read_image, write_json
from fakeseg.spectral.fingerprint import compute_fingerprint, default_workers, map_ordered

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared/data/cnndetection"
RESULT = ROOT / "benchmarks/results/fingerprint_speed.json"
IMAGE_SIZE = 356
CROP = 256


def _generate(folder: Path, n: int = 60) -> tuple[list[Path], list[Path]]:
    rng = np.random.default_rng(0)
    sets: dict[str, list[Path]] = {"real": [], "fake": []}
    for name, paths in sets.items():
        (folder / name).mkdir(parents=True)
        for i in range(n):
            noise = ndimage.gaussian_filter(rng.standard_normal((IMAGE_SIZE, IMAGE_SIZE, 3)),
                                            (1.5, 1.5, 0))
            pixels = np.clip(128 + 40 * noise / noise.std(), 0, 255).astype(np.uint8)
            path = folder / name / f"{i:03d}_{name}.jpg"
            Image.fromarray(pixels).save(path, quality=75)
            paths.append(path)
    return sets["real"], sets["fake"]


def _time(fn: Callable[[], object], repeats: int) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU seconds (all threads) of each run."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def _decode_all(paths: list[Path], workers: int) -> None:
    for _path, result in map_ordered(read_image, paths, workers):
        if isinstance(result, Exception):
            raise result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=max(2, default_workers()),
                        help="thread count compared with 1 thread (default: the library "
                        "default, at least 2)")
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    with tempfile.TemporaryDirectory() as tmp:
        if (DATA / "real").is_dir() and (DATA / "fake").is_dir():
            real, fake = list_images(DATA / "real"), list_images(DATA / "fake")
            source = "../shared/data/cnndetection (356x356 JPEG q~75)"
        else:
            real, fake = _generate(Path(tmp))
            source = "generated: 2x60 seeded 356x356 JPEG q75 (cnndetection not found)"
        files = [*real, *fake]
        _decode_all(files, 1)  # warm the page cache, untimed

        cases: list[tuple[str, int, Callable[[], object]]] = [
            ("read_image only (floor)", 1, lambda: _decode_all(files, 1)),
            ("read_image only (floor)", args.workers, lambda: _decode_all(files, args.workers)),
        ]
        for transform in ("fft", "dct"):
            for workers in sorted({1, args.workers}):
                cases.append((
                    f"compute_fingerprint {transform}, center {CROP}", workers,
                    functools.partial(compute_fingerprint, real, fake, size=CROP,
                                      transform=transform, progress=False, workers=workers),
                ))
        rows: list[dict[str, Any]] = []
        for name, workers, fn in cases:
            times, cpu = _time(fn, args.repeats)
            median = statistics.median(times)
            rows.append({"case": name, "workers": workers, "images": len(files),
                         "best_s": min(times), "median_s": median, "times_s": times,
                         "images_per_s": len(files) / min(times),
                         "images_per_s_median": len(files) / median,
                         "cpu_ms_per_image": 1000 * min(cpu) / len(files)})

    floor = {row["workers"]: row["best_s"] for row in rows if "floor" in row["case"]}
    print(f"source: {source}; {len(files)} images; CPUs: {os.cpu_count()}; "
          f"load before run: {load}; best of {args.repeats}\n")
    print("| case | threads | images/s (best) | images/s (median) | CPU ms/image "
          "| × decode time |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        row["x_decode_time"] = row["best_s"] / floor[row["workers"]]
        print(f"| {row['case']} | {row['workers']} | {row['images_per_s']:.0f} | "
              f"{row['images_per_s_median']:.0f} | {row['cpu_ms_per_image']:.2f} | "
              f"{row['x_decode_time']:.2f} |")
    write_json(RESULT, {
        "benchmark": "compute_fingerprint throughput vs read_image decode floor",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": source,
        "image_size": IMAGE_SIZE,
        "crop": CROP,
        "repeats": args.repeats,
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "numpy": np.__version__, "cpus": os.cpu_count(),
                    "load_average_1min_before": load},
        "results": rows,
    })
    print(f"\nwrote {RESULT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
