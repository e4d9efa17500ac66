"""Checkpoints: ``model.safetensors`` + ``model.json`` in one folder, written atomically.

Weights go through safetensors (no pickle), metadata through JSON, and trainer state through
``torch.load(weights_only=True)``, so an untrusted checkpoint cannot run code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from fakeseg.errors import CheckpointError
from fakeseg.io import atomic_path, write_json

WEIGHTS_FILE, META_FILE, STATE_FILE = "model.safetensors", "model.json", "trainer_state.pt"
FORMAT = "fakeseg-checkpoint/1"


def save_checkpoint(folder: str | Path, state_dict: dict[str, torch.Tensor],
                    meta: dict[str, Any], trainer_state: dict[str, Any] | None = None) -> Path:
    """Write weights, metadata and (optionally) trainer state; each file atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp))
    if trainer_state is not None:
        with atomic_path(folder / STATE_FILE) as tmp:
            torch.save(trainer_state, tmp)
    write_json(folder / META_FILE, {"format": FORMAT, **meta})
    return folder


def resolve_checkpoint(path: str | Path) -> Path:
    """A run folder (→ its ``best/``), a checkpoint folder, or its ``model.safetensors``."""
    path = Path(path)
    if path.is_file() and path.name == WEIGHTS_FILE:
        path = path.parent
    if path.is_dir() and not (path / META_FILE).exists():
        for candidate in ("best", "last"):
            if (path / candidate / META_FILE).exists():
                return path / candidate
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint; pass a run folder from "
                              "'fakeseg train' or its best/ folder")
    if not (path / META_FILE).exists() or not (path / WEIGHTS_FILE).exists():
        raise CheckpointError(f"{path}: not a fakeseg checkpoint (needs {WEIGHTS_FILE} and "
                              f"{META_FILE}); pass a run folder from 'fakeseg train'")
    return path


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], Path]:
    """Return (state_dict, meta, folder). Every failure is a one-line CheckpointError."""
    folder = resolve_checkpoint(path)
    try:
        meta = json.loads((folder / META_FILE).read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{folder / META_FILE}: corrupt metadata ({exc}); "
                              "retrain or restore the file") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{folder / META_FILE}: unknown checkpoint format "
                              f"{meta.get('format') if isinstance(meta, dict) else None!r}; "
                              f"expected {FORMAT}")
    try:
        state = load_file(str(folder / WEIGHTS_FILE))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{folder / WEIGHTS_FILE}: corrupt or truncated weights ({exc}); "
                              "retrain or restore the file") from exc
    return state, meta, folder


def load_trainer_state(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / STATE_FILE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path}: no trainer state to resume from; "
                              "start without --resume") from exc
    except Exception as exc:
        raise CheckpointError(f"{path}: unreadable trainer state ({exc.__class__.__name__}); "
                              "start without --resume or restore the file") from exc


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """load_state_dict with a one-line error naming the file on any mismatch."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"{source}: weights do not fit the model ({first}); the "
                              "checkpoint was made with another configuration") from exc
