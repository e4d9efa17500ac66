"""Target maps as their own step: streaming scales, float16 memory-mapped store, resumable."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from fakeseg.cli import main
from fakeseg.config import TrainConfig
from fakeseg.faults import ENV_VAR
from fakeseg.features.target import PercentileSketch, fit_scales
from fakeseg.training.segmentation import compute_targets
from tests.conftest import make_pairs

CONFIG = TrainConfig(backbone_weights="random", target_mode="heatmap", device="cpu", workers=0,
                     val_fraction=0.2, test_fraction=0.2, target_batch=2)
#: the sketch's documented error: half a bin (0.06 %) plus the data's own spacing near the rank
TOLERANCE = 2e-3


@pytest.mark.parametrize("q", [50.0, 90.0, 99.0, 99.9])
def test_sketch_matches_numpy_percentile(q: float) -> None:
    rng = np.random.default_rng(0)
    chunks = [rng.lognormal(-3, 1.5, 20_000), rng.uniform(0, 2, 30_000), np.zeros(5_000)]
    sketch = PercentileSketch()
    for chunk in chunks:
        sketch.add(chunk.astype(np.float32))
    exact = float(np.percentile(np.concatenate(chunks).astype(np.float32), q))
    assert sketch.percentile(q) == pytest.approx(exact, rel=TOLERANCE)


def test_sketch_edges() -> None:
    sketch = PercentileSketch()
    assert sketch.percentile(99) == 0.0
    sketch.add(np.zeros(10))
    assert sketch.percentile(99) == 0.0
    assert fit_scales([{"a": np.zeros(4)}]) == {"a": 1.0}  # never a zero scale
    sketch.add(np.array([1e6]))  # above the last bin: the maximum itself
    assert sketch.percentile(100) == 1e6


def _targets_child(data: Path, out: Path, kill_at: str) -> None:
    os.environ[ENV_VAR] = kill_at
    compute_targets(data, out, CONFIG, progress=False)


@pytest.mark.slow
def test_targets_resume_after_a_kill_and_match_an_uninterrupted_run(tmp_path: Path) -> None:
    data = make_pairs(tmp_path / "pairs", n=7, size=(48, 64))
    whole = compute_targets(data, tmp_path / "whole", CONFIG, progress=False)
    assert whole.n_pairs == whole.n_computed >= 4
    child = multiprocessing.get_context("spawn").Process(  # fork can hang OpenMP
        target=_targets_child, args=(data, tmp_path / "killed", "target_pair:3"))
    child.start()
    child.join(120)
    assert child.exitcode == -signal.SIGKILL
    stored = sorted((tmp_path / "killed" / "targets").glob("*.json"))
    assert len(stored) == 3  # the pairs finished before the kill, no scales yet
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "killed" / "targets").glob("*.npy")}
    resumed = compute_targets(data, tmp_path / "killed", CONFIG, progress=False)
    assert resumed.n_computed == whole.n_pairs - 3
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())  # not redone
    for path in (tmp_path / "whole" / "targets").glob("*.npy"):
        stored_map = np.load(tmp_path / "killed" / "targets" / path.name, mmap_mode="r")
        assert stored_map.dtype == np.float16
        assert np.array_equal(stored_map, np.load(path))
    assert resumed.scales == pytest.approx(whole.scales)
    again = compute_targets(data, tmp_path / "killed", CONFIG, progress=False)
    assert again.n_computed == 0


def test_targets_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_pairs(tmp_path / "pairs", n=5, size=(40, 40))
    code = main(["targets", str(data), "--out", str(tmp_path / "run"), "--backbone-weights",
                 "random", "--device", "cpu", "--workers", "0"])
    assert code == 0
    assert "computed now" in capsys.readouterr().out
    assert (tmp_path / "run" / "targets" / "scales.json").exists()
    assert main(["targets", str(tmp_path / "nothing"), "--out", str(tmp_path / "r2")]) == 2


def test_heatmap_of_one_pair_computes_then_saves(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from fakeseg.features.target import pair_target

    data = make_pairs(tmp_path / "d", n=1)
    real, synthetic = data / "real" / "p0.png", data / "synthetic" / "p0.jpg"
    torch.manual_seed(0)  # random weights: the same draw for both runs
    target = pair_target(real, synthetic, weights="random")
    assert target.raw.shape == (64, 64) and np.isfinite(target.raw).all()
    # the synthetic side differs from the real one in its left half only
    assert target.raw[:, :24].mean() > target.raw[:, 40:].mean()
    torch.manual_seed(0)
    assert main(["heatmap", "--real", str(real), "--synthetic", str(synthetic),
                 "--out", str(tmp_path / "out"), "--backbone-weights", "random"]) == 0
    assert "p0_target.png" in capsys.readouterr().out
    saved = json.loads((tmp_path / "out" / "p0_target.json").read_text())
    raw = np.load(tmp_path / "out" / "p0_target.npy")
    assert saved["raw_max"] == pytest.approx(float(raw.max()))
    assert np.allclose(raw, target.raw) and saved["weights_tag"] == target.weights_tag
