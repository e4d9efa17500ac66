"""``fakeseg predict``: heat maps, masks, overlays and scores for many images, batched.

Per image it writes, by default (``outputs``, see :class:`Outputs`), ``NAME_heat.npy``
(float32 probabilities: the map itself), ``NAME_mask.png`` (0/255 at the model's threshold) and
``NAME_overlay.jpg`` (the map over the image, boxes round the flagged regions, a colour bar with
the threshold); on request also ``NAME_heat.png`` (16-bit: probability × 65535) and the
overlay as a lossless PNG. NAME mirrors the image's path below the inputs' common folder, so
names never collide.

Inputs are files, folders, globs or ``.txt`` lists of paths (:func:`fakeseg.io.expand_inputs`),
always taken in sorted order. Images are decoded by a :class:`torch.utils.data.DataLoader`
(``workers`` processes; by default none on the CPU, see :func:`default_workers`), consecutive
images of one size run through the model together, and the files of one batch are written
on writer threads while the next batch is decoded (on a GPU, also while it runs).

The output folder is locked while a run writes to it, and a run is resumable: an image's row
is appended to ``results.jsonl`` only once all its files are on disk, so a rerun into the same
``--out`` skips the images that have a row and does the rest. ``results.csv`` and
``predict.json`` are written at the end from ``results.jsonl``; while a run is going on (or
after a kill), ``predict.json`` says ``"complete": false`` and there is no ``results.csv``.
All paths in the tables are relative to the output folder.

Sharding: with ``shard=Shard(i, n)`` (``--shard i/n``, or RANK / WORLD_SIZE under torchrun)
a process takes every n-th image of the sorted list from the i-th on and writes its rows to
``results.shard-i-of-n.jsonl`` (and ``predict.shard-i-of-n.json``), so n processes share one
folder and never write the same row or file. The shards of one folder hold it together (see
:func:`fakeseg.io.folder_lock`); :func:`merge_predictions` (``--merge``, or the last shard to
finish by itself) builds the one ``results.jsonl`` / ``results.csv``, refusing duplicate rows,
rows of another model and shards that were given other inputs.

One unreadable, missing, too small or non-finite image is named on stderr, counted and skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from fakeseg.config import versions
from fakeseg.errors import FakesegError, FolderInUseError, Skipped
from fakeseg.faults import kill_point
from fakeseg.inference.localizer import (
    MIN_SIDE,
    HeatMap,
    Localizer,
    model_smooth_sigma,
    same_shape_batches,
)
from fakeseg.io import (
    FULL_SCALE,
    atomic_path,
    check_output_dir,
    expand_inputs,
    folder_lock,
    get_max_pixels,
    read_pixels,
    set_max_pixels,
    write_csv,
    write_image,
    write_json,
    write_npy,
)
from fakeseg.progress import progress_bar, say, warn
from fakeseg.viz import annotated_overlay

SCORE_DOC = ("score = fraction of pixels whose probability of being unreal is >= threshold; "
             "max = highest pixel probability; topk_mean = mean of the top 1% of pixels")
RESULTS_JSONL, RESULTS_CSV, PREDICT_JSON = "results.jsonl", "results.csv", "predict.json"


@dataclass(frozen=True)
class OutputFile:
    """One file predict can write per image: ``NAME`` + ``suffix``, its path in the ``key``
    column of the tables."""

    key: str
    suffix: str
    meaning: str


OUTPUT_FILES = {file.key: file for file in (
    OutputFile("heat_npy", "_heat.npy", "float32 probabilities (the map, exact)"),
    OutputFile("heat_png", "_heat.png", "16-bit PNG, value = probability x 65535"),
    OutputFile("mask", "_mask.png", "8-bit PNG, 255 where the probability >= the threshold"),
    OutputFile("overlay", "_overlay", "the heat map over the image, the largest flagged "
                                      "regions boxed, a colour bar marked with the threshold"),
)}
OUTPUT_KEYS = tuple(OUTPUT_FILES)
DEFAULT_OUTPUTS = ("heat_npy", "mask", "overlay")
OVERLAY_FORMATS = ("jpg", "png")
#: PNG encoding of every PNG predict writes: zlib level 1 with the run-length strategy (lossless;
#: at 1920x1080 faster and smaller than level 1's default strategy, see
#: benchmarks/results/predict_outputs_profile_*.md)
PNG_OPTIONS = {"compress_level": 1, "compress_type": zlib.Z_RLE}
#: the JPEG overlay: quality 90 without chroma subsampling, so the boxes keep their colour
JPEG_OPTIONS = {"quality": 90, "subsampling": 0}


@dataclass(frozen=True)
class Outputs:
    """Which files predict writes per image (``keys``, in :data:`OUTPUT_KEYS` order) and the
    overlay's format (``jpg``: JPEG quality 90, about 10x faster to encode at full HD than
    PNG and 5x smaller; ``png``: lossless)."""

    keys: tuple[str, ...] = DEFAULT_OUTPUTS
    overlay_format: str = "jpg"

    def __post_init__(self) -> None:
        unknown = [k for k in self.keys if k not in OUTPUT_FILES]
        if unknown or not self.keys:
            raise FakesegError(f"--outputs {','.join(self.keys)!r}: give a comma-separated "
                               f"subset of {','.join(OUTPUT_KEYS)} (e.g. "
                               f"{','.join(DEFAULT_OUTPUTS)})")
        if self.overlay_format not in OVERLAY_FORMATS:
            raise FakesegError(f"--overlay-format {self.overlay_format!r}: use "
                               f"{' or '.join(OVERLAY_FORMATS)}")
        object.__setattr__(self, "keys", tuple(k for k in OUTPUT_KEYS if k in self.keys))

    @classmethod
    def parse(cls, keys: str | Sequence[str] | None = None,
              overlay_format: str = "jpg") -> Outputs:
        """``"heat_npy,mask"`` (or a sequence of keys; None: the default set)."""
        if keys is None:
            return cls(overlay_format=overlay_format)
        if isinstance(keys, str):
            keys = [k.strip() for k in keys.split(",") if k.strip()]
        return cls(tuple(keys), overlay_format)

    @classmethod
    def from_json(cls, value: Any) -> Outputs:
        """As :meth:`to_json` wrote it; a table written before outputs were recorded holds the
        four files earlier versions always wrote (overlay as PNG)."""
        if not isinstance(value, dict):
            return cls(OUTPUT_KEYS, "png")
        return cls(tuple(value.get("keys", ())), str(value.get("overlay_format", "jpg")))

    def to_json(self) -> dict[str, Any]:
        return {"keys": list(self.keys), "overlay_format": self.overlay_format}

    def suffix(self, key: str) -> str:
        file = OUTPUT_FILES[key]
        return f"{file.suffix}.{self.overlay_format}" if key == "overlay" else file.suffix

    def describe(self) -> dict[str, str]:
        """File name → meaning, for predict.json."""
        described = {}
        for key in self.keys:
            meaning = OUTPUT_FILES[key].meaning
            if key == "overlay":
                meaning += (" (JPEG, quality 90)" if self.overlay_format == "jpg"
                            else " (PNG, lossless)")
            described[f"NAME{self.suffix(key)}"] = meaning
        return described


CSV_COLUMNS = ["image", "name", "score", "max", "topk_mean", "threshold", *OUTPUT_KEYS]
_SHARD_INFO = re.compile(r"predict\.shard-(\d+)-of-(\d+)\.json")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count``: every ``count``-th of the sorted inputs from ``index``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise FakesegError(f"--shard {self.index}/{self.count}: the index must be in 0 … "
                               f"{self.count - 1} (shards are numbered from 0)")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"i/n"`` → Shard(i, n)."""
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match:
            raise FakesegError(f"--shard {text!r}: give it as i/n, e.g. 0/4 for the first of "
                               "four shards")
        return cls(int(match[1]), int(match[2]))

    @classmethod
    def from_env(cls) -> Shard | None:
        """The shard torchrun gives this process (RANK of WORLD_SIZE), or None outside it."""
        world = os.environ.get("WORLD_SIZE", "")
        if not world.isdigit() or int(world) <= 1:
            return None
        rank = os.environ.get("RANK", "")
        if not rank.isdigit():
            raise FakesegError(f"WORLD_SIZE is {world} but RANK is {rank!r}; start the shards "
                               "with torchrun, or give --shard i/n")
        return cls(int(rank), int(world))

    @property
    def name(self) -> str:
        return f"shard-{self.index}-of-{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def select(self, paths: list[Path]) -> list[Path]:
        return paths[self.index::self.count]


