"""fakeseg enhance: the soft mask, the refiner, blend mode's exactness, the judges' rules."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fakeseg.config import EnhanceConfig, TrainConfig
from fakeseg.enhance import judge_spaces
from fakeseg.enhance.masks import soft_mask
from fakeseg.enhance.refiner import Refiner
from fakeseg.enhance.run import blend_frame, enhance, save_enhancement
from fakeseg.errors import FakesegError
from fakeseg.inference.localizer import Localizer
from fakeseg.io import read_image, write_image
from fakeseg.reporting import report
from fakeseg.training.segmentation import train
from tests.conftest import make_pairs, smooth_image

CRITIC = dict(backbone_weights="random", crop_size=64, batch_size=4, steps=2, steps_per_epoch=2,
              encoder="resnet18", reduce_channels=8, amp=False, device="cpu",
              val_fraction=0.25, test_fraction=0.25, p_reencode=0.0,
              decoder_channels=[32, 16, 8, 8])
#: a 64-d random feature space keeps the FD's matrix square roots cheap in tests
FD = dict(fd_features="tiny_cnn", fd_weights="random")
TINY = dict(encoder_depth=3, decoder_channels=[16, 8, 8], crop_size=64, batch_size=2, steps=2,
            steps_per_epoch=2, style_weights="random", device="cpu")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Paired data (96 px), a tiny critic and an independent judge (another seed, same split)."""
    root = tmp_path_factory.mktemp("enhance")
    data = make_pairs(root / "pairs", n=6, size=(96, 96))
    critic, judge = root / "critic", root / "judge"
    train(data, critic, TrainConfig(**CRITIC), progress=False)  # type: ignore[arg-type]
    judge.mkdir()
    shutil.copy(critic / "split.json", judge / "split.json")
    train(data, judge, TrainConfig(**{**CRITIC, "seed": 1}), progress=False)  # type: ignore[arg-type]
    return data, critic, judge


def test_soft_mask_is_exactly_zero_on_every_unflagged_pixel() -> None:
    probability = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(0)) * 0.49
    probability[..., 10:50, 10:50] = 0.9
    probability[..., 30, 30] = 0.3  # an unflagged hole inside the flagged square
    probability[..., 10:50, 40] = 0.5  # exactly the threshold: flagged
    mask = soft_mask(probability, 0.5, feather_sigma=2.0)
    unflagged = probability < 0.5
    assert (mask[unflagged] == 0).all()  # nothing dilated or blurred outward
    assert float(mask[0, 0, 20, 20]) == pytest.approx(1.0, abs=1e-3)  # deep inside
    assert 0 < float(mask[0, 0, 10, 25]) < float(mask[0, 0, 12, 25]) < 1  # feathered inward
    assert float(mask[0, 0, 30, 31]) < 0.95  # lowered next to the hole
    hard = soft_mask(probability, 0.5, feather_sigma=0.0)
    assert torch.equal(hard, (probability >= 0.5).float())


def test_refiner_changes_nothing_where_the_mask_is_zero() -> None:
    torch.manual_seed(0)
    refiner = Refiner(EnhanceConfig(**TINY))  # type: ignore[arg-type]
    x = torch.rand(1, 3, 40, 48)
    h = torch.zeros(1, 1, 40, 48)
    h[..., :, 24:] = 1.0
    assert torch.equal(refiner(x, h), x)  # untrained: the identity (zero last conv)
    torch.nn.init.normal_(refiner.unet.segmentation_head[0].weight, std=1.0)
    out = refiner(x, h)
    assert torch.equal(out[..., :24], x[..., :24])
    assert (out[..., 24:] - x[..., 24:]).abs().max() <= refiner.max_delta + 1e-6
    assert not torch.equal(out[..., 24:], x[..., 24:])


