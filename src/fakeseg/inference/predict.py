"""``fakeseg predict``: heat maps, masks, overlays and scores for many images, batched.

Per image it writes ``NAME_heat.png`` (16-bit: probability × 65535), ``NAME_heat.npy``
(float32 probabilities), ``NAME_mask.png`` (0/255 at the model's threshold) and
``NAME_overlay.png`` (boxes round the flagged regions, a colour bar with the threshold).
NAME mirrors the image's path below the inputs' common folder, so names never collide.

The output folder is locked while a run writes to it, and a run is resumable: an image's row
is appended to ``results.jsonl`` only once all its files are on disk, so a rerun into the same
``--out`` skips the images that have a row and does the rest. ``results.csv`` and
``predict.json`` are written at the end from ``results.jsonl``; while a run is going on (or
after a kill), ``predict.json`` says ``"complete": false`` and there is no ``results.csv``.
All paths in the tables are relative to the output folder.

One unreadable, too small or non-finite image is named on stderr, counted and skipped.
"""

from __future__ import annotations

import csv
import hashlib
import io as _io
import itertools
import json
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fakeseg.config import versions
from fakeseg.errors import FakesegError
from fakeseg.faults import kill_point
from fakeseg.inference.localizer import MIN_SIDE, HeatMap, Localizer, same_shape_batches
from fakeseg.io import (
    check_output_dir,
    expand_inputs,
    folder_lock,
    read_image,
    write_image,
    write_json,
    write_npy,
    write_text,
)
from fakeseg.progress import progress_bar, warn
from fakeseg.viz import annotated_overlay

SCORE_DOC = ("score = fraction of pixels whose probability of being unreal is >= threshold; "
             "max = highest pixel probability; topk_mean = mean of the top 1% of pixels")
FILES_DOC = ("NAME_heat.png: 16-bit PNG, value = probability x 65535; NAME_heat.npy: float32 "
             "probabilities; NAME_mask.png: 0/255 at the threshold; NAME_overlay.png: heat map "
             "over the image, flagged regions boxed, colour bar with the threshold")
RESULTS_JSONL, RESULTS_CSV, PREDICT_JSON = "results.jsonl", "results.csv", "predict.json"
OUTPUT_KEYS = ("heat_png", "heat_npy", "mask", "overlay")
CSV_COLUMNS = ["image", "name", "score", "max", "topk_mean", "threshold", *OUTPUT_KEYS]


@dataclass
class PredictSummary:
    out: Path
    n_done: int
    n_resumed: int = 0
    failures: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


def output_names(paths: list[Path], taken: dict[Path, str] | None = None) -> dict[Path, str]:
    """A unique output name per input: its path below the inputs' common folder, no suffix.

    ``taken`` (input → name from an earlier run) is kept as it is; a name that would collide
    gets the file's extension appended (``x_jpg``), then a counter.
    """
    names = dict(taken or {})
    used = set(names.values())
    fresh = [p for p in paths if p not in names]
    if not fresh:
        return names
    root = Path(os.path.commonpath([str(p.parent) for p in paths]))
    for path in fresh:
        base = path.relative_to(root).with_suffix("").as_posix()
        with_suffix = f"{base}_{path.suffix.lstrip('.').lower()}"
        candidates = itertools.chain((base, with_suffix),
                                     (f"{with_suffix}_{n}" for n in itertools.count(2)))
        names[path] = next(c for c in candidates if c not in used)
        used.add(names[path])
    return names


def write_heatmap_files(out: Path, name: str, image: np.ndarray, heat: HeatMap
                        ) -> dict[str, str]:
    """The four files of one image; returns their paths relative to ``out``."""
    probability = heat.probability
    files = {
        "heat_png": write_image(out / f"{name}_heat.png",
                                (np.clip(probability, 0, 1) * 65535 + 0.5).astype(np.uint16),
                                compress_level=1),
        "heat_npy": write_npy(out / f"{name}_heat.npy", probability.astype(np.float32)),
        "mask": write_image(out / f"{name}_mask.png", heat.mask.astype(np.uint8) * 255,
                            compress_level=1),
        "overlay": write_image(out / f"{name}_overlay.png",
                               annotated_overlay(image, probability, heat.threshold),
                               compress_level=1),
    }
    return {key: path.relative_to(out).as_posix() for key, path in files.items()}


def _relative(path: Path, out: Path) -> str:
    return Path(os.path.relpath(path, out)).as_posix()


def _model_identity(model: Localizer) -> dict[str, Any]:
    """What must match for an earlier run's rows to be kept: the checkpoint and threshold."""
    meta = json.dumps(model.meta, sort_keys=True, default=str).encode()
    return {"checkpoint": hashlib.sha256(meta).hexdigest()[:16], "threshold": model.threshold}


