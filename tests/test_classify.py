"""Real-vs-synthetic classifier: backbones, data parsing, sampling, train/eval/predict."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from fakeseg.cli import main
from fakeseg.config import ClassifierConfig
from fakeseg.data.labeled import (
    DEFAULT_SOURCE_PATTERN,
    LabeledImage,
    balanced_sampler,
    load_labeled,
    source_of,
    split_items,
)
from fakeseg.detection.evaluate import classify_eval, classify_predict, heatmap_scores
from fakeseg.errors import DataError, FakesegError
from fakeseg.features.trunks import CLASSIFIER_BACKBONES, TRUNKS, build_trunk
from fakeseg.io import write_image
from fakeseg.models.classifier import build_classifier, load_classifier
from fakeseg.training.classification import train_classifier
from fakeseg.training.trainer import TrainResult

SIZE = 48


def _image(rng: np.random.Generator, synthetic: bool) -> np.ndarray:
    """Smooth random texture; the synthetic class adds a ±0.15 pixel checkerboard."""
    noise = ndimage.gaussian_filter(rng.random((SIZE, SIZE, 3)), (3, 3, 0))
    image = (noise - noise.mean()) * 4 + 0.5
    if synthetic:
        yy, xx = np.mgrid[:SIZE, :SIZE]
        image = image + 0.15 * (((yy + xx) % 2) * 2 - 1)[:, :, None]
    return np.clip(image, 0, 1)


def make_set(root: Path, n: int, seed: int, *, fake_name: str = "fake",
             n_real: int | None = None) -> Path:
    """n real + n synthetic images named N_genK_{real,fake}.png (two 'generators')."""
    rng = np.random.default_rng(seed)
    for i in range(n if n_real is None else n_real):
        write_image(root / "real" / f"{i}_gen{i % 2}_real.png", _image(rng, False))
    for i in range(n):
        write_image(root / fake_name / f"{i}_gen{i % 2}_fake.png", _image(rng, True))
    return root


TINY = {"backbone": "tiny_cnn", "weights": "random", "epochs": 3, "batch_size": 16, "lr": 3e-3,
        "size": SIZE, "augment": ["flip"]}


def classify_train(data: object, out: Path, resume: bool = False, **options: object
                   ) -> TrainResult:
    return train_classifier(data, out, ClassifierConfig(**options),  # type: ignore[arg-type]
                            resume=resume, progress=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, TrainResult]:
    root = tmp_path_factory.mktemp("cls")
    data = make_set(root / "train", 32, seed=0)
    held_out = make_set(root / "test", 10, seed=1)
    result = classify_train(data, root / "run", **TINY)
    return root / "run", held_out, result


@pytest.mark.parametrize("name", [*CLASSIFIER_BACKBONES, "inception_v3"])
def test_every_registered_trunk_builds_randomly_and_runs(name: str) -> None:
    side = max(32, TRUNKS[name].min_size)
    with torch.no_grad():
        if name in CLASSIFIER_BACKBONES:
            out = build_classifier(name, "random").eval()(torch.rand(2, 3, side, side))
            assert out.shape == (2,)
        else:
            out = build_trunk(name, "random").eval()(torch.rand(2, 3, side, side))
            assert out.shape == (2, TRUNKS[name].dims)
    assert torch.isfinite(out).all()


def test_missing_torchvision_weights_say_what_to_download(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("FAKESEG_OFFLINE", "1")
    with pytest.raises(FakesegError, match=r"efficientnet_b0.*download https://download\.pytorch"
                                           r"\.org/models/efficientnet_b0"):
        build_classifier("efficientnet_b0", "auto")
    with pytest.raises(FakesegError, match="no pretrained weights"):
        build_classifier("tiny_cnn", "auto")
    with pytest.raises(FakesegError, match="did you mean 'densenet121'"):
        build_classifier("densenet12", "random")


def test_train_eval_predict_learns_the_checkerboard(trained: tuple[Path, Path, TrainResult],
                                                    tmp_path: Path) -> None:
    run, held_out, _ = trained
    meta = json.loads((run / "best" / "model.json").read_text())
    assert meta["n_train"] + meta["n_val"] == 64 and meta["n_val"] >= 2
    assert (run / "best" / "model.safetensors").exists() and (run / "split.json").exists()
    meta = json.loads((run / "best" / "model.json").read_text())
    assert meta["kind"] == "classifier" and meta["weights_tag"] == "random"
    assert meta["config"]["seed"] == 0 and "torch" in meta["versions"]
    result = classify_eval(run, held_out, tmp_path / "eval", progress=False)
    assert result["overall"]["roc_auc"] > 0.85
    assert set(result["per_source"]) == {"gen0", "gen1", "all"}
    assert result["n_seen_in_training"] == 0
    for name in ("metrics.json", "metrics.md", "predictions.csv"):
        assert (tmp_path / "eval" / name).exists()
    assert "| gen0 |" in (tmp_path / "eval" / "metrics.md").read_text()
    out = classify_predict(run, [str(held_out / "fake")], tmp_path / "pred", progress=False)
    rows = list(csv.reader((tmp_path / "pred" / "predictions.csv").open()))
    assert rows[0] == ["image", "probability_synthetic"] and len(rows) == 11 == out["n"] + 1
    assert all(0.0 <= float(r[1]) <= 1.0 for r in rows[1:])
    first = sorted((held_out / "fake").iterdir())[0]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a_bad.png").write_bytes(b"not an image")
    (broken / first.name).write_bytes(first.read_bytes())
    assert main(["classify", "predict", str(run), str(broken), "--out", str(tmp_path / "p2"),
                 "-q"]) == 1  # the unreadable file is named and skipped; the rest is scored
    rows = list(csv.reader((tmp_path / "p2" / "predictions.csv").open()))
    assert len(rows) == 2 and rows[1][0].endswith(first.name)


def test_classifier_runs_appear_in_the_report(trained: tuple[Path, Path, TrainResult],
                                              tmp_path: Path) -> None:
    from fakeseg.reporting import report

    run, _, result = trained
    assert {"loss_bce", "val_balanced_accuracy", "val_roc_auc"} <= set(result.history[-1])
    page = report([run], tmp_path / "r.html").read_text()
    assert "Classifier runs (classify train)" in page and "Training runs" not in page


def test_split_is_seeded_stratified_and_saved(trained: tuple[Path, Path, TrainResult]) -> None:
    run, _, _ = trained
    split = json.loads((run / "split.json").read_text())
    items = [LabeledImage(Path(r["path"]), r["label"], r["source"])
             for r in split["train"] + split["val"]]
    _, val = split_items(items, 0.2, 0)
    assert [str(i.path) for i in val] == [r["path"] for r in split["val"]]
    assert sorted(i.label for i in val) == [0] * 6 + [1] * 6


def test_resume_continues_a_run(tmp_path: Path) -> None:
    data = make_set(tmp_path / "d", 8, seed=3)
    options = {**TINY, "epochs": 1}
    classify_train(data, tmp_path / "run", **options)
    with pytest.raises(FakesegError, match="already holds a run"):
        classify_train(data, tmp_path / "run", **options)
    with pytest.raises(FakesegError, match=r"different config.*lr"):
        classify_train(data, tmp_path / "run", **{**options, "lr": 0.1}, resume=True)
    resumed = classify_train(data, tmp_path / "run", **{**options, "epochs": 2}, resume=True)
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    # a resume without a config continues with the saved one (here: nothing left to train)
    again = train_classifier(data, tmp_path / "run", resume=True, progress=False)
    assert [h["epoch"] for h in again.history] == [1, 2]
    assert (tmp_path / "run" / "config.yaml").exists()  # the one run-folder format


def test_same_seed_same_run(tmp_path: Path) -> None:
    data = make_set(tmp_path / "d", 6, seed=4)
    options = {**TINY, "epochs": 1, "augment": ("flip", "rotate", "jitter", "blur", "jpeg")}
    first = classify_train(data, tmp_path / "a", **options)
    second = classify_train(data, tmp_path / "b", **options)
    timing = {"elapsed_s", "steps_per_s"}
    strip = [{k: v for k, v in h.items() if k not in timing} for h in first.history]
    assert strip == [{k: v for k, v in h.items() if k not in timing} for h in second.history]
    assert (tmp_path / "a" / "split.json").read_text() == (tmp_path / "b" / "split.json"
                                                           ).read_text()


def test_weighted_sampler_balances_an_imbalanced_set() -> None:
    labels = [0] * 60 + [1] * 6
    sampler = balanced_sampler(labels, num_samples=6000,
                               generator=torch.Generator().manual_seed(0))
    drawn = np.array([labels[i] for i in sampler])
    assert abs(drawn.mean() - 0.5) < 0.03
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.tensor(labels)), batch_size=16,
        sampler=balanced_sampler(labels, num_samples=1600,
                                 generator=torch.Generator().manual_seed(1)))
    fractions = [float(batch[0].float().mean()) for batch in loader]
    assert abs(np.mean(fractions) - 0.5) < 0.05


def test_folders_csv_and_sources(tmp_path: Path) -> None:
    data = make_set(tmp_path / "synth", 2, seed=0, fake_name="synthetic")
    items = load_labeled(data)
    assert [i.label for i in items] == [0, 0, 1, 1]
    assert [i.source for i in items] == ["gen0", "gen1", "gen0", "gen1"]
    assert load_labeled(make_set(tmp_path / "fake", 1, seed=0))[1].label == 1
    assert source_of(Path("12_stylegan2-ffhq_fake.jpg"), DEFAULT_SOURCE_PATTERN) == (
        "stylegan2-ffhq")
    assert source_of(Path("photo.jpg"), DEFAULT_SOURCE_PATTERN) is None
    files = sorted((data / "real").iterdir()) + sorted((data / "synthetic").iterdir())
    table = tmp_path / "labels.csv"
    table.write_text("path,label,source\n"
                     f"{files[0]},real,cam\n"
                     f"synth/real/{files[1].name},0,\n"
                     f"{files[2]},Fake,sd\n"
                     f"{files[3]},1,sd\n")
    from_csv = load_labeled(table)
    assert [i.label for i in from_csv] == [0, 0, 1, 1]
    assert [i.source for i in from_csv] == ["cam", "gen1", "sd", "sd"]
    headless = tmp_path / "plain.csv"
    headless.write_text(f"{files[0]},0\n{files[2]},synthetic\n")
    assert [i.label for i in load_labeled(headless)] == [0, 1]


def test_bad_inputs_give_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "empty" / "real").mkdir(parents=True)
    (tmp_path / "empty" / "fake").mkdir()
    with pytest.raises(FakesegError, match=r"empty/real: no images found") as info:
        load_labeled(tmp_path / "empty")
    assert "\n" not in str(info.value)
    (tmp_path / "half" / "real").mkdir(parents=True)
    with pytest.raises(DataError, match="no synthetic/ or fake/ folder"):
        load_labeled(tmp_path / "half")
    with pytest.raises(DataError, match="no real/ folder"):
        load_labeled(tmp_path / "empty" / "fake")
    image = make_set(tmp_path / "one", 1, seed=0) / "real" / "0_gen0_real.png"
    bad = tmp_path / "bad.csv"
    bad.write_text(f"path,label\n{image},0\n{image},maybe\n")
    with pytest.raises(DataError, match=r"bad\.csv:3: label 'maybe' is not 0/1"):
        load_labeled(bad)
    missing = tmp_path / "missing.csv"
    missing.write_text("path,label\nnope.png,1\n")
    with pytest.raises(DataError, match=r"missing\.csv:2: no such image"):
        load_labeled(missing)
    only_real = tmp_path / "only_real.csv"
    only_real.write_text(f"{image},0\n")
    with pytest.raises(DataError, match="no synthetic images"):
        classify_train(only_real, tmp_path / "run", **TINY)
    with pytest.raises(FakesegError, match="unknown augmentation 'mixup'"):
        classify_train(only_real, tmp_path / "run", **{**TINY, "augment": ["mixup"]})


def test_heatmap_scorer_uses_fakesegment_coverage(tmp_path: Path) -> None:
    from fakeseg.inference.localizer import Localizer
    from fakeseg.models.registry import build_model

    config = {"model": "unet_rgb",
              "model_options": {"encoder_depth": 3, "decoder_channels": [16, 8, 8]}}
    torch.manual_seed(0)
    Localizer(build_model(config), {"kind": "segmenter", "config": config,
                                    "threshold": 0.5}).save(tmp_path / "seg")
    data = make_set(tmp_path / "d", 3, seed=0)
    items = load_labeled(data)
    scores = heatmap_scores(tmp_path / "seg", [i.path for i in items], progress=False)
    expected = Localizer.load(tmp_path / "seg", device="cpu").predict(items[0].path).score
    assert scores.shape == (6,) and scores[0] == pytest.approx(expected)
    result = classify_eval(tmp_path / "seg", data, tmp_path / "eval", scorer="heatmap",
                           device="cpu", progress=False)
    assert result["score"] == "flagged_fraction" and result["threshold"] == 0.05
    assert (tmp_path / "eval" / "metrics.md").exists()
    with pytest.raises(FakesegError, match="not a classifier"):
        load_classifier(tmp_path / "seg")