def test_blend_is_bit_identical_outside_the_soft_mask(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    write_image(tmp_path / "in.png", smooth_image(rng, 40, 40))
    image = read_image(tmp_path / "in.png")
    enhanced = smooth_image(rng, 40, 40)
    mask = np.zeros((40, 40), np.float32)
    mask[10:20, 5:35] = np.linspace(0.001, 1.0, 30, dtype=np.float32)
    out = blend_frame(image, enhanced, mask)
    original = np.asarray(Image.open(tmp_path / "in.png").convert("RGB"))
    assert np.array_equal(out[mask == 0], original[mask == 0])
    assert not np.array_equal(out[mask > 0.5], original[mask > 0.5])
    with pytest.raises(FakesegError, match="same-size"):
        blend_frame(image, enhanced[:30], mask)


def test_blend_mode_end_to_end_keeps_unmasked_pixels(runs: tuple[Path, Path, Path],
                                                     tmp_path: Path) -> None:
    data, critic, judge = runs
    frames = tmp_path / "frames"
    for path in sorted((data / "synthetic").iterdir()):
        write_image(frames / f"{path.stem}.png", 1.0 - read_image(path))
    result = enhance(critic, [str(data / "synthetic")], tmp_path / "out", enhanced=frames,
                     judge=judge, real=data / "real", progress=False, **FD)
    assert result.mode == "blend" and len(result.items) == 6
    critic_model = Localizer.load(critic)
    for item in result.items:
        original = np.asarray(Image.open(item.source).convert("RGB"))
        unflagged = critic_model.predict(item.image).probability < critic_model.threshold
        assert np.array_equal(item.output[unflagged], original[unflagged])
        assert np.array_equal(item.output[item.mask == 0], original[item.mask == 0])
    assert result.verification.headline.psnr_unflagged_db is None  # identical: ∞ dB
    save_enhancement(result, tmp_path / "out")
    written = np.asarray(Image.open(tmp_path / "out" / "images" / f"{result.items[0].name}.png"))
    assert np.array_equal(written, result.items[0].output)
    page = report([tmp_path / "out"], tmp_path / "report.html").read_text()
    assert "Targeted enhancement" in page and "independent critic mean unrealism" in page
    assert page.count("data:image/png") >= 2 * len(result.items)  # triptych + heat maps


def test_learned_mode_leaves_unflagged_pixels_bit_identical_and_pulls_toward_the_partner(
        runs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    data, critic, judge = runs
    # only the paired pixel term: G must move flagged pixels toward their real partners
    # (12 steps moved them by less than 8-bit rounding; 60 lower |G(x) − R| by ~3 %)
    config = EnhanceConfig(**{**TINY, "steps": 60, "steps_per_epoch": 60, "lr": 3e-3,  # type: ignore[arg-type]
                              "critic_weight": 0.0, "style_weight": 0.0,
                              "identity_weight": 0.0, "paired_weight": 1.0,
                              "paired_feature_weight": 0.0, "feather_sigma": 1.0})
    result = enhance(critic, [str(data)], tmp_path / "out", config=config, judge=judge,
                     split="train", progress=False, **FD)
    critic_model = Localizer.load(critic)
    before, after = [], []
    for item in result.items:
        original = np.asarray(Image.open(item.source).convert("RGB"))
        unflagged = critic_model.predict(item.image).probability < critic_model.threshold
        assert np.array_equal(item.output[unflagged], original[unflagged])
        assert item.real is not None
        inside = item.mask > 0
        before.append(np.abs(item.image - item.real)[inside].mean())
        after.append(np.abs(item.output / 255.0 - item.real)[inside].mean())
    assert result.verification.headline.psnr_unflagged_db is None  # identical: ∞ dB
    assert sum(m.mask.sum() for m in result.items) > 0  # the critic flagged something
    assert np.mean(after) < np.mean(before)


def test_paired_terms_are_off_without_real_partners(runs: tuple[Path, Path, Path],
                                                    tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    data, critic, _ = runs
    config = EnhanceConfig(**{**TINY, "steps": 1, "paired_weight": 1.0})  # type: ignore[arg-type]
    result = enhance(critic, [str(data / "synthetic")], tmp_path / "a", config=config,
                     real=data / "real", progress=False, **FD)
    assert "the paired terms" in capsys.readouterr().err
    history = json.loads((tmp_path / "a" / "refiner" / "history.json").read_text())
    assert "loss_paired" not in history[-1] and "loss_style" in history[-1]
    assert result.verification.headline.pair_oracle_before is None  # no partners to judge by


def test_the_critic_it_trained_against_is_refused_as_judge(runs: tuple[Path, Path, Path],
                                                           tmp_path: Path) -> None:
    data, critic, _ = runs
    config = EnhanceConfig(**TINY)  # type: ignore[arg-type]
    with pytest.raises(FakesegError, match="the critic the refiner trained against"):
        enhance(critic, [str(data)], tmp_path / "a", config=config, judge=critic,
                progress=False)
    copy = tmp_path / "copy"
    shutil.copytree(critic, copy)  # the same weights under another name
    with pytest.raises(FakesegError, match="same run or same weights"):
        enhance(critic, [str(data)], tmp_path / "b", config=config, judge=copy / "best",
                progress=False)


@pytest.mark.slow  # trains the refiner twice
def test_learned_mode_headline_comes_from_the_independent_judge(
        runs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    data, critic, judge = runs
    out = tmp_path / "out"
    config = EnhanceConfig(**TINY)  # type: ignore[arg-type]
    result = enhance(critic, [str(data)], out, config=config, judge=judge, split="all",
                     progress=False, **FD)
    assert result.mode == "learned" and len(result.items) == 6
    judge_model, critic_model = Localizer.load(judge), Localizer.load(critic)
    before = np.mean([judge_model.predict(i.image).probability.mean() for i in result.items])
    after = np.mean([judge_model.predict(i.output).probability.mean() for i in result.items])
    head = result.verification.headline
    assert head.independent_critic_before == pytest.approx(before, rel=1e-5)
    assert head.independent_critic_after == pytest.approx(after, rel=1e-5)
    own = np.mean([critic_model.predict(i.image).probability.mean() for i in result.items])
    assert abs(head.independent_critic_before - own) > 1e-6  # not the training critic's
    assert head.pair_oracle_before is not None and head.pair_oracle_before > 0
    assert head.fd_before is not None and head.fd_after is not None
    # auto spaces: the refiner's losses in the critic's backbone, the oracle in the other family
    critic_space = result.verification.critic_backbone
    assert result.config["style_backbone"] == critic_space != "auto"
    assert result.verification.oracle_backbone == judge_spaces(critic_space)[0] != critic_space
    for item in result.items:  # pixels outside the soft mask are the input's, exactly
        assert np.array_equal(item.output[item.mask == 0],
                              (np.clip(item.image, 0, 1) * 255 + 0.5).astype(np.uint8)[
                                  item.mask == 0])
    path = save_enhancement(result, out, command="test")
    saved = json.loads(path.read_text())
    assert saved["headline"]["independent_critic_fall"] == head.independent_critic_fall
    assert "training_critic_fall_optimistic" in saved["headline"]
    assert (out / "figures" / f"{result.items[0].name}_triptych.png").exists()
    assert (out / "refiner" / "config.yaml").exists()
    assert (out / "refiner" / "best" / "model.safetensors").exists()
    # --resume continues the refiner run: only the run length may change
    enhance(critic, [str(data)], out, config=EnhanceConfig(**{**TINY, "steps": 4}),  # type: ignore[arg-type]
            judge=judge, resume=True, progress=False, **FD)
    history = json.loads((out / "refiner" / "history.json").read_text())
    assert [h["step"] for h in history] == [2, 4]
    with pytest.raises(FakesegError, match="different config"):
        enhance(critic, [str(data)], out, config=EnhanceConfig(**{**TINY, "lr": 0.1}),  # type: ignore[arg-type]
                judge=judge, resume=True, progress=False)


def test_config_is_validated() -> None:
    with pytest.raises(FakesegError, match="decoder_channels"):
        EnhanceConfig(decoder_channels=[8]).validate()
    with pytest.raises(FakesegError, match="crop_size"):
        EnhanceConfig(crop_size=100).validate()
    with pytest.raises(FakesegError, match="learns nothing"):
        EnhanceConfig(critic_weight=0, style_weight=0, paired_weight=0,
                      paired_feature_weight=0).validate()
    assert EnhanceConfig().validate() == EnhanceConfig()


def test_a_concatenated_critic_has_no_automatic_independent_judge() -> None:
    assert judge_spaces("efficientnet_lite0") == ("ssdlite_mobilenet_v2", "mobilenet_v2")
    with pytest.raises(FakesegError, match="spans both installed families"):
        judge_spaces("efficientnet_lite0+ssdlite_mobilenet_v2")
