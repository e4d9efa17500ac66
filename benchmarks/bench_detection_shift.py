"""Does a detector call *processed real* images synthetic? A proxy check for unseen domains.

Fits detection methods (``fakeseg.detection``) on the whole CNNDetection sample (all six
generators, 120 real + 120 fake), then scores the sample's own real images after one
processing step each — none of them synthetic — and its fake images after JPEG 50 and the
75 % downscale (still synthetic):

* ``jpeg50``: re-encoded as JPEG at quality 50;
* ``down075``: downscaled to 75 % (area interpolation), saved as PNG;
* ``up2``: downscaled to 50 % and upscaled back ×2 (bicubic), as a super-resolution stand-in
  (interpolation, not a learned generator, so it stays "real" here);
* ``png``: the unchanged pixels saved as PNG (a format change only).

Reported per method and variant: the share called synthetic at P ≥ 0.5 (a false-positive
rate: every image is real) and the mean P(synthetic), plus the same on the unprocessed real
and fake images (training data, for scale). The processed images go to a temporary folder that
is deleted afterwards; only numbers are written.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_detection_shift.py \
        [--methods probe,npr,ensemble] [--threads 1]

Writes ``benchmarks/results/detection_logo/shift.json`` and ``shift.md``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from fakeseg.config import versions
from fakeseg.data.labeled import load_labeled
from fakeseg.data.shortcuts import find_shortcuts
from fakeseg.detection import fit_method
from fakeseg.io import write_json, write_text

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared/data/cnndetection"
RESULTS = ROOT / "benchmarks/results/detection_logo"


def _variants(paths: list[Path], folder: Path, names: tuple[str, ...] = ("jpeg50", "down075",
              "up2", "png")) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {name: [] for name in names}
    for path in paths:
        image = Image.open(path).convert("RGB")
        width, height = image.size
        targets: dict[str, tuple[Image.Image, str, dict[str, Any]]] = {
            "jpeg50": (image, "jpg", {"quality": 50}),
            "down075": (image.resize((round(width * 0.75), round(height * 0.75)),
                                     Image.Resampling.BOX), "png", {}),
            "up2": (image.resize((width // 2, height // 2), Image.Resampling.BOX)
                    .resize((width // 2 * 2, height // 2 * 2), Image.Resampling.BICUBIC),
                    "png", {}),
            "png": (image, "png", {}),
        }
        for name in names:
            picture, ext, kwargs = targets[name]
            target = folder / name / f"{path.stem}.{ext}"
            target.parent.mkdir(parents=True, exist_ok=True)
            picture.save(target, **kwargs)
            out[name].append(target)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--methods", default="probe,npr,ensemble")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    items = load_labeled(args.data)
    for shortcut in find_shortcuts(items):  # a table of frame-readers is worse than none
        raise SystemExit(f"{shortcut.message(args.data)} (fakeseg data unframe {args.data} "
                         "--out OUT, then --data OUT)")
    real = [i.path for i in items if i.label == 0]
    fake = [i.path for i in items if i.label == 1]
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="fakeseg_shift_") as scratch:
        variants = {f"real {k}": v for k, v in _variants(real, Path(scratch) / "real").items()}
        variants |= {f"fake {k}": v for k, v in _variants(
            fake, Path(scratch) / "fake", ("jpeg50", "down075")).items()}
        fitted: dict[str, Any] = {}
        for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
            extra: dict[str, Any] = {"fitted": fitted} if method == "ensemble" else {}
            scorer = fitted[method] = fit_method(method, items, [], **extra)
            sets = {"real (training)": real, **{k: v for k, v in variants.items()
                                                 if k.startswith("real")},
                    "fake (training)": fake, **{k: v for k, v in variants.items()
                                                if k.startswith("fake")}}
            rows[method] = {}
            for name, paths in sets.items():
                scores = scorer.score(paths)
                rows[method][name] = {"flagged": float(np.mean(scores >= 0.5)),
                                      "mean_p": float(np.mean(scores)), "n": len(paths)}
                print(method, name, rows[method][name], flush=True)
    payload = {"what": "share of processed real images called synthetic (P >= 0.5) by methods "
                       "fitted on all six generators", "data": args.data, "rows": rows,
               "threads": args.threads, "versions": versions()}
    write_json(RESULTS / "shift.json", payload)
    names = list(next(iter(rows.values())))
    lines = ["# Processed real images: share called synthetic (mean P)", "",
             "Fitted on all 240 images of the CNNDetection sample. The real columns hold real "
             "images only (any share above 0 is a false alarm); the fake columns hold "
             "synthetic images only (the share is the recall). The processed images derive "
             "from training images, so this checks robustness to processing, not to new "
             "content. Reproduce: `PYTHONPATH=src python benchmarks/bench_detection_shift.py "
             f"--methods {args.methods}`.", "",
             "| method | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for method, cells in rows.items():
        lines.append(f"| {method} | " + " | ".join(
            f"{c['flagged']:.2f} ({c['mean_p']:.2f})" for c in cells.values()) + " |")
    write_text(RESULTS / "shift.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
