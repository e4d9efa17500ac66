"""FakeSegment: targets, the net, training, resume, predict and checkpoints (random weights)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage
from torch import nn

from fakeseg.cli import main
from fakeseg.config import TrainConfig
from fakeseg.data.pairs import load_pair
from fakeseg.errors import CheckpointError, FakesegError
from fakeseg.features import build_backbone
from fakeseg.features.target import discrepancy_maps, fit_scales, fuse
from fakeseg.inference.localizer import Localizer
from fakeseg.models.base import smooth_probabilities
from fakeseg.models.fakesegment import FakeSegment
from fakeseg.training import segmentation
from fakeseg.training.losses import pixel_bce, soft_dice
from fakeseg.training.segmentation import train

TINY = dict(backbone_weights="random", crop_size=64, batch_size=4, steps=4, steps_per_epoch=2,
            encoder="resnet18", reduce_channels=8, amp=False, device="cpu", val_fraction=0.25,
            test_fraction=0.25, p_reencode=0.0, decoder_channels=[32, 16, 8, 8])


def tiny_net() -> FakeSegment:
    torch.manual_seed(0)
    return FakeSegment(build_backbone("ssdlite_mobilenet_v2", "random"), reduce_channels=8,
                       decoder_channels=(32, 16, 8, 8))


def test_target_is_exactly_zero_where_real_equals_synthetic() -> None:
    torch.manual_seed(0)  # random weights and images: the ratio below varies with the draw
    extractor = build_backbone("ssdlite_mobilenet_v2", "random")
    image = torch.rand(1, 3, 64, 64)
    maps = discrepancy_maps(extractor, image, image.clone())
    assert all(torch.count_nonzero(m) == 0 for m in maps.values())
    other = image.clone()
    other[..., :, :32] = torch.rand(1, 3, 64, 32)
    maps = discrepancy_maps(extractor, image, other)
    assert all(m.shape[1] == 1 and m.max() > 0 for m in maps.values())
    scales = fit_scales([maps])
    fused = fuse(maps, (64, 64), scales=scales)
    assert fused.shape == (1, 1, 64, 64) and fused.min() >= 0 and fused.max() <= 1
    # the unchanged right edge stays far below the changed left side
    assert fused[..., :, :16].mean() > 3 * fused[..., :, -8:].mean()


def test_net_shapes_and_gradients() -> None:
    net = tiny_net()
    image = torch.rand(2, 3, 64, 64)
    logits = net(image)
    assert logits.shape == (2, 1, 64, 64)
    pixel_bce(logits, torch.zeros_like(logits)).backward()
    assert all(p.grad is None for p in net.extractor.parameters())
    assert all(p.grad is not None and torch.isfinite(p.grad).all()
               for p in net.trainable_parameters())
    assert net.eval().forward_any_size(torch.rand(1, 3, 17, 33)).shape == (1, 1, 17, 33)


def _fixed_batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 64, 64, generator=generator), 5, 1, 2)
    blocky = torch.nn.functional.interpolate(smooth[..., ::8, ::8], scale_factor=8)
    mask = torch.zeros(2, 1, 64, 64)
    mask[..., :, :32] = 1
    return mask * blocky + (1 - mask) * smooth, mask


def test_one_step_lowers_the_loss_and_overfits_a_tiny_pair() -> None:
    net = tiny_net()
    image, mask = _fixed_batch()
    optimizer = torch.optim.Adam(net.trainable_parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = pixel_bce(net(image), mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[1] < losses[0]
    net.eval()
    with torch.no_grad():
        pred = torch.sigmoid(net(image)) >= 0.5
    dice = 2 * (pred & (mask > 0)).sum() / (pred.sum() + mask.sum())
    assert dice > 0.9


def test_soft_dice_is_one_minus_the_pooled_dice_and_trains(tiny_pairs: Path,
                                                           tmp_path: Path) -> None:
    logits = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    label = (torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1)) > 0.6).float()
    p = torch.sigmoid(logits)
    expected = 1 - 2 * (p * label).sum() / (p.sum() + label.sum())
    assert torch.allclose(soft_dice(logits, label), expected, atol=1e-6)
    assert float(soft_dice(torch.full((1, 1, 4, 4), 30.0), torch.ones(1, 1, 4, 4))) < 1e-6
    config = TrainConfig(**{**TINY, "steps": 2}, dice_weight=1.0)
    result = train(tiny_pairs, tmp_path / "run", config, progress=False)
    history = json.loads((result.run_dir / "history.json").read_text())
    assert all(0 < row["loss_dice"] <= 1 for row in history)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_resume_is_bit_exact(tiny_pairs: Path, tmp_path: Path) -> None:
    config = TrainConfig(**TINY, adv_weight=0.1)
    straight = train(tiny_pairs, tmp_path / "a", config, progress=False)
    train(tiny_pairs, tmp_path / "b", config, progress=False, stop_after=2)
    with pytest.raises(FakesegError, match="--resume"):
        train(tiny_pairs, tmp_path / "b", config, progress=False)
    resumed = train(tiny_pairs, tmp_path / "b", config, resume=True, progress=False)
    assert straight.steps == resumed.steps == 4
    a, b = _weights(tmp_path / "a" / "last"), _weights(tmp_path / "b" / "last")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "a" / "config.yaml").exists() and (tmp_path / "a" / "split.json").exists()


def test_weight_average_is_an_ema_of_weights_and_buffers() -> None:
    from fakeseg.training.trainer import weight_average

    assert weight_average(nn.Linear(2, 2), 0.0) is None
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = weight_average(net, 0.75)
    assert ema is not None
    seen = []
    for value in (1.0, 3.0, 7.0):
        with torch.no_grad():
            net[0].weight.fill_(value)
            net[1].running_mean.fill_(-value)
        ema.update_parameters(net)
        seen.append(value)
    expected = seen[0]  # the first update copies, then ema ← 0.75·ema + 0.25·new
    for value in seen[1:]:
        expected = 0.75 * expected + 0.25 * value
    assert torch.allclose(ema.module[0].weight, torch.full((2, 2), expected))
    assert torch.allclose(ema.module[1].running_mean, torch.full((2,), -expected))


def test_ema_run_keeps_the_average_and_resumes_bit_exact(tiny_pairs: Path,
                                                         tmp_path: Path) -> None:
    config = TrainConfig(**TINY, ema_decay=0.5)
    straight = train(tiny_pairs, tmp_path / "a", config, progress=False)
    train(tiny_pairs, tmp_path / "b", config, progress=False, stop_after=2)
    resumed = train(tiny_pairs, tmp_path / "b", config, resume=True, progress=False)
    assert straight.steps == resumed.steps == 4
    for folder in ("best", "last"):
        a, b = _weights(tmp_path / "a" / folder), _weights(tmp_path / "b" / folder)
        assert all(torch.equal(a[k], b[k]) for k in a)
    # one epoch: best/ holds the average (validated), last/ the raw weights of the same step
    train(tiny_pairs, tmp_path / "c", TrainConfig(**{**TINY, "steps_per_epoch": 4},
                                                  ema_decay=0.5), progress=False)
    best, last = _weights(tmp_path / "c" / "best"), _weights(tmp_path / "c" / "last")
    assert best.keys() == last.keys()
    assert any(not torch.equal(best[k], last[k]) for k in best if k.startswith("unet"))
    assert all(torch.equal(best[k], last[k]) for k in best if k.startswith("extractor"))


def test_cached_validation_scores_like_rebuilt_composites(
        tiny_pairs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation inputs kept between epochs give the history and weights of rebuilding them."""
    config = TrainConfig(**TINY)
    loads: list[str] = []

    def counted_load(pair: Any, **options: Any) -> Any:
        loads.append(pair.stem)
        return load_pair(pair, **options)
    monkeypatch.setattr(segmentation, "load_pair", counted_load)
    cached = train(tiny_pairs, tmp_path / "cached", config, progress=False)
    assert len(loads) == 1  # one validation pair, decoded once for both epochs
    monkeypatch.setattr(segmentation, "VAL_CACHE_BYTES", 0)
    rebuilt = train(tiny_pairs, tmp_path / "rebuilt", config, progress=False)
    assert len(loads) == 3
    assert len(cached.history) == 2 and cached.history == [
        {**row, "elapsed_s": c["elapsed_s"], "steps_per_s": c["steps_per_s"]}
        for row, c in zip(rebuilt.history, cached.history, strict=True)]
    a, b = _weights(tmp_path / "cached" / "best"), _weights(tmp_path / "rebuilt" / "best")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_heatmap_target_mode_trains_and_predicts(tiny_pairs: Path, tmp_path: Path) -> None:
    config = TrainConfig(**{**TINY, "steps": 2}, target_mode="heatmap")
    result = train(tiny_pairs, tmp_path / "run", config, progress=False)
    model = Localizer.load(result.run_dir)
    assert set(model.meta["scales"]) == set(model.meta["layers"])
    heat = model.predict(np.random.default_rng(0).random((17, 33, 3)).astype(np.float32))
    assert heat.probability.shape == (17, 33) and 0 <= heat.score <= 1
    with pytest.raises(FakesegError, match="at least"):
        model.predict(np.zeros((1, 1, 3), np.float32))
    assert list((tmp_path / "run" / "targets").glob("*.npy"))  # targets were stored


