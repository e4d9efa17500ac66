"""Cross-validation by pair (``benchmark --folds``), the real-pixel losses and the time budget."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from fakeseg.config import TrainConfig
from fakeseg.errors import FakesegError
from fakeseg.evaluation.protocol import ProtocolConfig
from fakeseg.training.losses import pixel_bce, pixel_loss
from fakeseg.training.segmentation import train
from fakeseg.workflows import crossval
from fakeseg.workflows.benchmark import stopped_early
from fakeseg.workflows.crossval import FLIP_SUFFIX, FLOOR, cross_validate, fold_splits, save_cv
from tests.conftest import make_pairs
from tests.test_fakesegment import TINY


def test_folds_test_every_pair_once_and_validate_on_the_training_side() -> None:
    stems = [f"p{i}" for i in range(9)]
    splits = fold_splits(stems, 3, val_fraction=0.25, seed=0)
    assert sorted(s for split in splits for s in split.test) == stems
    for split in splits:
        assert len(split.test) == 3 and len(split.val) == 2 and len(split.train) == 4
        assert not set(split.val) & set(split.test) and not set(split.train) & set(split.test)
        assert sorted(split.train + split.val + split.test) == stems
    assert splits == fold_splits(stems, 3, val_fraction=0.25, seed=0)
    assert splits != fold_splits(stems, 3, val_fraction=0.25, seed=1)
    with pytest.raises(FakesegError, match="folds"):
        fold_splits(stems, 10, val_fraction=0.25, seed=0)


def test_train_pairs_keep_nested_subsets_and_leave_validation_and_test_alone() -> None:
    stems = [f"p{i}" for i in range(9)]
    full = fold_splits(stems, 3, val_fraction=0.25, seed=0)
    smaller = {n: fold_splits(stems, 3, val_fraction=0.25, seed=0, train_pairs=n)
               for n in (1, 2, 4)}
    for fold, split in enumerate(full):
        for n, splits in smaller.items():
            part = splits[fold]
            assert len(part.train) == n and set(part.train) <= set(split.train)
            assert (part.val, part.test) == (split.val, split.test)
        # a learning curve adds pairs: every smaller set lies inside every larger one
        assert set(smaller[1][fold].train) <= set(smaller[2][fold].train)
    assert smaller[4] == full
    with pytest.raises(FakesegError, match="--train-pairs 5"):
        fold_splits(stems, 3, val_fraction=0.25, seed=0, train_pairs=5)
    with pytest.raises(FakesegError, match="--train-pairs 0"):
        fold_splits(stems, 3, val_fraction=0.25, seed=0, train_pairs=0)
    # 10 pairs: folds train on 4, 5 and 5 pairs; the error names the smallest, whichever it is
    uneven = [f"p{i}" for i in range(10)]
    assert sorted(len(s.train) for s in fold_splits(uneven, 3, val_fraction=0.25, seed=0)) == [
        4, 5, 5]
    with pytest.raises(FakesegError, match="smallest fold has 4 training pairs; choose 1 to 4"):
        fold_splits(uneven, 3, val_fraction=0.25, seed=0, train_pairs=5)


def test_cross_validation_scores_every_fold_and_resumes(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_pairs(tmp_path / "pairs", n=6)
    config = TrainConfig(**{**TINY, "steps": 2, "early_stopping": 0})
    protocol = ProtocolConfig(per_pair=1)
    out = tmp_path / "cv"
    result = cross_validate(data, out, entries=[("fs", config)], folds=3, protocol=protocol,
                            flip_tta=["fs"], progress=False)
    assert result.rows == [FLOOR, "fs", "fs" + FLIP_SUFFIX]
    tested = sorted(s for f in result.folds if f.row == "fs" for s in f.test_pairs)
    assert tested == [f"p{i}" for i in range(6)]
    for fold in range(3):
        split = json.loads((out / "repeat0" / f"fold{fold}" / "runs" / "fs" / "split.json")
                           .read_text())
        row = next(f for f in result.folds if f.row == "fs" and f.fold == fold)
        assert split["test"] == row.test_pairs and row.steps == 2
    dice = [f.metrics["controlled"]["dice"] for f in result.folds if f.row == "fs"]
    mean, std = result.summary("fs", "controlled", "dice")
    assert mean == pytest.approx(sum(dice) / 3) and std is not None
    for row in result.folds:  # each test pair scored on its own too
        assert sorted(row.per_pair["controlled"]) == sorted(row.test_pairs)
    files = save_cv(result, out)
    markdown = files["metrics_md"].read_text()
    assert " ± " in markdown and "| fs | 0 | 2 |" in markdown
    assert "## Dice per test pair" in markdown and "| p0 | p1 | p2 | p3 | p4 | p5 |" in markdown
    assert "reported in the paper, different data" in markdown
    assert json.loads(files["metrics_json"].read_text())["summary"]["fs"]["raw"]["dice"][
        "mean"] == pytest.approx(result.summary("fs", "raw", "dice")[0])

    # a rerun reuses every finished fold: nothing is trained or rescored
    def no_training(*args: object, **kwargs: object) -> float:
        raise AssertionError("a finished fold was trained again")

    monkeypatch.setattr(crossval, "train_entry", no_training)
    again = cross_validate(data, out, entries=[("fs", config)], folds=3, protocol=protocol,
                           flip_tta=["fs"], progress=False)
    assert [f.metrics for f in again.folds] == [f.metrics for f in result.folds]
    # a fold whose scores are lost is rescored from its finished run, the others are kept
    monkeypatch.undo()
    (out / "repeat0" / "fold1" / "scores" / "fs.json").unlink()
    weights = out / "repeat0" / "fold1" / "runs" / "fs" / "best" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    third = cross_validate(data, out, entries=[("fs", config)], folds=3, protocol=protocol,
                           flip_tta=["fs"], progress=False)
    assert weights.stat().st_mtime_ns == before
    assert [f.metrics for f in third.folds] == [f.metrics for f in result.folds]


def test_processes_share_a_cross_validation_by_fold_and_never_touch_a_held_run(
        tmp_path: Path) -> None:
    data = make_pairs(tmp_path / "pairs", n=6)
    config = TrainConfig(**{**TINY, "steps": 1, "early_stopping": 0})
    out = tmp_path / "cv"
    kwargs = {"entries": [("fs", config)], "folds": 3, "protocol": ProtocolConfig(per_pair=1),
              "sections": ["controlled"], "progress": False}
    with pytest.raises(FakesegError, match="--only-folds 3: folds are numbered 0 to 2"):
        cross_validate(data, out, only_folds=[3], **kwargs)
    first = cross_validate(data, out, only_folds=[1], **kwargs)
    assert {f.fold for f in first.folds} == {1}
    assert not (out / "repeat0" / "fold0" / "runs" / "fs").exists()
    assert first.missing == ["repeat 1/1, fold 1/3: all synthetic", "repeat 1/1, fold 1/3: fs",
                             "repeat 1/1, fold 3/3: all synthetic", "repeat 1/1, fold 3/3: fs"]
    with pytest.raises(FakesegError, match="4 fold scores are still missing"):
        save_cv(first, out)
    # another process is training fold 0's entry (no checkpoint yet): skipped, left alone
    held = out / "repeat0" / "fold0" / "runs"
    (held / "fs").mkdir(parents=True)
    (held / "fs" / "config.yaml").write_text("another config, mid-run")
    with crossval.folder_lock(held, "benchmark", share=crossval._share("fs")):
        second = cross_validate(data, out, **kwargs)
    assert second.missing == ["repeat 1/1, fold 1/3: fs"]
    assert (held / "fs" / "config.yaml").read_text() == "another config, mid-run"
    assert {(f.row, f.fold) for f in second.folds} == {(FLOOR, 0), (FLOOR, 1), (FLOOR, 2),
                                                        ("fs", 1), ("fs", 2)}
    # once nothing holds it, the last run trains it and gathers every fold, as one process would
    last = cross_validate(data, out, **kwargs)
    assert not last.missing and {f.fold for f in last.folds if f.row == "fs"} == {0, 1, 2}
    alone = cross_validate(data, tmp_path / "alone", **kwargs)
    assert [f.metrics for f in last.folds] == [f.metrics for f in alone.folds]
    assert save_cv(last, out)["metrics_md"].exists()


def test_cross_validation_trains_on_the_asked_number_of_pairs(tmp_path: Path) -> None:
    data = make_pairs(tmp_path / "pairs", n=6)
    config = TrainConfig(**{**TINY, "steps": 1, "early_stopping": 0})
    out = tmp_path / "cv"
    result = cross_validate(data, out, entries=[("fs", config)], folds=2, train_pairs=1,
                            protocol=ProtocolConfig(per_pair=1), sections=["controlled"],
                            progress=False)
    for fold in range(2):
        split = json.loads((out / "repeat0" / f"fold{fold}" / "runs" / "fs" / "split.json")
                           .read_text())
        assert len(split["train"]) == 1 and len(split["test"]) == 3
    assert result.meta["train_pairs"] == 1
    assert "trained on 1 of each fold's training pairs" in save_cv(result, out)[
        "metrics_md"].read_text()


def test_pixel_loss_weights_and_mines_real_pixels() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 8, 8)
    mask = (torch.rand(2, 1, 8, 8) > 0.5).float()
    assert torch.equal(pixel_loss(logits, mask, mask), pixel_bce(logits, mask))
    false_alarm = torch.full((1, 1, 4, 4), -4.0)
    false_alarm[0, 0, 0, 0] = 4.0  # one real pixel flagged
    real = torch.zeros_like(false_alarm)
    plain = pixel_loss(false_alarm, real, real)
    assert pixel_loss(false_alarm, real, real, real_weight=2.0) == pytest.approx(2 * plain)
    hardest = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(4.0), torch.tensor(0.0))
    mined = pixel_loss(false_alarm, real, real, hard_negative_fraction=1 / 16)
    assert mined == pytest.approx(plain + hardest)


def test_time_budget_and_early_stopping_end_a_run(tmp_path: Path) -> None:
    data = make_pairs(tmp_path / "pairs", n=5)
    config = TrainConfig(**{**TINY, "steps": 6, "early_stopping": 0, "minutes": 1e-6})
    result = train(data, tmp_path / "run", config, progress=False)
    assert result.steps == 2 and result.stopped_early  # one epoch, then over budget
    assert stopped_early(result.history, config)
    patience = TrainConfig(early_stopping=2)
    history = [{"val_f1_best": v} for v in (0.5, 0.7, 0.6, 0.7)]
    assert stopped_early(history, patience)  # no strict gain for 2 epochs
    assert not stopped_early(history[:3], patience)


def test_rescoring_loads_only_the_run_that_was_scored(tmp_path: Path) -> None:
    """A run folder replaced after scoring (another config's training, here interrupted) is an
    error for the scripts that rescore runs, never a model silently taken for the scored one."""
    data = make_pairs(tmp_path / "pairs", n=4)
    config = TrainConfig(**{**TINY, "steps": 2, "early_stopping": 0})
    out = tmp_path / "cv"
    cross_validate(data, out, entries=[("fs", config)], folds=2,
                   protocol=ProtocolConfig(per_pair=1), sections=["controlled"], progress=False)
    assert crossval.scored_run(out, 0, 0, "fs") == out / "repeat0" / "fold0" / "runs" / "fs"
    with pytest.raises(FakesegError, match="no readable scores of 'other'"):
        crossval.scored_run(out, 0, 0, "other")
    run = out / "repeat0" / "fold1" / "runs" / "fs"
    shutil.rmtree(run)  # as the benchmark does before training another config there
    train(data, run, TrainConfig(**{**TINY, "steps": 4, "early_stopping": 0, "lr": 5e-4}),
          progress=False, stop_after=2)
    with pytest.raises(FakesegError, match="not the finished run its scores"):
        crossval.scored_run(out, 0, 1, "fs")
