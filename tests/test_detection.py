"""Detection families (fakeseg.detection): fit, score, save/load, registry, benchmark."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fakeseg.cli import main
from fakeseg.data.labeled import LabeledImage, load_labeled
from fakeseg.detection import METHODS, check_method, fit_method, load_scorer
from fakeseg.detection.benchmark import (
    IN_DISTRIBUTION,
    benchmark_detection,
    best_method,
    cell_splits,
    rank_auc,
)
from fakeseg.detection.common import native_tiles
from fakeseg.detection.npr import npr_residual
from fakeseg.errors import FakesegError
from fakeseg.io import write_image
from tests.conftest import smooth_image

SIDE = 48
GENERATORS = ("alpha", "beta", "gamma")
#: tiny, fast options for every method
FAST: dict[str, dict[str, object]] = {
    "probe": {"trunks": "tiny_cnn", "weights": "random"},
    "probe_lite0": {"trunks": "tiny_cnn", "weights": "random"},
    "probe_concat": {"trunks": "tiny_cnn", "weights": "random"},
    "spectral": {"bins": 12},
    "npr": {"steps": 40, "crop": 16, "batch_size": 8, "width": 4},
    "cnn": {"backbone": "tiny_cnn", "weights": "random", "epochs": 1, "size": 32,
            "batch_size": 8},
    "cnn_blurjpeg": {"backbone": "tiny_cnn", "weights": "random", "epochs": 1, "size": 32,
                     "batch_size": 8},
}
FAST["ensemble"] = {"members": "spectral,npr", "member_options": dict(FAST)}


def _fake(rng: np.random.Generator, kind: int) -> np.ndarray:
    """Smooth noise at half size, upsampled 2× (nearest) with a transposed-conv-like
    checkerboard: the traces npr and spectral look for."""
    small = smooth_image(rng, SIDE // 2, SIDE // 2)
    image = small.repeat(2, 0).repeat(2, 1)
    yy, xx = np.mgrid[:SIDE, :SIDE]
    board = ((yy % 2) * (xx % 2) * 2 - 0.5)[:, :, None] * (0.06 + 0.02 * kind)
    return np.clip(image + board, 0, 1)


def write_dataset(root: Path, n: int = 8, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    count = 0
    for kind, generator in enumerate(GENERATORS):
        for _ in range(n):
            write_image(root / "real" / f"{count}_{generator}_real.png",
                        smooth_image(rng, SIDE, SIDE))
            write_image(root / "fake" / f"{count}_{generator}_fake.png", _fake(rng, kind))
            count += 1
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("detection") / "data")


def _split(items: list[LabeledImage]) -> tuple[list[LabeledImage], list[LabeledImage]]:
    train = [i for i in items if i.source != "gamma"]
    return train, [i for i in items if i.source == "gamma"]


@pytest.mark.parametrize("method", ["probe", "spectral", "npr", "cnn", "ensemble"])
def test_family_fits_scores_and_round_trips(data: Path, tmp_path: Path, method: str) -> None:
    items = load_labeled(data)
    train, test = _split(items)
    scorer = fit_method(method, train, [], FAST[method])
    paths = [i.path for i in test]
    scores = scorer.score(paths)
    assert scores.shape == (len(test),) and np.isfinite(scores).all()
    assert ((scores >= 0) & (scores <= 1)).all()
    if method in ("spectral", "npr", "ensemble"):  # the upsampling trace is there to find
        assert roc_auc_score([i.label for i in test], scores) > 0.75
    scorer.save(tmp_path / "saved")
    again = load_scorer(tmp_path / "saved")
    assert again.method == method
    np.testing.assert_allclose(again.score(paths), scores, rtol=1e-6, atol=1e-9)


def test_stacked_ensemble_needs_validation_and_fits_on_it(data: Path) -> None:
    items = load_labeled(data)
    train, test = _split(items)
    with pytest.raises(FakesegError, match="validation"):
        fit_method("ensemble", train, [], {"members": "spectral", "combine": "stack"})
    fit_part, val = train[::2], train[1::2]
    scorer = fit_method("ensemble", fit_part, val, {"members": "spectral", "combine": "stack"})
    assert scorer.head is not None and scorer.score([i.path for i in test]).shape == (16,)


def test_registry_did_you_mean_and_unknown_options() -> None:
    with pytest.raises(FakesegError, match="did you mean 'spectral'"):
        check_method("spectrall")
    with pytest.raises(FakesegError, match="did you mean 'bins'"):
        fit_method("spectral", [], [], {"binz": 3})
    with pytest.raises(FakesegError, match="non-ensemble"):
        fit_method("ensemble", [], [], {"members": "ensemble"})
    assert set(FAST) == set(METHODS)


def test_native_tiles_cover_large_images_without_resizing() -> None:
    small = np.zeros((300, 200, 3))
    assert [t.shape for t in native_tiles(small)] == [(300, 200, 3)]
    large = np.arange(1200 * 700).reshape(1200, 700, 1).astype(float)
    tiles = native_tiles(large, 512)
    assert len(tiles) == 3 * 2 and all(t.shape == (512, 512, 1) for t in tiles)
    starts = sorted({int(t[0, 0, 0]) // 700 for t in tiles})
    assert starts[0] == 0 and starts[-1] + 512 == 1200 - (1200 - 512) % 8
    assert all(s % 8 == 0 for s in starts)
    assert len(native_tiles(np.zeros((5000, 5000, 1)), 512, max_tiles=16)) == 16


def test_npr_residual_vanishes_on_nearest_upsampled_images() -> None:
    import torch

    small = torch.rand(1, 3, 8, 8)
    upsampled = small.repeat_interleave(2, -2).repeat_interleave(2, -1)
    assert float(npr_residual(upsampled).abs().max()) == 0.0
    assert float(npr_residual(torch.rand(1, 3, 17, 16)).abs().max()) > 0.0
    assert npr_residual(torch.rand(1, 3, 17, 15)).shape[-2:] == (16, 14)


def test_rank_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(3)
    pos = rng.integers(0, 5, (4, 9)).astype(float)
    neg = rng.integers(0, 4, (4, 7)).astype(float)
    expected = [roc_auc_score(np.r_[np.ones(9), np.zeros(7)], np.r_[p, n])
                for p, n in zip(pos, neg, strict=True)]
    np.testing.assert_allclose(rank_auc(pos, neg), expected)


def test_best_method_breaks_ties_by_fit_time() -> None:
    methods = {"slow": {"logo_roc_auc_mean": 0.99, "max_fit_seconds": 300.0},
               "fast": {"logo_roc_auc_mean": 0.985, "max_fit_seconds": 10.0},
               "weak": {"logo_roc_auc_mean": 0.7, "max_fit_seconds": 1.0},
               "none": {"logo_roc_auc_mean": None}}
    assert best_method(methods) == "fast"
    methods["slow"]["logo_roc_auc_mean"] = 0.999
    assert best_method(methods) == "slow" and best_method({}) is None


def test_cell_splits_keep_the_held_out_generator_apart(data: Path) -> None:
    items = load_labeled(data)
    train, val, test = cell_splits(items, "beta", 0, val_fraction=0.25, test_fraction=0.3)
    assert {i.source for i in test} == {"beta"}
    assert "beta" not in {i.source for i in train + val}
    assert len(train) + len(val) == 32 and {i.label for i in val} == {0, 1}
    train, val, test = cell_splits(items, IN_DISTRIBUTION, 1, val_fraction=0.25,
                                   test_fraction=0.25)
    assert {(i.source, i.label) for i in test} == {(g, c) for g in GENERATORS for c in (0, 1)}
    assert not {i.path for i in test} & {i.path for i in train + val}


@pytest.mark.slow  # a subprocess or several trainings: big by nature
def test_benchmark_runs_every_cell_and_resumes(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    methods = ["spectral", "npr", "ensemble"]
    result = benchmark_detection(data, out, methods=methods, seeds=1, options=FAST,
                                 bootstrap=50, progress=False)
    cells = sorted(out.glob("cells/*/*/seed0.json"))
    assert len(cells) == 3 * (len(GENERATORS) + 1)
    summary = result.methods["npr"]
    assert set(summary["per_generator"]) == set(GENERATORS)
    assert summary["logo_roc_auc_mean"] > 0.75 and summary["in_distribution_roc_auc"] > 0.75
    low, high = summary["logo_roc_auc_ci95"]
    assert low <= summary["logo_roc_auc_mean"] <= high
    markdown = (out / "metrics.md").read_text()
    assert "| npr |" in markdown and "0.91" in markdown and "Reproduce" in markdown
    assert "**Best method**" in markdown and result.best_method in methods
    # a finished cell is skipped on a rerun; a removed one is recomputed
    stamps = {c: c.stat().st_mtime_ns for c in cells}
    cells[0].unlink()
    benchmark_detection(data, out, methods=methods, seeds=1, options=FAST, bootstrap=50,
                        progress=False)
    assert cells[0].exists()
    assert all(c.stat().st_mtime_ns == stamps[c] for c in cells[1:])
    assert json.loads((out / "metrics.json").read_text())["methods"].keys() == set(methods)


@pytest.mark.slow  # a subprocess or several trainings: big by nature
def test_benchmark_cli_and_classify_method(data: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert main(["benchmark-detection", str(data), "--out", str(out), "--methods",
                 "spectral", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "spectral: LOGO ROC AUC" in printed and (out / "metrics.md").exists()
    assert main(["benchmark-detection", str(data), "--out", str(out), "--methods",
                 "spectal", "-q"]) == 2
    assert "did you mean 'spectral'" in capsys.readouterr().err
    run = tmp_path / "run"
    assert main(["classify", "train", str(data), "--out", str(run), "--method", "spectral",
                 "-q"]) == 0
    assert "best checkpoint" in capsys.readouterr().out
    assert main(["classify", "eval", str(run), str(data), "--out", str(tmp_path / "eval"),
                 "-q"]) == 0
    assert "ROC AUC" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["n_seen_in_training"] == 48 and "spectral" in metrics["scorer_description"]