def test_concatenated_backbones_train_save_and_reload(tiny_pairs: Path, tmp_path: Path) -> None:
    both = "efficientnet_lite0+ssdlite_mobilenet_v2"
    config = TrainConfig(**{**TINY, "steps": 2}, backbone=both)
    result = train(tiny_pairs, tmp_path / "run", config, progress=False)
    model = Localizer.load(result.run_dir)
    assert model.meta["layers"] == list(model.net.feature_extractor.layers)
    assert {layer.partition(":")[0] for layer in model.meta["layers"]} == set(both.split("+"))
    image = torch.rand(1, 3, 64, 128, generator=torch.Generator().manual_seed(0))
    model.net.eval()
    with torch.no_grad():
        expected = smooth_probabilities(torch.sigmoid(model.net(image)), model.smooth_sigma)
    assert model.smooth_sigma == TrainConfig.smooth_sigma > 0
    assert torch.allclose(model.predict_tensor(image), expected, atol=1e-4)


@pytest.mark.parametrize("sigma", [4.0, 8.0, 16.0, 24.0])
def test_smoothing_is_a_gaussian_blur_of_the_map(sigma: float) -> None:
    """Against SciPy's full-size Gaussian filter (same reflect border and 3σ support)."""
    rng = np.random.default_rng(0)
    field = ndimage.gaussian_filter(rng.standard_normal((800, 1000)), 12)
    probs = (1 / (1 + np.exp(-8 * field))).astype(np.float32)
    probs[rng.random(probs.shape) < 0.01] = 1.0  # speckle: what the blur is for
    got = smooth_probabilities(torch.from_numpy(probs)[None, None], sigma)[0, 0].numpy()
    want = ndimage.gaussian_filter(probs, sigma, mode="reflect", truncate=3.0)
    gap = np.abs(got - want)
    assert gap.mean() < 0.005 and gap.max() < 0.04, (gap.mean(), gap.max())
    assert np.abs(got - probs).mean() > 0.01  # it did smooth
    flat = torch.full((2, 1, 70, 90), 0.3)
    assert torch.allclose(smooth_probabilities(flat, sigma), flat, atol=1e-6)


