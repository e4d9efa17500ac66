"""Checkpoints: one folder holding ``model.safetensors`` + ``model.json`` (+ trainer state),
written and replaced as a set.

Weights go through safetensors (no pickle), metadata through JSON, and trainer state through
``torch.load(weights_only=True)``, so an untrusted checkpoint cannot run code.

A checkpoint is written whole into a fresh hidden folder next to its destination (every file
fsynced), then switched into place by two renames: the old folder is moved aside, the new one
moved in, and only then is the old one deleted. A crash at any moment leaves either the old or
the new set, never a mix; :func:`recover_checkpoint` (run by the writer before each save, under
the run's lock) finishes or undoes an interrupted switch, and a reader that finds only the
moved-aside folder reads it.

Crash tests stop a save at ``last.after_weights``, ``last.after_state``, ``last.after_meta``,
``last.after_aside`` or ``last.after_switch`` (``best.…`` likewise) through
:func:`fakeseg.faults.kill_point`.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from fakeseg.errors import CheckpointError, FakesegError, printable
from fakeseg.faults import kill_point

WEIGHTS_FILE, META_FILE, STATE_FILE = "model.safetensors", "model.json", "trainer_state.pt"
FORMAT = "fakeseg-checkpoint/1"
def _aside(folder: Path) -> Path:
    return folder.parent / f".{folder.name}.old"


def _write_synced(folder: Path, name: str, data: bytes) -> None:
    with open(folder / name, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def recover_checkpoint(folder: str | Path) -> None:
    """Finish or undo a switch that a crash interrupted; delete abandoned temporary folders.

    Only the writer calls this (it holds the run's lock).
    """
    folder = Path(folder)
    aside = _aside(folder)
    if aside.exists():
        if folder.exists():  # the new set was in place; only the old one was left to delete
            shutil.rmtree(aside, ignore_errors=True)
        else:  # killed between the two renames: the old set goes back
            os.rename(aside, folder)
    if folder.parent.is_dir():
        for stale in folder.parent.glob(f".{folder.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)


def save_checkpoint(folder: str | Path, state_dict: dict[str, torch.Tensor],
                    meta: dict[str, Any], trainer_state: dict[str, Any] | None = None,
                    extra_json: dict[str, Any] | None = None) -> Path:
    """Write weights, metadata, trainer state and ``extra_json`` files as one set.

    ``extra_json`` maps file names to JSON payloads that belong to this checkpoint (the
    training history that describes it).
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    recover_checkpoint(folder)
    tag = folder.name
    tmp = Path(tempfile.mkdtemp(prefix=f".{tag}.tmp-", dir=folder.parent))
    try:
        tmp.chmod(0o777 & ~_umask())
        tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
        _write_synced(tmp, WEIGHTS_FILE, save_safetensors(tensors))
        kill_point(f"{tag}.after_weights")
        if trainer_state is not None:
            buffer = io.BytesIO()
            torch.save(trainer_state, buffer)
            _write_synced(tmp, STATE_FILE, buffer.getvalue())
            kill_point(f"{tag}.after_state")
        for name, payload in (extra_json or {}).items():
            _write_synced(tmp, name, _json_bytes(payload))
        _write_synced(tmp, META_FILE, _json_bytes({"format": FORMAT, **meta}))
        _fsync_dir(tmp)
        kill_point(f"{tag}.after_meta")
        aside = _aside(folder)
        if folder.exists():
            os.rename(folder, aside)
            kill_point(f"{tag}.after_aside")
        os.rename(tmp, folder)
        _fsync_dir(folder.parent)
        kill_point(f"{tag}.after_switch")
        shutil.rmtree(aside, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _json_bytes(payload: Any) -> bytes:
    """Strict JSON: a NaN/inf (a validation score undefined for this epoch) is written null."""
    from fakeseg.io import _json_default

    def finite(value: Any) -> Any:
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: finite(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [finite(v) for v in value]
        return value

    text = json.dumps(finite(payload), indent=2, allow_nan=False, default=_json_default)
    return (text + "\n").encode()


def resolve_checkpoint(path: str | Path) -> Path:
    """A run folder (→ its ``best/``), a checkpoint folder, or its ``model.safetensors``."""
    path = Path(path)
    if path.is_file() and path.name == WEIGHTS_FILE:
        path = path.parent
    if not path.exists() and _aside(path).is_dir():  # a writer died mid-switch
        path = _aside(path)
    if path.is_dir() and not (path / META_FILE).exists():
        for candidate in ("best", "last"):
            for folder in (path / candidate, _aside(path / candidate)):
                if (folder / META_FILE).exists():
                    return folder
    if not path.exists():
        raise CheckpointError(f"{printable(path)}: no such checkpoint; pass a run folder from "
                              "'fakeseg train' or its best/ folder")
    if not (path / META_FILE).exists() or not (path / WEIGHTS_FILE).exists():
        raise CheckpointError(f"{printable(path)}: not a fakeseg checkpoint (needs "
                              f"{WEIGHTS_FILE} and {META_FILE}); pass a run folder from "
                              "'fakeseg train'")
    return path


def _read_files(folder: Path, names: tuple[str, ...], *, optional: tuple[str, ...] = (),
                hint: str = "retrain or restore it") -> dict[str, bytes]:
    """The named files of one checkpoint folder, read through one directory handle, so that
    a concurrent switch cannot hand out the metadata of one set and the weights of another."""
    found: dict[str, bytes] = {}
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except PermissionError as exc:
        raise CheckpointError(f"{printable(folder)}: permission denied; make the checkpoint "
                              "readable") from exc
    try:
        for name in (*names, *optional):
            try:
                file_fd = os.open(name, os.O_RDONLY, dir_fd=fd)
            except FileNotFoundError as exc:
                if name in optional:
                    continue
                raise CheckpointError(f"{printable(folder / name)}: missing from the "
                                      f"checkpoint; {hint}") from exc
            except PermissionError as exc:
                raise CheckpointError(f"{printable(folder / name)}: permission denied; make "
                                      "it readable") from exc
            with os.fdopen(file_fd, "rb") as handle:
                found[name] = handle.read()
    finally:
        os.close(fd)
    return found


def _parse_meta(data: bytes, path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{printable(path)}: corrupt metadata ({exc}); "
                              "retrain or restore the file") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{printable(path)}: unknown checkpoint format "
                              f"{meta.get('format') if isinstance(meta, dict) else None!r}; "
                              f"expected {FORMAT}")
    return meta


def _parse_weights(data: bytes, path: Path) -> dict[str, torch.Tensor]:
    try:
        state = load_safetensors(data)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{printable(path)}: corrupt or truncated weights ({first}); "
                              "retrain or restore the file") from exc
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{printable(path)}: tensor '{printable(name)}' holds NaN or "
                                  "infinite values (training diverged?); use another "
                                  "checkpoint or retrain with a lower lr")
    return state


