"""Checkpoints and runs: silent wrong answers from model.json (§1), checkpoints as a set under
SIGKILL (§3), one train per run folder (§3). See README.md for the case table."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from fakeseg.config import TrainConfig, to_dict
from fakeseg.io import write_image
from fakeseg.models.checkpoint import load_resume_state, resolve_checkpoint, save_checkpoint
from fakeseg.models.registry import build_model
from fakeseg.training.trainer import TIMING_FIELDS
from tests.conftest import make_pairs
from tests.robustness.helpers import (
    TINY_RUN,
    assert_one_line_error,
    forked_cli,
    run_cli,
    tiny_sets,
    weights,
)

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid (untrained) FakeSegment checkpoint, made without training."""
    folder = tmp_path_factory.mktemp("ckpt") / "run"
    config = to_dict(TrainConfig(**TINY_RUN).validate())
    net = build_model(config)
    meta = {"kind": "segmenter", "model": "fakesegment", "config": config,
            "layers": list(net.feature_extractor.layers), "weights_tag": "random", "scales": {},
            "threshold": 0.5, "step": 0}
    save_checkpoint(folder / "best", net.state_dict(), meta)
    return folder


@pytest.fixture
def image(tmp_path: Path) -> Path:
    return write_image(tmp_path / "img.png", np.random.default_rng(0).random((40, 48, 3)))