def test_smoothing_is_capped_at_a_share_of_the_shorter_side() -> None:
    """On a small map a fixed σ would blur away whole regions: σ is at most 1/32 of the
    shorter side (2 pixels at 64)."""
    probs = torch.rand(1, 1, 64, 200, generator=torch.Generator().manual_seed(0))
    assert torch.equal(smooth_probabilities(probs, 16.0), smooth_probabilities(probs, 2.0))
    assert not torch.equal(smooth_probabilities(probs, 2.0), smooth_probabilities(probs, 1.0))


def test_smoothing_zero_is_the_identity_and_smoothing_is_differentiable() -> None:
    probs = torch.rand(1, 1, 64, 96, requires_grad=True)
    assert smooth_probabilities(probs, 0.0) is probs
    smooth_probabilities(probs, 16.0).sum().backward()
    assert probs.grad is not None and torch.isfinite(probs.grad).all()
    assert probs.grad.abs().sum() > 0


def test_the_model_smooths_as_trained_and_older_models_do_not(tiny_pairs: Path,
                                                              tmp_path: Path) -> None:
    """Smoothing changes validation (so the threshold and the checkpoint kept), never the
    training steps; a model saved before the option existed predicts unsmoothed."""
    runs = {sigma: train(tiny_pairs, tmp_path / f"s{sigma}",
                         TrainConfig(**{**TINY, "steps": 2}, smooth_sigma=sigma), progress=False)
            for sigma in (0.0, 8.0)}
    plain, smooth = _weights(tmp_path / "s0.0" / "last"), _weights(tmp_path / "s8.0" / "last")
    assert all(torch.equal(plain[k], smooth[k]) for k in plain)
    assert runs[0.0].history[-1]["val_f1_best"] != runs[8.0].history[-1]["val_f1_best"]
    model = Localizer.load(tmp_path / "s8.0" / "last")
    assert model.smooth_sigma == 8.0
    image = torch.rand(1, 3, 64, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        raw = torch.sigmoid(model.net.eval()(image))
    assert torch.allclose(model.predict_tensor(image), smooth_probabilities(raw, 8.0), atol=1e-5)
    meta_file = tmp_path / "s8.0" / "last" / "model.json"
    meta = json.loads(meta_file.read_text())
    del meta["config"]["smooth_sigma"]  # as written before the option existed
    meta_file.write_text(json.dumps(meta))
    older = Localizer.load(tmp_path / "s8.0" / "last")
    assert older.smooth_sigma == 0.0
    assert torch.allclose(older.predict_tensor(image), raw, atol=1e-5)
    meta["config"]["smooth_sigma"] = -1
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="smooth_sigma"):
        Localizer.load(tmp_path / "s8.0" / "last")