def load_meta(path: str | Path) -> dict[str, Any]:
    """The metadata of a checkpoint (see :func:`resolve_checkpoint`), without its weights."""
    folder = resolve_checkpoint(path)
    return _parse_meta(_read_files(folder, (META_FILE,))[META_FILE], folder / META_FILE)


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], Path]:
    """Return (state_dict, meta, folder). Every failure is a one-line CheckpointError;
    non-finite weights are refused."""
    folder = resolve_checkpoint(path)
    files = _read_files(folder, (META_FILE, WEIGHTS_FILE))
    meta = _parse_meta(files[META_FILE], folder / META_FILE)
    return _parse_weights(files[WEIGHTS_FILE], folder / WEIGHTS_FILE), meta, folder


@dataclass
class ResumeState:
    """Everything ``--resume`` needs, read from one checkpoint set."""

    folder: Path
    weights: dict[str, torch.Tensor]
    meta: dict[str, Any]
    trainer_state: dict[str, Any]
    extra_json: dict[str, Any]


def load_resume_state(folder: str | Path, extra_json: tuple[str, ...] = ()) -> ResumeState:
    """Weights, metadata, trainer state and the named JSON files of one ``last/`` set."""
    folder = resolve_checkpoint(folder)
    files = _read_files(folder, (META_FILE, WEIGHTS_FILE, STATE_FILE), optional=extra_json,
                        hint="start without --resume")
    extras: dict[str, Any] = {}
    for name in extra_json:
        if name in files:
            try:
                extras[name] = json.loads(files[name].decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                raise CheckpointError(f"{printable(folder / name)}: corrupt ({exc}); start "
                                      "without --resume") from exc
    return ResumeState(folder, _parse_weights(files[WEIGHTS_FILE], folder / WEIGHTS_FILE),
                       _parse_meta(files[META_FILE], folder / META_FILE),
                       _trainer_state(files[STATE_FILE], folder / STATE_FILE), extras)


def _trainer_state(data: bytes, path: Path) -> dict[str, Any]:
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{printable(path)}: unreadable trainer state "
                              f"({exc.__class__.__name__}); start without --resume or restore "
                              "the file") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{printable(path)}: trainer state is not a mapping; start "
                              "without --resume")
    return state


def load_trainer_state(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / STATE_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise CheckpointError(f"{printable(path)}: no trainer state to resume from; "
                              "start without --resume") from exc
    return _trainer_state(data, path)


def check_threshold(value: Any, source: Path | str) -> float:
    """A decision threshold from a checkpoint: a finite number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise CheckpointError(f"{printable(source)}: threshold must be a number in [0, 1], got "
                              f"{value!r}; retrain or fix the value in the file")
    return float(value)


def known_names() -> dict[str, list[str]]:
    """Registered model and backbone names, for :meth:`fakeseg.config.TrainConfig.validate`."""
    from fakeseg.features.registry import backbone_names
    from fakeseg.models.registry import MODELS

    return {"model": MODELS.names(), "backbone": backbone_names()}


def segmenter_config(meta: dict[str, Any], source: Path | str) -> dict[str, Any]:
    """The validated training config stored in a segmenter checkpoint's ``model.json``."""
    from fakeseg.config import TrainConfig, from_dict, to_dict

    payload = meta.get("config")
    if not isinstance(payload, dict):
        raise CheckpointError(f"{printable(source)}: no 'config' mapping (the file is damaged "
                              "or not from 'fakeseg train'); retrain or restore it")
    try:
        config = to_dict(from_dict(TrainConfig, payload, source=printable(source),
                                   names=known_names()))
    except CheckpointError:
        raise
    except FakesegError as exc:
        raise CheckpointError(str(exc)) from None
    layers = meta.get("layers", config.get("layers"))
    if layers is not None and (not isinstance(layers, list)
                               or not all(isinstance(x, str) for x in layers)):
        raise CheckpointError(f"{printable(source)}: layers must be a list of layer names, got "
                              f"{str(layers)[:60]!r}; retrain or restore the file")
    config["layers"] = layers
    scales = meta.get("scales") or {}
    if not isinstance(scales, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            and v > 0 for v in scales.values()):
        raise CheckpointError(f"{printable(source)}: scales must map layers to positive "
                              "numbers; retrain or restore the file")
    return config


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """load_state_dict with a one-line error naming the file on any mismatch."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"{printable(source)}: weights do not fit the model ({first}); "
                              "the checkpoint was made with another configuration") from exc
