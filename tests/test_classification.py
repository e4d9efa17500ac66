"""training/classification.py: the image classifier through the one Trainer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fakeseg.data.labeled import LabeledImage, split_items
from fakeseg.errors import DataError, FakesegError
from fakeseg.training.classification import train_classifier
from fakeseg.training.trainer import TIMING_FIELDS
from tests.labeled_sets import TINY, TrainedClassifier, classify_train, make_set


def test_classifier_runs_appear_in_the_report(trained_classifier: TrainedClassifier,
                                              tmp_path: Path) -> None:
    from fakeseg.reporting import report

    run, _, result = trained_classifier
    assert {"loss_bce", "val_balanced_accuracy", "val_roc_auc"} <= set(result.history[-1])
    page = report([run], tmp_path / "r.html").read_text()
    assert "Classifier runs (classify train)" in page and "Training runs" not in page


def test_split_is_seeded_stratified_and_saved(trained_classifier: TrainedClassifier) -> None:
    run, _, _ = trained_classifier
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
    strip = [{k: v for k, v in h.items() if k not in TIMING_FIELDS} for h in first.history]
    assert strip == [{k: v for k, v in h.items() if k not in TIMING_FIELDS}
                     for h in second.history]
    assert (tmp_path / "a" / "split.json").read_text() == (tmp_path / "b" / "split.json"
                                                           ).read_text()


def test_a_class_missing_or_an_unknown_augmentation_is_one_line(tmp_path: Path) -> None:
    image = make_set(tmp_path / "one", 1, seed=0) / "real" / "0_gen0_real.png"
    only_real = tmp_path / "only_real.csv"
    only_real.write_text(f"{image},0\n")
    with pytest.raises(DataError, match="no synthetic images"):
        classify_train(only_real, tmp_path / "run", **TINY)
    with pytest.raises(FakesegError, match="unknown augmentation 'mixup'"):
        classify_train(only_real, tmp_path / "run", **{**TINY, "augment": ["mixup"]})
