"""Prediction backends: the optimised PyTorch path equals the plain one, batches equal single
images, and an ONNX export equals PyTorch (ONNX Runtime is an optional dependency)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fakeseg.cli import main
from fakeseg.config import TrainConfig, to_dict
from fakeseg.errors import FakesegError
from fakeseg.features.optimize import fold_batchnorm, inference_copy
from fakeseg.inference.backends import ONNX_FILE, onnx_available
from fakeseg.inference.localizer import Localizer
from fakeseg.models.registry import build_model
from tests.test_fakesegment import TINY

needs_onnx = pytest.mark.skipif(not onnx_available(),
                                reason="onnxruntime/onnx not installed (pip install "
                                       "'fakeseg[onnx]')")
CONFIG = to_dict(TrainConfig(backbone_weights="random", reduce_channels=8,
                             decoder_channels=[32, 16, 8, 8]))


def _random_statistics(net: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine terms, so folding them is really tested."""
    generator = torch.Generator().manual_seed(seed)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d) and module.running_mean is not None:
            size = module.num_features
            module.running_mean.copy_(torch.rand(size, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(size, generator=generator) + 0.5)
            module.bias.data.copy_(torch.rand(size, generator=generator) - 0.5)
    return net.eval()


@pytest.fixture(scope="module")
def tiny() -> Localizer:
    torch.manual_seed(0)
    net = _random_statistics(build_model(CONFIG))
    return Localizer(net, {"kind": "segmenter", "config": CONFIG, "threshold": 0.5}, "cpu")


def _images(n: int, height: int, width: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, height, width, generator=torch.Generator().manual_seed(seed))


def test_fold_batchnorm_keeps_the_function_and_removes_every_batchnorm(tiny: Localizer) -> None:
    plain = tiny.net
    fast = inference_copy(plain)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())  # original untouched
    image = _images(2, 64, 128)
    with torch.no_grad():
        expected = plain(image)
        got = fast(image.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train())