@dataclass
class PredictSummary:
    """What a predict (or merge) run did; ``results`` holds one JSON row per image."""

    out: Path
    n_done: int
    n_resumed: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    results: Path | None = None
    shard: Shard | None = None
    merged: bool = False  # a shard run that found every shard done and merged them
    outputs: Outputs = field(default_factory=Outputs)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The rows of ``results`` (read from disk: a folder of a million images is never held
        in memory)."""
        return [] if self.results is None else list(
            _complete_rows(self.out, self.results.name, self.outputs))


def default_workers(device: torch.device | str = "cuda") -> int:
    """Decoding processes. On the CPU, 0: torch's threads already use every core, so a decoding
    process only fights them; decoding in turn, in the main process between batches (while the
    writer threads write the last batch's files), was faster on 2 cores
    (benchmarks/results/scale/README.md). Otherwise the cores this process may use (divided
    among the processes that torchrun started on this machine), less one for the model."""
    if torch.device(device).type == "cpu":
        return 0
    return max(0, _usable_cores() - 1)


def _usable_cores() -> int:
    """The cores this process may use, divided among the processes torchrun started here."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(1, (cores or 1) // max(local, 1))


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


def write_heatmap_files(out: Path, name: str, image: np.ndarray, heat: HeatMap, *,
                        outputs: Outputs = Outputs(), temp_dir: Path | None = None
                        ) -> dict[str, str]:
    """The ``outputs`` files of one image; returns their paths relative to ``out``."""
    probability = heat.probability
    files = {}
    for key in outputs.keys:
        path = out / f"{name}{outputs.suffix(key)}"
        if key == "heat_npy":
            files[key] = write_npy(path, probability.astype(np.float32, copy=False),
                                   temp_dir=temp_dir)
        elif key == "heat_png":
            quantised = (np.clip(probability, 0, 1) * 65535 + 0.5).astype(np.uint16)
            files[key] = write_image(path, quantised, temp_dir=temp_dir, **PNG_OPTIONS)
        elif key == "mask":
            files[key] = write_image(path, heat.mask.astype(np.uint8) * 255, temp_dir=temp_dir,
                                     **PNG_OPTIONS)
        else:
            drawn = annotated_overlay(image, probability, heat.threshold)
            files[key] = write_image(path, drawn, temp_dir=temp_dir, **(
                JPEG_OPTIONS if outputs.overlay_format == "jpg" else PNG_OPTIONS))
    return {key: path.relative_to(out).as_posix() for key, path in files.items()}


# --- decoding in DataLoader workers --------------------------------------------------------

@dataclass(frozen=True)
class DecodedImage:
    """One input as a DataLoader worker hands it over: the image, or why it was skipped."""

    index: int
    #: (3, H, W) at the file's own depth: uint8, uint16, or float32 in [0, 1] (4x less to hand
    #: over from a worker than float32; :func:`pixels_to_unit` converts a batch)
    image: torch.Tensor | None
    problem: str = ""

    def pin_memory(self) -> DecodedImage:  # called by the DataLoader with pin_memory=True
        return self if self.image is None else replace(self, image=self.image.pin_memory())


class ImageFiles(Dataset[DecodedImage]):
    """Image files decoded one by one (in worker processes); a file that cannot be used comes
    back as a :class:`DecodedImage` with a ``problem``, so it never stops the loader."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self.max_pixels = get_max_pixels()  # workers may be spawned: they get it from here

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> DecodedImage:
        path = self.paths[index]
        try:
            array = read_pixels(path)
        except FakesegError as exc:
            return DecodedImage(index, None, str(exc))
        except MemoryError:
            return DecodedImage(index, None, f"{path}: too large to decode in memory; "
                                             "downscale it or use a machine with more RAM")
        if min(array.shape[:2]) < MIN_SIDE:
            return DecodedImage(index, None, (
                f"image is {array.shape[1]}x{array.shape[0]}, smaller than {MIN_SIDE}x{MIN_SIDE}; "
                "the model cannot judge it (upscale it or leave it out)"))
        # Pillow's arrays are read-only; torch wants a writable one (a 1-byte-per-sample copy)
        return DecodedImage(index, torch.from_numpy(np.require(array, requirements="W"))
                            .permute(2, 0, 1))

    def init_worker(self, worker_id: int) -> None:
        set_max_pixels(self.max_pixels)


def pixels_to_unit(pixels: torch.Tensor) -> torch.Tensor:
    """A batch of :class:`DecodedImage` pixels as float32 in [0, 1], equal bit for bit to
    :func:`fakeseg.io.pixels_to_float` (the same IEEE division, in torch's threads)."""
    scale = FULL_SCALE.get(str(pixels.dtype).removeprefix("torch."))
    return pixels.float() if scale is None else pixels.float().div_(scale)


def _as_is(item: DecodedImage) -> DecodedImage:
    return item


def image_loader(paths: list[Path], *, workers: int, pin_memory: bool = False
                 ) -> DataLoader[DecodedImage]:
    """Decoded images in input order, ``workers`` processes ahead of the model (0: inline)."""
    dataset = ImageFiles(paths)
    return DataLoader(dataset, batch_size=None, shuffle=False, num_workers=workers,
                      collate_fn=_as_is,  # type: ignore[arg-type]  # batch_size=None: one item
                      pin_memory=pin_memory,
                      worker_init_fn=dataset.init_worker if workers else None,
                      prefetch_factor=2 if workers else None)


# --- the tables of a folder ----------------------------------------------------------------

def _table_names(shard: Shard | None) -> tuple[str, str]:
    """(rows file, info file) of an unsharded run (the merged tables) or of one shard."""
    if shard is None:
        return RESULTS_JSONL, PREDICT_JSON
    return f"results.{shard.name}.jsonl", f"predict.{shard.name}.json"


def _complete_rows(out: Path, log_name: str, outputs: Outputs) -> Iterator[dict[str, Any]]:
    """Rows of ``out/log_name`` whose ``outputs`` files are all there; a line cut short by a
    kill, or a row whose files are missing (or were written in another set or format), is left
    out (that image is done again)."""
    log_path = out / log_name
    if not log_path.exists():
        return
    with open(log_path, errors="replace") as lines:
        for line in lines:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if (isinstance(row, dict) and isinstance(row.get("image"), str)
                    and isinstance(row.get("name"), str)
                    and all(isinstance(row.get(k), str) and row[k].endswith(outputs.suffix(k))
                            and (out / row[k]).is_file() for k in outputs.keys)):
                yield row


def _model_identity(model: Localizer) -> dict[str, Any]:
    """What must match for an earlier run's rows to be kept: the checkpoint, threshold, flip
    TTA and smoothing (the last two recorded only when not the model's own, so folders written
    before they existed still resume)."""
    meta = json.dumps(model.meta, sort_keys=True, default=str).encode()
    identity: dict[str, Any] = {"checkpoint": hashlib.sha256(meta).hexdigest()[:16],
                                "threshold": model.threshold}
    if model.flip_tta:
        identity["flip_tta"] = True
    if model.smooth_sigma != model_smooth_sigma(model.meta):
        identity["smooth_sigma"] = model.smooth_sigma
    return identity


def _read_info(path: Path) -> dict[str, Any] | None:
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return info if isinstance(info, dict) else None


def _check_identity(out: Path, info_name: str, identity: dict[str, Any]) -> None:
    """Rows that another model, threshold or flip TTA setting wrote (or whose model cannot be
    told) are refused, never mixed in."""
    before = (_read_info(out / info_name) or {}).get("model_identity")
    if before != identity:
        changed = (sorted(k for k in {*identity, *before} if before.get(k) != identity.get(k))
                   if isinstance(before, dict) else ["unrecorded model"])
        raise FakesegError(f"{out}: holds predictions of another model or threshold "
                           f"({', '.join(changed)} differ); choose another --out")


def _shard_infos(out: Path) -> dict[Shard, Path]:
    """The shard info files in ``out``, by shard."""
    found = {}
    for path in out.glob("predict.shard-*-of-*.json"):
        match = _SHARD_INFO.fullmatch(path.name)
        if match and int(match[1]) < int(match[2]):
            found[Shard(int(match[1]), int(match[2]))] = path
    return found


def _check_split(out: Path, shard: Shard | None) -> None:
    """One split per folder at a time: no unsharded run over unmerged shards, no mixed n."""
    counts = sorted({s.count for s in _shard_infos(out)})
    if shard is None and counts:
        raise FakesegError(f"{out}: holds the unmerged results of a {counts[0]}-way sharded run; "
                           f"finish its shards (--shard i/{counts[0]}) and run "
                           f"'fakeseg predict --merge {out}', or choose another --out")
    if shard is not None and set(counts) - {shard.count}:
        other = next(c for c in counts if c != shard.count)
        raise FakesegError(f"{out}: holds the unmerged results of a {other}-way sharded run; "
                           f"use --shard i/{other}, or merge them first "
                           f"('fakeseg predict --merge {out}')")


def _inputs_digest(paths: list[Path]) -> str:
    """The same for every shard given the same inputs."""
    return hashlib.sha256("\n".join(map(str, paths)).encode()).hexdigest()[:16]


# --- predict -------------------------------------------------------------------------------

def predict(model: str | Path | Localizer, inputs: list[str] | list[Path], out: str | Path, *,
            batch_size: int = 4, threshold: float | None = None, device: str = "auto",
            workers: int | None = None, shard: Shard | None = None,
            backend: str | None = None, outputs: Outputs | None = None,
            flip_tta: bool = False, smooth_sigma: float | None = None,
            progress: bool = True) -> PredictSummary:
    """Predict heat maps for files, folders, globs or lists of paths; write maps, masks,
    overlays and tables.

    ``outputs``: the files written per image (default :class:`Outputs`: heat .npy, mask and
    JPEG overlay).
    ``workers`` decoding processes (default :func:`default_workers`: 0 on the CPU, where
    decoding takes its turn in the main process; cores − 1 on a GPU).
    ``shard`` (default: from torchrun's RANK / WORLD_SIZE, else none) predicts one share of the
    inputs. ``backend``: "torch" or "onnx" (see :meth:`Localizer.load`). ``flip_tta``:
    flip test-time augmentation (:attr:`Localizer.flip_tta`; twice the model time).
    ``smooth_sigma`` replaces the model's own smoothing (:attr:`Localizer.smooth_sigma`; its
    threshold was chosen at its own, so a line says so). Resumes
    an interrupted run into the same ``out``; see the module docstring.
    """
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise FakesegError(f"--threshold {threshold} must be in [0, 1]")
    if batch_size < 1:
        raise FakesegError(f"--batch-size {batch_size} must be ≥ 1")
    if smooth_sigma is not None and not (math.isfinite(smooth_sigma) and smooth_sigma >= 0):
        raise FakesegError(f"--smooth-sigma {smooth_sigma} must be a number ≥ 0 (0: none)")
    if workers is not None and workers < 0:
        raise FakesegError(f"--workers {workers} must be ≥ 0 (0 decodes in the main process)")
    shard = shard if shard is not None else Shard.from_env()
    out = check_output_dir(out).resolve()
    paths = _inputs_outside(expand_inputs([str(p) for p in inputs]), out)
    with folder_lock(out, "predict", share=shard.name if shard else None) as temp_dir:
        _check_split(out, shard)
        fakeseg_model = model if isinstance(model, Localizer) else Localizer.load(
            model, device=_rank_device(device), backend=backend)
        if threshold is not None:
            fakeseg_model.threshold = threshold
        if flip_tta:
            fakeseg_model.flip_tta = True
        if smooth_sigma is not None and smooth_sigma != fakeseg_model.smooth_sigma:
            if progress:
                say(f"fakeseg: smoothing σ {smooth_sigma:g} instead of the model's "
                    f"{fakeseg_model.smooth_sigma:g}; its threshold "
                    f"{fakeseg_model.threshold:.2f} was chosen at {fakeseg_model.smooth_sigma:g}")
            fakeseg_model.smooth_sigma = smooth_sigma
        summary = _predict_locked(
            fakeseg_model, paths, out, temp_dir, shard=shard, batch_size=batch_size,
            workers=default_workers(fakeseg_model.device) if workers is None else workers,
            outputs=outputs or Outputs(), progress=progress)
    if shard is not None and _all_shards_complete(out, shard.count):
        with contextlib.suppress(FolderInUseError):  # another shard is finishing: it merges
            merged = merge_predictions(out)
            summary.results, summary.merged = merged.results, True
    return summary


def _rank_device(device: str) -> str:
    """Under torchrun, ``auto`` means this process's own GPU (LOCAL_RANK)."""
    local_rank = os.environ.get("LOCAL_RANK", "")
    if device == "auto" and local_rank.isdigit() and torch.cuda.is_available():
        return f"cuda:{int(local_rank) % torch.cuda.device_count()}"
    return device


def _inputs_outside(paths: list[Path], out: Path) -> list[Path]:
    """Inputs minus anything inside the output folder; the output folder itself is refused."""
    kept = [p for p in paths if out not in p.parents]
    if paths and not kept:
        raise FakesegError(f"{out}: --out is the input folder; write the results elsewhere")
    return kept


def _predict_locked(model: Localizer, paths: list[Path], out: Path, temp_dir: Path, *,
                    shard: Shard | None, batch_size: int, workers: int, outputs: Outputs,
                    progress: bool) -> PredictSummary:
    identity = _model_identity(model)
    log_name, info_name = _table_names(shard)
    earlier = _earlier_rows(out, shard, identity, outputs, temp_dir)
    mine = shard.select(paths) if shard is not None else paths
    names = output_names(paths, {p: earlier.names[p] for p in paths if p in earlier.names})
    todo = [p for p in mine if p not in earlier.done]
    summary = PredictSummary(out, 0, n_resumed=len(mine) - len(todo), results=out / log_name,
                             shard=shard, outputs=outputs)
    record = {**_model_record(model, identity), "inputs_digest": _inputs_digest(paths),
              "outputs": outputs.to_json(),
              "shard": None if shard is None else {"index": shard.index, "count": shard.count}}
    if shard is None:  # the merged table's csv stays while shards add to it
        (out / RESULTS_CSV).unlink(missing_ok=True)
    _write_info(out / info_name, record, summary, earlier.n_own, complete=False,
                temp_dir=temp_dir)
    n_rows = earlier.n_own
    writing: list[tuple[dict[str, Any], Future[dict[str, str]]]] = []
    bar = progress_bar(total=len(mine), initial=summary.n_resumed, desc="predict", unit="img",
                       enabled=progress)
    loader = image_loader(todo, workers=workers, pin_memory=model.device.type == "cuda")
    # On a GPU the files of one batch are encoded on a writer thread while the next batch
    # runs. On the CPU the model's threads use every core, so work beside them only slows
    # them: the writes (on one thread per core) and the next batch's decoding take their turn
    # between batches instead (benchmarks/results/scale/README.md).
    turns = model.device.type == "cpu"
    writers = _usable_cores() if turns else 1
    with open(out / log_name, "a") as log, bar, ThreadPoolExecutor(max_workers=writers) as writer:
        def finish_writes() -> None:
            nonlocal n_rows
            for row, future in writing:
                try:
                    row.update(future.result())
                except OSError as exc:
                    raise FakesegError(f"{out}: cannot write results ({exc.strerror or exc}); "
                                       "free disk space or choose another --out") from exc
                log.write(json.dumps(row) + "\n")
                log.flush()
                kill_point("predict_row")
                n_rows += 1
                summary.n_done += 1
            bar.update(len(writing))
            writing.clear()

        def skip(path: Path, reason: str) -> None:
            summary.skipped.append(Skipped(str(path), reason))
            warn(f"fakeseg: skipped: {summary.skipped[-1]}")
            bar.update()

        def usable(items: Iterable[DecodedImage]) -> Iterator[tuple[Path, torch.Tensor]]:
            for item in items:
                if item.image is None:
                    skip(todo[item.index], item.problem)
                else:
                    yield todo[item.index], item.image

        for group in same_shape_batches(usable(loader), batch_size,
                                        key=lambda item: (item[1].shape, item[1].dtype)):
            batch = pixels_to_unit(torch.stack([pixels for _, pixels in group]))
            if turns:  # the last batch's files are written (while this one was decoded)
                finish_writes()
            try:
                probs = model.predict_tensor(batch)
            except FakesegError as exc:  # non-finite output: no score for these images
                finish_writes()
                for path, _ in group:
                    skip(path, str(exc))
                continue
            finish_writes()
            for (path, _), image, prob in zip(group, batch, probs, strict=True):
                heat = HeatMap(prob[0].numpy(), model.threshold)
                row = {"image": _relative(path, out), "name": names[path], **heat.summary()}
                writing.append((row, writer.submit(
                    write_heatmap_files, out, names[path], image.permute(1, 2, 0).numpy(), heat,
                    outputs=outputs, temp_dir=temp_dir)))
        finish_writes()
    if shard is None:
        _write_csv(out, log_name, outputs, temp_dir)
    _write_info(out / info_name, record, summary, n_rows, complete=True, temp_dir=temp_dir)
    return summary


@dataclass
class _EarlierRows:
    names: dict[Path, str] = field(default_factory=dict)  # image → name, any table of the split
    done: set[Path] = field(default_factory=set)  # images this run need not predict again
    n_own: int = 0  # complete rows kept in this run's own table


def _earlier_rows(out: Path, shard: Shard | None, identity: dict[str, Any], outputs: Outputs,
                  temp_dir: Path) -> _EarlierRows:
    """Read every table of this split once, streaming: the merged one, then each shard's (their
    names stay taken; only the merged and this run's own rows count as done). Refuse tables of
    another model; rewrite this run's own table with its complete rows only."""
    own_log = _table_names(shard)[0]
    tables = [_table_names(None)]
    if shard is not None:
        tables += [_table_names(Shard(k, shard.count)) for k in range(shard.count)]
    earlier = _EarlierRows()
    with atomic_path(out / own_log, temp_dir=temp_dir) as tmp, open(tmp, "w") as kept:
        for table_log, table_info in tables:
            for n, row in enumerate(_complete_rows(out, table_log, outputs)):
                if n == 0:
                    _check_identity(out, table_info, identity)
                image = (out / row["image"]).resolve()
                earlier.names[image] = str(row["name"])
                if table_log in (RESULTS_JSONL, own_log):
                    earlier.done.add(image)
                if table_log == own_log:
                    kept.write(json.dumps(row) + "\n")
                    earlier.n_own += 1
    return earlier


def _relative(path: Path, out: Path) -> str:
    return Path(os.path.relpath(path, out)).as_posix()


def _model_record(model: Localizer, identity: dict[str, Any]) -> dict[str, Any]:
    return {
        "threshold": model.threshold, "model_identity": identity,
        "model": {k: model.meta.get(k) for k in ("kind", "weights_tag", "layers", "step")},
        "model_config": model.meta.get("config"),
    }


def _write_csv(out: Path, log_name: str, outputs: Outputs, temp_dir: Path) -> None:
    write_csv(out / RESULTS_CSV, CSV_COLUMNS, _complete_rows(out, log_name, outputs),
              temp_dir=temp_dir)


def _write_info(path: Path, record: dict[str, Any], summary: PredictSummary, n_images: int, *,
                complete: bool, temp_dir: Path) -> None:
    write_json(path, {
        "complete": complete,
        "score_meaning": SCORE_DOC, "files": summary.outputs.describe(),
        "paths": "relative to this folder",
        **record,
        "n_images": n_images, "n_resumed": summary.n_resumed,
        "skipped": [s.to_json() for s in summary.skipped], "versions": versions(),
    }, temp_dir=temp_dir)


# --- merging the shards --------------------------------------------------------------------

def _all_shards_complete(out: Path, count: int) -> bool:
    infos = {s: p for s, p in _shard_infos(out).items() if s.count == count}
    return len(infos) == count and all(
        (_read_info(p) or {}).get("complete") is True for p in infos.values())


def merge_predictions(out: str | Path) -> PredictSummary:
    """Build one ``results.jsonl`` / ``results.csv`` / ``predict.json`` from the finished
    shards of ``out`` (the rows it held before, then shard 0's, 1's, …), then remove the
    shard tables.

    Refuses, naming what to do: shards not all finished, rows of another model or threshold,
    shards given other inputs or output files, and an image with two rows.
    """
    out = Path(out).resolve()
    if not out.is_dir():
        raise FakesegError(f"{out}: no such folder; give the --out of the sharded predict runs")
    with folder_lock(out, "predict --merge") as temp_dir:
        infos = _shard_infos(out)
        if not infos:
            raise FakesegError(f"{out}: holds no shard results to merge (predict.shard-*.json); "
                               "run 'fakeseg predict ... --shard i/n' into it first")
        counts = sorted({s.count for s in infos})
        if len(counts) > 1:
            raise FakesegError(f"{out}: holds shards of {' and '.join(map(str, counts))}-way "
                               "splits; remove the tables of the split you do not want")
        count = counts[0]
        loaded = {s: _read_info(p) or {} for s, p in infos.items()}
        unfinished = [f"{k}/{count}" for k in range(count)
                      if loaded.get(Shard(k, count), {}).get("complete") is not True]
        if unfinished:
            raise FakesegError(f"{out}: shard(s) {', '.join(unfinished)} not finished; run "
                               "them (fakeseg predict ... --shard i/n), then merge")
        ordered = [loaded[Shard(k, count)] for k in range(count)]
        for key, what in (("model_identity", "another model or threshold"),
                          ("inputs_digest", "other inputs"), ("outputs", "other output files")):
            if len({json.dumps(info.get(key), sort_keys=True) for info in ordered}) > 1:
                raise FakesegError(f"{out}: its shards hold predictions of {what}; rerun the "
                                   "odd shard with the same model, inputs and --outputs, or "
                                   "choose another --out")
        identity = ordered[0]["model_identity"]
        outputs = Outputs.from_json(ordered[0].get("outputs"))
        tables = [RESULTS_JSONL] + [_table_names(Shard(k, count))[0] for k in range(count)]
        seen: dict[str, str] = {}  # image → the table that holds its row
        n_previous = 0
        with (atomic_path(out / RESULTS_JSONL, temp_dir=temp_dir) as tmp,
              open(tmp, "w") as merged):
            for table in tables:  # the rows it held before, then shard 0's, 1's, …
                for n, row in enumerate(_complete_rows(out, table, outputs)):
                    if n == 0 and table == RESULTS_JSONL:
                        _check_identity(out, PREDICT_JSON, identity)
                    if row["image"] in seen:
                        raise FakesegError(f"{out}: {row['image']} has a row in both "
                                           f"{seen[row['image']]} and {table}; remove one")
                    seen[row["image"]] = table
                    n_previous += table == RESULTS_JSONL
                    merged.write(json.dumps(row) + "\n")
        _write_csv(out, RESULTS_JSONL, outputs, temp_dir)
        summary = PredictSummary(out, len(seen) - n_previous, n_resumed=n_previous,
                                 skipped=[Skipped.from_json(s) for info in ordered
                                          for s in info.get("skipped", [])],
                                 results=out / RESULTS_JSONL, outputs=outputs)
        record = {key: ordered[0].get(key) for key in ("threshold", "model_identity", "model",
                                                       "model_config", "inputs_digest")}
        record["outputs"] = outputs.to_json()
        _write_info(out / PREDICT_JSON, {**record, "merged_shards": count}, summary, len(seen),
                    complete=True, temp_dir=temp_dir)
        for k in range(count):
            for name in _table_names(Shard(k, count)):
                (out / name).unlink(missing_ok=True)
        for lock in out.glob(".fakeseg.shard-*.lock"):  # nobody holds one while we hold out
            lock.unlink(missing_ok=True)
    say(f"fakeseg predict: merged {count} shards into {out / RESULTS_JSONL} ({len(seen)} rows)")
    return summary