def _previous_rows(out: Path, identity: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of an earlier run into ``out`` whose files are all there; rows that another model
    or threshold wrote (or whose model cannot be told) are refused, never mixed in."""
    log_path = out / RESULTS_JSONL
    if not log_path.exists():
        return []
    rows = []
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill: that image is done again
        if (isinstance(row, dict) and isinstance(row.get("image"), str)
                and isinstance(row.get("name"), str)
                and all((out / str(row.get(k, ""))).is_file() for k in OUTPUT_KEYS)):
            rows.append(row)
    if rows:
        before = _earlier_identity(out / PREDICT_JSON)
        if before != identity:
            changed = (sorted(k for k in identity if before.get(k) != identity[k])
                       if before is not None else ["unrecorded model"])
            raise FakesegError(f"{out}: holds predictions of another model or threshold "
                               f"({', '.join(changed)} differ); choose another --out")
    return rows


def _earlier_identity(info: Path) -> dict[str, Any] | None:
    try:
        recorded = json.loads(info.read_text()).get("model_identity")
    except (OSError, ValueError, UnicodeDecodeError, AttributeError):
        return None
    return recorded if isinstance(recorded, dict) else None


def predict(model: str | Path | Localizer, inputs: list[str] | list[Path], out: str | Path, *,
            batch_size: int = 4, threshold: float | None = None, device: str = "auto",
            backend: str | None = None, progress: bool = True) -> PredictSummary:
    """Predict heat maps for files, folders or globs; write maps, masks, overlays and tables.

    Resumes an interrupted run into the same ``out``; see the module docstring.
    """
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise FakesegError(f"--threshold {threshold} must be in [0, 1]")
    if batch_size < 1:
        raise FakesegError(f"--batch-size {batch_size} must be ≥ 1")
    out = check_output_dir(out).resolve()
    paths = _inputs_outside(expand_inputs([str(p) for p in inputs]), out)
    with folder_lock(out, "predict"):
        fakeseg_model = model if isinstance(model, Localizer) else Localizer.load(
            model, device=device, backend=backend)
        if threshold is not None:
            fakeseg_model.threshold = threshold
        return _predict_locked(fakeseg_model, paths, out, batch_size=batch_size,
                               progress=progress)


def _inputs_outside(paths: list[Path], out: Path) -> list[Path]:
    """Inputs minus anything inside the output folder; the output folder itself is refused."""
    kept = [p for p in paths if out not in p.parents]
    if paths and not kept:
        raise FakesegError(f"{out}: --out is the input folder; write the results elsewhere")
    return kept


def _predict_locked(model: Localizer, paths: list[Path], out: Path, *, batch_size: int,
                    progress: bool) -> PredictSummary:
    identity = _model_identity(model)
    previous = _previous_rows(out, identity)
    done = {(out / row["image"]).resolve(): row for row in previous}
    names = output_names(paths, {p: str(done[p]["name"]) for p in paths if p in done})
    summary = PredictSummary(out, 0, rows=[done[p] for p in paths if p in done])
    summary.n_resumed = len(summary.rows)
    todo = [p for p in paths if p not in done]
    (out / RESULTS_CSV).unlink(missing_ok=True)
    _write_info(out, summary, model, identity, complete=False)
    log_path = out / RESULTS_JSONL
    write_text(log_path, "".join(json.dumps(row) + "\n" for row in previous))
    writing: list[tuple[dict[str, Any], Future[dict[str, str]]]] = []
    bar = progress_bar(total=len(paths), initial=summary.n_resumed, desc="predict", unit="img",
                       enabled=progress)
    # files are encoded on a writer thread while the next batch runs through the model
    with open(log_path, "a") as log, bar, ThreadPoolExecutor(max_workers=1) as writer:
        def finish_writes() -> None:
            for row, future in writing:
                try:
                    row.update(future.result())
                except OSError as exc:
                    raise FakesegError(f"{out}: cannot write results ({exc.strerror or exc}); "
                                       "free disk space or choose another --out") from exc
                log.write(json.dumps(row) + "\n")
                log.flush()
                kill_point("predict_row")
                summary.rows.append(row)
                summary.n_done += 1
            bar.update(len(writing))
            writing.clear()

        def skip(path: Path, reason: str) -> None:
            message = f"{path}: {reason}" if not reason.startswith(str(path)) else reason
            summary.failures.append(message)
            warn(f"fakeseg: skipped: {message}")
            bar.update()

        def readable() -> Iterator[tuple[Path, np.ndarray]]:
            for path in todo:
                try:
                    array = read_image(path)
                except FakesegError as exc:
                    skip(path, str(exc))
                    continue
                if min(array.shape[:2]) < MIN_SIDE:
                    skip(path, f"image is {array.shape[1]}x{array.shape[0]}, smaller than "
                               f"{MIN_SIDE}x{MIN_SIDE}; the model cannot judge it (upscale it "
                               "or leave it out)")
                    continue
                yield path, array

        for group in same_shape_batches(readable(), batch_size, key=lambda item: item[1].shape):
            batch = torch.stack([torch.from_numpy(a).permute(2, 0, 1) for _, a in group])
            try:
                probs = model.predict_tensor(batch)
            except FakesegError as exc:  # non-finite output: no score for these images
                finish_writes()
                for path, _ in group:
                    skip(path, str(exc))
                continue
            finish_writes()
            for (path, array), prob in zip(group, probs, strict=True):
                heat = HeatMap(prob[0].numpy(), model.threshold)
                row = {"image": _relative(path, out), "name": names[path], **heat.summary()}
                writing.append((row, writer.submit(write_heatmap_files, out, names[path],
                                                   array, heat)))
        finish_writes()
    _write_tables(out, summary)
    _write_info(out, summary, model, identity, complete=True)
    return summary


def _write_tables(out: Path, summary: PredictSummary) -> None:
    buffer = _io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(summary.rows)
    write_text(out / RESULTS_CSV, buffer.getvalue())


def _write_info(out: Path, summary: PredictSummary, model: Localizer,
                identity: dict[str, Any], *, complete: bool) -> None:
    write_json(out / PREDICT_JSON, {
        "complete": complete,
        "score_meaning": SCORE_DOC, "files": FILES_DOC,
        "paths": "relative to this folder",
        "threshold": model.threshold, "model_identity": identity,
        "model": {k: model.meta.get(k) for k in ("kind", "weights_tag", "layers", "step")},
        "model_config": model.meta.get("config"),
        "n_images": len(summary.rows), "n_resumed": summary.n_resumed,
        "failures": summary.failures, "versions": versions(),
    })
