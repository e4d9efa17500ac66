"""``fakeseg predict``: heat maps, overlays and scores for many images, batched.

One unreadable image is reported and skipped; every finished image's files are already on
disk, and ``results.jsonl`` grows one line per image as it goes.
"""

from __future__ import annotations

import csv
import io as _io
import json
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from fakeseg.config import versions
from fakeseg.errors import FakesegError
from fakeseg.io import expand_inputs, read_image, write_image, write_json, write_npy, write_text
from fakeseg.models.fakesegment import FakeSegment, HeatMap
from fakeseg.progress import progress_bar, warn
from fakeseg.viz import overlay

SCORE_DOC = ("score = fraction of pixels whose probability of being unreal is >= threshold; "
             "max = highest pixel probability; topk_mean = mean of the top 1% of pixels")


@dataclass
class PredictSummary:
    out: Path
    n_done: int
    failures: list[str] = field(default_factory=list)
    rows: list[dict[str, object]] = field(default_factory=list)


def _unique_names(paths: list[Path]) -> list[str]:
    seen: dict[str, int] = {}
    names = []
    for path in paths:
        count = seen.get(path.stem, 0)
        seen[path.stem] = count + 1
        names.append(path.stem if count == 0 else f"{path.stem}__{count}")
    return names


def write_heatmap_files(out: Path, name: str, image: np.ndarray,
                        heat: np.ndarray) -> dict[str, str]:
    """``name_heat.png`` (16-bit), ``name_heat.npy`` and ``name_overlay.png``."""
    files = {
        "heat_png": write_image(out / f"{name}_heat.png",
                                (np.clip(heat, 0, 1) * 65535 + 0.5).astype(np.uint16),
                                compress_level=1),
        "heat_npy": write_npy(out / f"{name}_heat.npy", heat.astype(np.float32)),
        "overlay": write_image(out / f"{name}_overlay.png", overlay(image, heat),
                               compress_level=1),
    }
    return {key: str(path) for key, path in files.items()}


def predict(model: str | Path | FakeSegment, inputs: list[str] | list[Path], out: str | Path, *,
            batch_size: int = 4, threshold: float | None = None, device: str = "auto",
            progress: bool = True) -> PredictSummary:
    """Predict heat maps for files, folders or globs; write maps, overlays and score tables."""
    fakeseg_model = model if isinstance(model, FakeSegment) else FakeSegment.load(
        model, device=device)
    if threshold is not None:
        if not 0.0 <= threshold <= 1.0:
            raise FakesegError(f"--threshold {threshold} must be in [0, 1]")
        fakeseg_model.threshold = threshold
    paths = expand_inputs([str(p) for p in inputs])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = PredictSummary(out, 0)
    log_path = out / "results.jsonl"
    names = _unique_names(paths)
    pending: list[tuple[Path, str, np.ndarray]] = []
    writing: list[tuple[dict[str, object], Future[dict[str, str]]]] = []
    # files are encoded on a writer thread while the next batch runs through the model
    with open(log_path, "w") as log, progress_bar(total=len(paths), desc="predict",
                                          enabled=progress) as bar, \
            ThreadPoolExecutor(max_workers=1) as writer:
        def finish_writes() -> None:
            for row, future in writing:
                row.update(future.result())
                log.write(json.dumps(row) + "\n")
                log.flush()
                summary.rows.append(row)
                summary.n_done += 1
            bar.update(len(writing))
            writing.clear()

        def flush() -> None:
            batch = torch.stack([torch.from_numpy(a).permute(2, 0, 1) for _, _, a in pending])
            probs = fakeseg_model.predict_tensor(batch)
            finish_writes()
            for (path, name, array), prob in zip(pending, probs, strict=True):
                heat = HeatMap(prob[0].numpy(), fakeseg_model.threshold)
                row = {"image": str(path), "name": name, **heat.summary()}
                writing.append((row, writer.submit(write_heatmap_files, out, name, array,
                                                   heat.probability)))
            pending.clear()

        for path, name in zip(paths, names, strict=True):
            try:
                array = read_image(path)
            except FakesegError as exc:
                summary.failures.append(str(exc))
                warn(f"fakeseg: skipped: {exc}")
                bar.update()
                continue
            if pending and (len(pending) >= batch_size or pending[0][2].shape != array.shape):
                flush()
            pending.append((path, name, array))
        if pending:
            flush()
        finish_writes()
    _write_tables(out, summary, fakeseg_model)
    return summary


def _write_tables(out: Path, summary: PredictSummary, model: FakeSegment) -> None:
    columns = ["image", "name", "score", "max", "topk_mean", "threshold", "overlay"]
    buffer = _io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(summary.rows)
    write_text(out / "results.csv", buffer.getvalue())
    write_json(out / "predict.json", {
        "score_meaning": SCORE_DOC, "threshold": model.threshold,
        "model": {k: model.meta.get(k) for k in ("kind", "weights_tag", "layers", "step")},
        "model_config": model.meta.get("config"), "n_images": summary.n_done,
        "failures": summary.failures, "versions": versions(),
    })
