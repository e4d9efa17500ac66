"""Training from images + masks (MediaEval Task B), then evaluate in mask mode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fakeseg.cli import main
from fakeseg.config import TrainConfig
from fakeseg.data.masked import MaskOptions, index_masked, load_masked
from fakeseg.errors import DataError, FakesegError
from fakeseg.evaluation.evaluate import ALL_IMAGES, UNDEFINED_CELL, evaluate_masks, save_evaluation
from fakeseg.inference.localizer import Localizer
from fakeseg.io import write_image
from fakeseg.training.masked import DATA_FILE, train_masked
from tests.conftest import smooth_image
from tests.test_fakesegment import TINY


def make_task_b(root: Path, sources: dict[str, int], seed: int = 0,
                size: tuple[int, int] = (64, 64)) -> tuple[Path, Path]:
    """Manipulated images (a blocky, posterised rectangle) and 0/255 masks; a source named
    ``real`` is left untouched with empty masks."""
    rng = np.random.default_rng(seed)
    height, width = size
    images, masks = root / "images", root / "masks"
    index = 0
    for source, count in sources.items():
        for _ in range(count):
            image = smooth_image(rng, height, width)
            mask = np.zeros(size, bool)
            if source != "real":
                top, left = int(rng.integers(0, height // 2)), int(rng.integers(0, width // 2))
                mask[top:top + height // 2, left:left + width // 2] = True
                block = image[::4, ::4].repeat(4, 0).repeat(4, 1)
                image = np.where(mask[..., None], np.round(block * 4) / 4, image)
            name = f"{index}_{source}_fake"
            write_image(images / f"{name}.png", image)
            write_image(masks / f"{name}.png", mask.astype(np.uint8) * 255)
            index += 1
    return images, masks


@pytest.fixture(scope="module")
def task_b(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("taskb")
    images, masks = make_task_b(root / "train", {"biggan": 8})
    run = root / "run"
    train_masked(images, masks, run, TrainConfig(**TINY), progress=False)
    return images, masks, run


def test_train_from_masks_then_evaluate_held_out(task_b: tuple[Path, Path, Path],
                                                 tmp_path: Path) -> None:
    images, masks, run = task_b
    split = json.loads((run / "split.json").read_text())
    assert sorted(split["train"] + split["val"] + split["test"]) == sorted(
        p.stem for p in images.iterdir())
    meta = json.loads((run / "best" / "model.json").read_text())
    assert meta["kind"] == "segmenter" and meta["masks"] == str(masks.resolve())
    assert meta["config"]["target_mode"] == "mask" and meta["layers"]
    model = Localizer.load(run, device="cpu")
    assert model.predict(np.zeros((40, 48, 3), np.float32)).probability.shape == (40, 48)
    held_images, held_masks = make_task_b(tmp_path / "held", {"biggan": 3, "real": 2}, seed=5)
    result = evaluate_masks(run, held_images, held_masks, source_pattern=r"_([a-z]+)_fake",
                            device="cpu", progress=False)
    assert set(result.sections) == {ALL_IMAGES, "source: biggan", "source: real"}
    overall = result.method("model").overall
    for key in ("dice", "iou", "pixel_accuracy", "miou"):
        assert 0.0 <= overall[key] <= 1.0
    assert overall["n_images"] == 3  # pixel metrics: the images with synthetic pixels
    real = result.method("model", "source: real")
    assert not real.pixels_defined and real.image_level["n_positive"] == 0
    markdown = save_evaluation(result, tmp_path / "ev")["metrics_md"].read_text()
    assert "pixel acc" in markdown and "mIoU" in markdown and UNDEFINED_CELL in markdown
    assert "| real | model | 2 | 0 |" in markdown


def test_evaluating_the_training_folder_scores_only_its_test_images(
        task_b: tuple[Path, Path, Path]) -> None:
    images, masks, run = task_b
    test = json.loads((run / "split.json").read_text())["test"]
    result = evaluate_masks(run, images, masks, device="cpu", progress=False)
    assert result.meta["split_note"] == "test images of the model's split"
    assert result.method("model").overall["n_images"] == len(test)


def test_resume_and_its_data_check(tmp_path: Path) -> None:
    images, masks = make_task_b(tmp_path, {"biggan": 6})
    config = TrainConfig(**TINY)
    train_masked(images, masks, tmp_path / "run", config, progress=False, stop_after=2)
    with pytest.raises(FakesegError, match="mask_options"):
        train_masked(images, masks, tmp_path / "run", config, resume=True, progress=False,
                     options=MaskOptions(invert=True))
    resumed = train_masked(images, masks, tmp_path / "run", config, resume=True,
                           progress=False)
    assert resumed.steps == config.steps
    assert json.loads((tmp_path / "run" / DATA_FILE).read_text())["images"] == str(
        images.resolve())


def test_missing_masks_are_named_or_all_real(tmp_path: Path) -> None:
    images, masks = make_task_b(tmp_path, {"biggan": 5})
    (masks / "1_biggan_fake.png").unlink()
    with pytest.raises(DataError, match=r"1_biggan_fake.*--missing-mask real"):
        index_masked(images, masks)
    dataset = index_masked(images, masks, MaskOptions(missing="real"))
    item = next(i for i in dataset.items if i.stem == "1_biggan_fake")
    assert item.mask is None and not load_masked(item, dataset.options).mask.any()
    with pytest.raises(FakesegError, match="target_mode=mask"):
        train_masked(images, masks, tmp_path / "run",
                     TrainConfig(**{**TINY, "target_mode": "heatmap"}), progress=False)
    with pytest.raises(FakesegError, match="scale_jitter apply to paired training only"):
        train_masked(images, masks, tmp_path / "run",
                     TrainConfig(**{**TINY, "scale_jitter": 0.2}), progress=False)


def test_masks_0_1_inverted_and_resized(tmp_path: Path) -> None:
    images, masks = tmp_path / "i", tmp_path / "m"
    write_image(images / "a.png", np.zeros((16, 16, 3), np.float32))
    small = np.zeros((8, 8), np.uint8)
    small[:4] = 1  # a 0/1 mask of half the size
    write_image(masks / "a.png", small)
    item = index_masked(images, masks).items[0]
    with pytest.raises(DataError, match="--resize-masks"):
        load_masked(item, MaskOptions())
    mask = load_masked(item, MaskOptions(resize=True)).mask
    assert mask.shape == (16, 16) and mask[:8].all() and not mask[8:].any()
    assert not load_masked(item, MaskOptions(resize=True, invert=True)).mask[:8].any()


def test_cli_trains_a_baseline_from_masks(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    images, masks = make_task_b(tmp_path, {"biggan": 5, "real": 1})
    (masks / "5_real_fake.png").unlink()
    run = tmp_path / "run"
    settings = {**TINY, "steps": 2}
    overrides = [arg for key, value in settings.items() if key != "decoder_channels"
                 for arg in ("--set", f"{key}={value}")]
    argv = ["train", "--images", str(images), "--masks", str(masks), "--out", str(run),
            "--set", "model=unet_rgb", *overrides, "--quiet"]
    assert main(argv) == 2  # the image without a mask is named
    assert "5_real_fake" in capsys.readouterr().err
    assert main([*argv, "--missing-mask", "real"]) == 0
    assert json.loads((run / "best" / "model.json").read_text())["model"] == "unet_rgb"
    assert main(["train", str(tmp_path), "--images", str(images), "--out",
                 str(tmp_path / "x")]) == 2
