"""What runs a segmenter's forward pass at prediction time: PyTorch or ONNX Runtime.

A backend maps an image batch (B, 3, H, W) in [0, 1], H and W multiples of ``multiple``, to
logits (B, 1, H, W) on the CPU. ``torch`` runs an inference copy of the network (BatchNorm
folded, channels-last); ``onnx`` runs a graph written by :func:`export_onnx` in ONNX Runtime
(optional dependency: ``pip install 'fakeseg[onnx]'``). An ONNX file carries the checkpoint's
metadata and a digest of its weights, so it predicts on its own and a stale export is noticed.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from fakeseg.device import keep_freed_memory
from fakeseg.errors import FakesegError, printable
from fakeseg.features.optimize import inference_copy
from fakeseg.models.base import Segmenter

BACKENDS = ("torch", "onnx")
ONNX_FILE = "model.onnx"
ONNX_OPSET = 17
ONNX_INSTALL = "pip install 'fakeseg[onnx]'  (onnxruntime and onnx)"
META_KEY, MULTIPLE_KEY, DIGEST_KEY = "fakeseg_meta", "fakeseg_multiple", "fakeseg_weights_sha256"
#: an export is checked against PyTorch on a random image; larger logit gaps are refused
EXPORT_TOLERANCE = 1e-3


class Backend(Protocol):
    name: str
    multiple: int

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1], sides multiples of ``multiple`` → logits (B, 1, H, W)."""
        ...


class TorchBackend:
    """PyTorch: an inference copy of ``net`` (BatchNorm folded, channels-last, inference mode)
    on ``device``; ``optimize=False`` runs ``net`` as it is (the reference path)."""

    name = "torch"

    def __init__(self, net: Segmenter, device: torch.device, *, optimize: bool = True) -> None:
        self.device = device
        self.optimize = optimize
        if device.type == "cpu":
            keep_freed_memory()  # large activations are reused, not page-faulted in each pass
        self.net = inference_copy(net).to(device) if optimize else net.eval().to(device)
        self.multiple = net.multiple

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            image = image.to(self.device)
            if self.optimize:
                image = image.contiguous(memory_format=torch.channels_last)
            return self.net(image).float().cpu().contiguous()


class OnnxBackend:
    """ONNX Runtime on the CPU with as many threads as torch uses."""

    name = "onnx"

    def __init__(self, model: bytes, multiple: int, source: str) -> None:
        ort = _import("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(model, options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise FakesegError(f"{source}: ONNX Runtime cannot load it ({_first_line(exc)}); "
                               "export it again with 'fakeseg export'") from exc
        self.input = self.session.get_inputs()[0].name
        self.multiple = multiple

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(image.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {self.input: array})[0])


@dataclass
class OnnxModel:
    """An exported graph with what a Localizer needs besides it."""

    model: bytes
    meta: dict[str, Any]
    multiple: int
    weights_sha256: str


@dataclass
class ExportResult:
    path: Path
    opset: int
    seconds: float
    max_abs_logit_diff: float  # ONNX Runtime vs PyTorch on a random image
    size_mib: float


def weights_digest(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over a state dict's names and bytes: which weights an export was made from."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def to_onnx(net: Segmenter, meta: Mapping[str, Any]) -> OnnxModel:
    """Trace ``net`` (eval mode) into an ONNX graph with dynamic batch, height and width, and
    store ``meta``, the stride multiple and the weights digest in its metadata.

    Uses torch's TorchScript-based exporter (``dynamo=False``): it needs no onnxscript and
    takes seconds where the dynamo exporter takes minutes on 2 cores."""
    onnx = _import("onnx")
    net = net.eval()
    side = max(net.multiple, 64)
    example = torch.rand(1, 3, side, side)
    buffer = io.BytesIO()
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes on shape checks that hold for any size
        try:
            torch.onnx.export(net, (example,), buffer,  # type: ignore[arg-type]
                              dynamo=False, opset_version=ONNX_OPSET,
                              input_names=["image"], output_names=["logits"],
                              dynamic_axes={"image": axes, "logits": axes})
        except Exception as exc:  # the exporter raises many kinds; name the model
            raise FakesegError(f"{type(net).__name__} cannot be exported to ONNX "
                               f"({_first_line(exc)}); use the torch backend") from exc
    graph = onnx.load_from_string(buffer.getvalue())
    digest = weights_digest(net.state_dict())
    for key, value in ((META_KEY, json.dumps(dict(meta), default=str)),
                       (MULTIPLE_KEY, str(net.multiple)), (DIGEST_KEY, digest)):
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    return OnnxModel(graph.SerializeToString(), dict(meta), net.multiple, digest)


def read_onnx(path: str | Path) -> OnnxModel:
    """An ONNX file written by ``fakeseg export``; anything else is a one-line error."""
    onnx = _import("onnx")
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FakesegError(f"{printable(path)}: cannot read it ({exc.strerror or exc}); pass "
                           "an ONNX file from 'fakeseg export'") from exc
    try:
        graph = onnx.load_from_string(data)
        props = {p.key: p.value for p in graph.metadata_props}
        meta = json.loads(props[META_KEY])
        multiple = int(props[MULTIPLE_KEY])
        digest = props[DIGEST_KEY]
    except Exception as exc:  # protobuf decode errors, missing keys, bad JSON
        raise FakesegError(f"{printable(path)}: not an ONNX model from 'fakeseg export' "
                           f"({_first_line(exc)}); export the run again") from exc
    if not isinstance(meta, dict) or multiple < 1:
        raise FakesegError(f"{printable(path)}: its fakeseg metadata is damaged; export the "
                           "run again")
    return OnnxModel(data, meta, multiple, digest)


def check_export(net: Segmenter, exported: OnnxModel, source: str) -> float:
    """Largest |logit| gap between ONNX Runtime and PyTorch on a random 2-image batch whose
    sides are not square (dynamic shapes are exercised); above the tolerance is an error."""
    backend = OnnxBackend(exported.model, exported.multiple, source)
    generator = torch.Generator().manual_seed(0)
    side = max(net.multiple, 64)
    image = torch.rand(2, 3, side, 2 * side, generator=generator)
    with torch.no_grad():
        expected = net.eval()(image)
    gap = float((backend(image) - expected).abs().max())
    if not gap <= EXPORT_TOLERANCE:
        raise FakesegError(f"{source}: the ONNX graph differs from PyTorch by {gap:.3g} in "
                           f"logits (tolerance {EXPORT_TOLERANCE}); use the torch backend")
    return gap


def export_onnx(net: Segmenter, meta: Mapping[str, Any], out: str | Path) -> ExportResult:
    """Export, check against PyTorch, then write ``out`` atomically."""
    from fakeseg.io import write_bytes

    out = Path(out)
    started = time.perf_counter()
    exported = to_onnx(net, meta)
    gap = check_export(net, exported, str(out))
    write_bytes(out, exported.model)
    return ExportResult(out, ONNX_OPSET, time.perf_counter() - started, gap,
                        len(exported.model) / 2**20)


def onnx_available() -> bool:
    try:
        _import("onnxruntime")
        _import("onnx")
    except FakesegError:
        return False
    return True


def _import(name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise FakesegError(f"the ONNX backend needs {name}, which is not installed: "
                           f"{ONNX_INSTALL}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