def test_timm_efficientnet_lite0_batchnorm_is_folded_too() -> None:
    """timm's BatchNormAct2d (norm, dropout, activation) folds into the conv before it and
    leaves its activation: no BatchNorm is left and the logits stay the same."""
    torch.manual_seed(0)
    config = {**CONFIG, "backbone": "efficientnet_lite0"}
    plain = _random_statistics(build_model(config, weights="random"), seed=3)
    assert sum(type(m).__name__ == "BatchNormAct2d" for m in plain.modules()) > 10
    fast = inference_copy(plain)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    image = _images(2, 64, 128)
    with torch.no_grad():
        expected = plain(image)
        got = fast(image.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_optimised_path_matches_the_plain_path_within_1e_3(tiny: Localizer) -> None:
    plain = Localizer(tiny.net, tiny.meta, "cpu", optimize=False)
    for shape in [(1, 64, 64), (3, 96, 160), (2, 70, 45)]:  # 70×45: padded
        image = _images(*shape)
        gap = (tiny.predict_tensor(image) - plain.predict_tensor(image)).abs().max()
        assert float(gap) <= 1e-3, shape


def test_a_batch_gives_the_maps_of_its_images_one_by_one(tiny: Localizer) -> None:
    image = _images(5, 64, 64, seed=3)
    batched = tiny.predict_tensor(image)
    single = torch.cat([tiny.predict_tensor(image[i:i + 1]) for i in range(5)])
    assert batched.shape == (5, 1, 64, 64)
    assert torch.allclose(batched, single, atol=1e-5)


@needs_onnx
def test_onnx_backend_matches_pytorch_within_1e_4(tiny: Localizer, tmp_path: Path) -> None:
    result = tiny.export_onnx(tmp_path / "m.onnx")
    assert result.path.is_file() and result.max_abs_logit_diff <= 1e-3
    onnx_model = Localizer.load(tmp_path / "m.onnx")
    assert onnx_model.backend.name == "onnx" and onnx_model.threshold == tiny.threshold
    for shape in [(1, 64, 64), (4, 128, 192), (1, 70, 45)]:  # dynamic batch and size
        image = _images(*shape, seed=7)
        gap = (onnx_model.predict_tensor(image) - tiny.predict_tensor(image)).abs().max()
        assert float(gap) <= 1e-4, shape
    with pytest.raises(FakesegError, match="ONNX file"):
        _ = onnx_model.net


@needs_onnx
def test_concatenated_backbones_export_and_fold(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = {**CONFIG, "backbone": "efficientnet_lite0+ssdlite_mobilenet_v2"}
    both = Localizer(_random_statistics(build_model(config, weights="random"), seed=5),
                     {"kind": "segmenter", "config": config, "threshold": 0.5}, "cpu")
    plain = Localizer(both.net, both.meta, "cpu", optimize=False)
    both.export_onnx(tmp_path / "m.onnx")
    onnx_model = Localizer.load(tmp_path / "m.onnx")
    image = _images(2, 64, 96, seed=4)
    reference = plain.predict_tensor(image)
    assert float((both.predict_tensor(image) - reference).abs().max()) <= 1e-3
    assert float((onnx_model.predict_tensor(image) - reference).abs().max()) <= 1e-4


@needs_onnx
@pytest.mark.slow  # trains a tiny run and exports three times
def test_export_command_and_predict_backend(tmp_path: Path) -> None:
    from fakeseg.training.segmentation import train
    from tests.conftest import make_pairs

    run = tmp_path / "run"
    train(make_pairs(tmp_path / "pairs"), run, TrainConfig(**{**TINY, "steps": 2}),
          progress=False)
    images = tmp_path / "pairs" / "synthetic"
    assert main(["predict", str(run), str(images), "--out", str(tmp_path / "t"), "-q"]) == 0
    # no export yet: --backend onnx exports in memory and writes nothing into the run
    assert main(["predict", str(run), str(images), "--out", str(tmp_path / "m"), "-q",
                 "--backend", "onnx"]) == 0
    assert not (run / "best" / ONNX_FILE).exists()
    assert main(["export", str(run), "-q"]) == 0
    assert (run / "best" / ONNX_FILE).is_file()
    assert Localizer.load(run, backend="onnx").backend.name == "onnx"
    assert main(["export", str(run), "--onnx", str(tmp_path / "x.onnx"), "-q"]) == 0
    assert main(["predict", str(tmp_path / "x.onnx"), str(images), "--out",
                 str(tmp_path / "o"), "-q"]) == 0
    for name in ("p0", "p3"):
        torch_map = np.load(tmp_path / "t" / f"{name}_heat.npy")
        for other in ("m", "o"):
            assert np.abs(np.load(tmp_path / other / f"{name}_heat.npy") - torch_map).max() < 1e-4


@needs_onnx
def test_stale_or_foreign_onnx_files_are_noticed(tiny: Localizer, tmp_path: Path) -> None:
    folder = tiny.save(tmp_path / "ckpt")
    changed = Localizer(_random_statistics(build_model(CONFIG), seed=9), tiny.meta, "cpu")
    changed.export_onnx(folder / ONNX_FILE)  # other weights than the checkpoint's
    model = Localizer.load(folder, backend="onnx")  # re-exports from the checkpoint's weights
    image = _images(1, 64, 64)
    expected = tiny.predict_tensor(image)
    assert float((changed.predict_tensor(image) - expected).abs().max()) > 1e-3
    assert float((model.predict_tensor(image) - expected).abs().max()) <= 1e-4
    (tmp_path / "junk.onnx").write_bytes(b"not a graph")
    with pytest.raises(FakesegError, match=r"junk\.onnx: not an ONNX model from 'fakeseg export'"):
        Localizer.load(tmp_path / "junk.onnx")
    with pytest.raises(FakesegError, match="runs on the onnx backend"):
        Localizer.load(folder / ONNX_FILE, backend="torch")


@needs_onnx
@pytest.mark.parametrize(("key", "value", "message"), [
    ("threshold", 7.0, "threshold must be a number in"),
    ("threshold", "abc", "threshold must be a number in"),
    ("smooth_sigma", -3, "smooth_sigma"),
])
def test_an_onnx_files_damaged_metadata_is_a_one_line_error_naming_it(
        tiny: Localizer, tmp_path: Path, key: str, value: object, message: str) -> None:
    """The ONNX file's threshold and config are checked as a checkpoint's are: never a map
    thresholded at 7, never a traceback."""
    import onnx

    path = tiny.export_onnx(tmp_path / "m.onnx").path
    graph = onnx.load(path)
    entry = next(p for p in graph.metadata_props if p.key == "fakeseg_meta")
    meta = json.loads(entry.value)
    (meta if key == "threshold" else meta["config"])[key] = value
    entry.value = json.dumps(meta)
    onnx.save(graph, tmp_path / "bad.onnx")
    with pytest.raises(FakesegError, match=rf"bad\.onnx: .*{message}"):
        Localizer.load(tmp_path / "bad.onnx")


def test_unknown_backend_is_one_line(tiny: Localizer, tmp_path: Path) -> None:
    folder = tiny.save(tmp_path / "ckpt")
    with pytest.raises(FakesegError, match="unknown backend 'tensorrt'; choose one of torch"):
        Localizer.load(folder, backend="tensorrt")


def test_cpu_torch_backend_keeps_freed_memory_for_reuse() -> None:
    import sys

    from fakeseg.device import keep_freed_memory

    # set once per process (by the CPU torch backend), then a no-op that says it holds
    assert keep_freed_memory() == keep_freed_memory()
    if sys.platform.startswith("linux"):
        import platform

        if platform.libc_ver()[0] == "glibc":
            assert keep_freed_memory()