def test_tiled_prediction_matches_shape(tiny_pairs: Path, tmp_path: Path) -> None:
    train(tiny_pairs, tmp_path / "run", TrainConfig(**{**TINY, "steps": 2}), progress=False)
    model = Localizer.load(tmp_path / "run")
    image = torch.rand(1, 3, 150, 200)
    tiled = model.predict_tensor(image, tile=96, overlap=32)
    assert tiled.shape == (1, 1, 150, 200) and torch.isfinite(tiled).all()
    sigma, model.smooth_sigma = model.smooth_sigma, 0.0  # smoothed once, on the whole map
    raw = model.predict_tensor(image, tile=96, overlap=32)
    assert torch.allclose(tiled, smooth_probabilities(raw, sigma), atol=1e-6)


def test_bad_checkpoints_give_clear_errors(tiny_pairs: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        Localizer.load(tmp_path / "nothing")
    run = tmp_path / "run"
    train(tiny_pairs, run, TrainConfig(**{**TINY, "steps": 2}), progress=False)
    weights = run / "best" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        Localizer.load(run / "best")
    (run / "best" / "model.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt metadata"):
        Localizer.load(run / "best")
    (run / "last" / "model.json").write_text('{"format": "something-else"}')
    with pytest.raises(CheckpointError, match="unknown checkpoint format"):
        Localizer.load(run / "last")


def test_cli_train_then_predict(tiny_pairs: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture) -> None:
    run, out = tmp_path / "run", tmp_path / "pred"
    sets = [arg for k, v in {**TINY, "steps": 2}.items() for arg in ("--set", f"{k}={v}")]
    assert main(["train", str(tiny_pairs), "--out", str(run), *sets]) == 0
    (tiny_pairs / "synthetic" / "broken.png").write_bytes(b"")
    capsys.readouterr()
    code = main(["predict", str(run), str(tiny_pairs / "synthetic"), "--out", str(out)])
    assert code == 1  # one unreadable image: reported, the rest finished
    captured = capsys.readouterr()
    assert "broken.png" in captured.out + captured.err
    assert np.load(out / "p0_heat.npy").shape == (64, 64)
    assert Image.open(out / "p0_mask.png").size == (64, 64)
    assert Image.open(out / "p0_overlay.jpg").height == 64
    rows = (out / "results.csv").read_text().strip().splitlines()
    assert rows[0].startswith("image,name,score") and len(rows) == 5
    assert main(["train", str(tiny_pairs), "--out", str(run), "--set", "stepz=3"]) == 2
    assert "did you mean 'steps'" in capsys.readouterr().err
    # a resume needs only what changes: the run's own config is the starting point
    assert main(["train", str(tiny_pairs), "--out", str(run), "--resume", "--steps", "4",
                 "-q"]) == 0
    assert [e["step"] for e in json.loads((run / "history.json").read_text())] == [2, 4]
    assert main(["train", str(tiny_pairs), "--out", str(run), "--resume", "--set", "lr=0.5",
                 "-q"]) == 2
    assert "different config (lr)" in capsys.readouterr().err
