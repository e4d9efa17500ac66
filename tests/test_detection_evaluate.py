"""detection/evaluate.py: classify eval (model and heat-map scorers) and classify predict."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from fakeseg.cli import main
from fakeseg.data.labeled import load_labeled
from fakeseg.detection.evaluate import (
    classify_predict,
    evaluate_detection,
    heatmap_scores,
    save_detection_evaluation,
)
from fakeseg.errors import FakesegError
from fakeseg.models.classifier import load_classifier
from tests.conftest import save_tiny_segmenter
from tests.labeled_sets import TrainedClassifier, make_set


def test_train_eval_predict_learns_the_checkerboard(trained_classifier: TrainedClassifier,
                                                    tmp_path: Path) -> None:
    run, held_out, _ = trained_classifier
    meta = json.loads((run / "best" / "model.json").read_text())
    assert meta["n_train"] + meta["n_val"] == 64 and meta["n_val"] >= 2
    assert (run / "best" / "model.safetensors").exists() and (run / "split.json").exists()
    meta = json.loads((run / "best" / "model.json").read_text())
    assert meta["kind"] == "classifier" and meta["weights_tag"] == "random"
    assert meta["config"]["seed"] == 0 and "torch" in meta["versions"]
    result = evaluate_detection(run, held_out, progress=False)
    save_detection_evaluation(result, tmp_path / "eval")
    assert result.overall["roc_auc"] > 0.85
    assert set(result.per_source or {}) == {"gen0", "gen1", "all"}
    assert result.n_seen_in_training == 0
    for name in ("metrics.json", "metrics.md", "predictions.csv"):
        assert (tmp_path / "eval" / name).exists()
    assert "| gen0 |" in (tmp_path / "eval" / "metrics.md").read_text()
    out = classify_predict(run, [str(held_out / "fake")], tmp_path / "pred", progress=False)
    rows = list(csv.reader((tmp_path / "pred" / "predictions.csv").open()))
    assert rows[0] == ["image", "probability_synthetic"] and len(rows) == 11 == out.n + 1
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


def test_heatmap_scorer_uses_fakesegment_coverage(tmp_path: Path) -> None:
    from fakeseg.inference.localizer import Localizer

    save_tiny_segmenter(tmp_path / "seg")
    data = make_set(tmp_path / "d", 3, seed=0)
    items = load_labeled(data)
    scores = heatmap_scores(tmp_path / "seg", [i.path for i in items], progress=False)
    expected = Localizer.load(tmp_path / "seg", device="cpu").predict(items[0].path).score
    assert scores.shape == (6,) and scores[0] == pytest.approx(expected)
    result = evaluate_detection(tmp_path / "seg", data, scorer="heatmap", device="cpu",
                                progress=False)
    save_detection_evaluation(result, tmp_path / "eval")
    assert result.score_name == "flagged_fraction" and result.threshold == 0.05
    assert (tmp_path / "eval" / "metrics.md").exists()
    with pytest.raises(FakesegError, match="not a classifier"):
        load_classifier(tmp_path / "seg")