def _copy(good: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(good, run)
    return run


def _edit_meta(run: Path, edit: object) -> Path:
    path = run / "best" / "model.json"
    meta = json.loads(path.read_text())
    text = edit(meta) if callable(edit) else None
    path.write_text(text if isinstance(text, str) else json.dumps(meta))
    return path


def test_good_checkpoint_predicts(good_checkpoint: Path, image: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "predict", str(good_checkpoint), str(image),
                           "--out", str(tmp_path / "out"))
    assert code == 0, err
    row = json.loads((tmp_path / "out" / "results.jsonl").read_text().splitlines()[0])
    assert 0.0 <= row["score"] <= 1.0


def _set(key: str, value: object) -> object:
    def edit(meta: dict) -> None:
        meta[key] = value
    return edit


def _set_config(key: str, value: object) -> object:
    def edit(meta: dict) -> None:
        meta["config"][key] = value
    return edit


@pytest.mark.parametrize("edit, fragment", [
    (_set("threshold", 1.5), "threshold must be a number in [0, 1], got 1.5"),
    (_set("threshold", -0.1), "threshold must be a number in [0, 1]"),
    (_set("threshold", "0.5"), "threshold must be a number in [0, 1], got '0.5'"),
    (_set("threshold", True), "threshold must be a number in [0, 1]"),
    (lambda m: json.dumps({**m, "threshold": float("nan")}), "threshold must be a number"),
    (lambda m: json.dumps({k: v for k, v in m.items() if k != "config"}), "no 'config'"),
    (_set("config", [1, 2]), "no 'config'"),
    (_set_config("steps", "abc"), "steps must be a whole number"),
    (_set_config("encoder", "resnet9999"), "did you mean"),
    (_set_config("reduce_channels", 2.5), "reduce_channels must be a whole number"),
    (_set_config("bogus", 1), "unknown option 'bogus'"),
    (_set("layers", "conv1"), "layers must be a list"),
    (_set("scales", {"a": -1}), "scales must map layers to positive numbers"),
], ids=["thr>1", "thr<0", "thr-str", "thr-bool", "thr-nan", "no-config", "config-list",
        "steps-str", "encoder", "float-int", "unknown-key", "layers-str", "scales"])
def test_bad_model_json_is_one_line_naming_it(good_checkpoint: Path, image: Path,
                                              tmp_path: Path, edit: object, fragment: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    run = _copy(good_checkpoint, tmp_path)
    _edit_meta(run, edit)
    code, _, err = run_cli(capsys, "predict", str(run), str(image), "--out",
                           str(tmp_path / "out"))
    assert code == 2
    assert_one_line_error(err, "model.json", fragment)
    assert not (tmp_path / "out" / "results.jsonl").exists()


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(good_checkpoint: Path, image: Path, tmp_path: Path,
                                        value: float, capsys: pytest.CaptureFixture[str]) -> None:
    run = _copy(good_checkpoint, tmp_path)
    path = run / "best" / "model.safetensors"
    state = load_file(str(path))
    name = next(k for k, v in state.items() if v.is_floating_point() and "unet" in k)
    state[name].view(-1)[0] = value
    save_file(state, str(path))
    code, _, err = run_cli(capsys, "predict", str(run), str(image), "--out",
                           str(tmp_path / "out"))
    assert code == 2
    assert_one_line_error(err, "model.safetensors", "NaN or infinite", name)


# ------------------------------------------------------------------ checkpoints under SIGKILL


def _check_set(run: Path) -> None:
    """Whatever survived a kill is one consistent set: weights, state and history agree."""
    folder = run / "last"
    if not folder.exists() and not (run / ".last.old").exists():
        return
    state = load_resume_state(resolve_checkpoint(folder), extra_json=("history.json",))
    assert state.meta["step"] == state.trainer_state["step"]
    assert [h["step"] for h in state.extra_json["history.json"]][-1] == state.meta["step"]


def _without_times(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in entry.items() if k not in TIMING_FIELDS} for entry in history]


@pytest.mark.slow  # a subprocess or several trainings: big by nature
def test_kill_at_every_point_of_a_checkpoint_then_resume_is_bit_exact(tmp_path: Path) -> None:
    pairs = make_pairs(tmp_path / "pairs")
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    train = ["train", str(pairs), *tiny_sets(), "--quiet"]
    assert forked_cli([*train, "--out", str(straight)]) == 0
    # one process after another, each killed at another point; each resumes the last
    chain = ["last.after_weights:1",  # epoch 1, no last/ yet
             "best.after_switch:1",   # epoch 1: best/ new, last/ never written
             "last.after_aside:1",    # epoch 2: old last/ moved aside, new one not in place
             "last.after_meta:1",     # epoch 2: new set complete in its temp folder
             "last.after_state:1",    # epoch 2: weights + state written, no metadata
             "last.after_switch:1"]   # epoch 2: new last/ in place, old one not yet deleted
    for i, point in enumerate(chain):
        resume = ["--resume"] if i else []
        assert forked_cli([*train, "--out", str(broken), *resume], kill_at=point) == \
            -signal.SIGKILL, point
        _check_set(broken)
    assert forked_cli([*train, "--out", str(broken), "--resume"]) == 0
    for name in ("last", "best"):
        a, b = weights(straight / name), weights(broken / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    histories = [json.loads((run / "history.json").read_text()) for run in (straight, broken)]
    assert _without_times(histories[0]) == _without_times(histories[1])
    assert len(histories[0]) == TINY_RUN["steps"] // TINY_RUN["steps_per_epoch"]
    leftovers = [p.name for p in broken.iterdir() if p.name.startswith((".last", ".best"))]
    assert not leftovers


def test_second_train_into_one_folder_fails_at_once_naming_the_pid(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pairs = make_pairs(tmp_path / "pairs")
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(SRC), *filter(None, [os.environ.get("PYTHONPATH")])])}
    first = subprocess.Popen(
        [sys.executable, "-m", "fakeseg", "train", str(pairs), "--out", str(run),
         *tiny_sets(steps=2, threads=1), "--quiet"], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        lock = run / ".fakeseg.lock"
        deadline = time.time() + 240
        while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
            assert first.poll() is None, first.communicate()
            assert time.time() < deadline, "the first train never took the lock"
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGSTOP)  # hold it mid-run while the second one tries
        try:
            code, _, err = run_cli(capsys, "train", str(pairs), "--out", str(run),
                                   *tiny_sets(steps=2, seed=7))
        finally:
            os.kill(first.pid, signal.SIGCONT)
        assert code == 2
        assert_one_line_error(err, str(run), f"PID {first.pid}", "in use")
        _, err_first = first.communicate(timeout=300)
        assert first.returncode == 0, err_first
    finally:
        if first.poll() is None:
            first.kill()
    meta = json.loads((run / "last" / "model.json").read_text())
    assert meta["config"]["seed"] == 0 and "seed: 0" in (run / "config.yaml").read_text()
