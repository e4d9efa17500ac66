"""Every user error is a user error (§5): ``train``'s config, output folder and dataset, each
one line on stderr that names the value or file, exit 2, nothing written. See README.md."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_pairs
from tests.robustness.helpers import assert_one_line_error, run_cli, tiny_sets


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pairs(tmp_path_factory.mktemp("data") / "pairs", n=4, size=(32, 32))


def _train(capsys: pytest.CaptureFixture[str], pairs: Path, out: Path,
           *extra: str) -> tuple[int, str]:
    code, _, err = run_cli(capsys, "train", str(pairs), "--out", str(out), *extra)
    return code, err


@pytest.mark.parametrize("item, fragment", [
    ("steps=abc", "steps must be a whole number"),
    ("lr=-1", "lr must be a finite number"),
    ("batch_size=2.5", "batch_size must be a whole number"),
    ("seed=-1", "seed must be a whole number"),
    ("encoder=resnet9999", "did you mean"),
    ("backbone=ssdlite_mobilenet", "did you mean 'ssdlite_mobilenet_v2'"),
    ("model=unet-rgb", "did you mean 'unet_rgb'"),
    ("coverage=[0.5]", "coverage must be a pair"),
    ("mask_kinds=[rectangles, squares]", "mask_kinds must be a list"),
    ("layers=[a, b", "not valid YAML"),
    ("steps: 3", "key=value"),
    ("stepz=3", "did you mean 'steps'"),
    ("model_options=!!python/object/apply:os.system [ls]", "not valid YAML"),
])
def test_bad_set_is_one_line_naming_it(pairs: Path, tmp_path: Path, item: str, fragment: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code, err = _train(capsys, pairs, out, "--set", item)
    assert code == 2
    assert_one_line_error(err, f"--set {item}", fragment)
    assert not out.exists()


def test_mask_kinds_as_a_bare_word_is_one_kind() -> None:
    from fakeseg.config import train_config

    assert train_config(overrides=["mask_kinds=rectangles"]).mask_kinds == ["rectangles"]


def test_bad_config_files(pairs: Path, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("backbone: caf\xe9\n".encode("latin-1"))
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"] + [
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("model_options:\n" + "".join(f"  {line}\n" for line in levels))
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("steps: 10\nlr: -1\n")
    cases = {tmp_path: "is a folder", latin: "not UTF-8", bomb: "KiB",
             wrong: "lr must be a finite number", tmp_path / "none.yaml": "not found"}
    for path, fragment in cases.items():
        code, err = _train(capsys, pairs, tmp_path / "run", "--config", str(path))
        assert code == 2, path
        assert_one_line_error(err, str(path), fragment)
    assert not (tmp_path / "run").exists()


def test_bad_out_is_refused_before_any_model_is_built(pairs: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import fakeseg.training.segmentation

    def no_build(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was built before --out was checked")

    monkeypatch.setattr(fakeseg.training.segmentation, "build_model", no_build)
    a_file = tmp_path / "file.txt"
    a_file.write_text("keep me")
    cases = {a_file: "existing file", a_file / "sub": "cannot create",
             tmp_path / ("x" * 300): "cannot create"}
    for out, fragment in cases.items():
        code, err = _train(capsys, pairs, out, *tiny_sets())
        assert code == 2, out
        assert_one_line_error(err, fragment)
    assert a_file.read_text() == "keep me"


def test_duplicate_stems_are_an_error_in_train(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    import fakeseg.training.segmentation
    from fakeseg.io import write_image

    monkeypatch.setattr(fakeseg.training.segmentation, "build_model", None)  # never built

    root = make_pairs(tmp_path / "pairs", n=4, size=(32, 32))
    write_image(root / "real" / "p1.jpg", np.zeros((32, 32, 3), np.float32))
    code, err = _train(capsys, root, tmp_path / "run", *tiny_sets())
    assert code == 2
    assert_one_line_error(err, "p1", "appears twice", "data check")
    assert not (tmp_path / "run" / "last").exists()


def test_resume_refuses_a_mixed_checkpoint(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A last/ from the old layout with weights and state of different steps (§3)."""
    import json

    import torch
    import yaml

    from fakeseg.config import TrainConfig, to_dict
    from fakeseg.models.checkpoint import save_checkpoint
    from fakeseg.models.registry import build_model
    from tests.robustness.helpers import TINY_RUN

    root = make_pairs(tmp_path / "pairs", n=4, size=(32, 32))
    run = tmp_path / "run"
    config = to_dict(TrainConfig(**TINY_RUN).validate())
    net = build_model(config)
    optimizer = torch.optim.AdamW(net.trainable_parameters())
    state = {"optimizer": optimizer.state_dict(), "step": 2, "epoch": 1, "best": 0.5,
             "bad_epochs": 0, "numpy_rng": "{}", "torch_rng": torch.get_rng_state()}
    save_checkpoint(run / "last", net.state_dict(), {"kind": "segmenter", "config": config,
                                                     "step": 4}, state)
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "history.json").write_text(json.dumps([{"epoch": 1, "step": 2}]))
    code, err = _train(capsys, root, run, "--resume", *tiny_sets())
    assert code == 2
    assert_one_line_error(err, "mixed checkpoint", "without --resume")


def test_full_disk_while_training_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    import errno

    import fakeseg.models.checkpoint as checkpoint

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "_write_synced", full)
    root = make_pairs(tmp_path / "pairs", n=4, size=(32, 32))
    run = tmp_path / "run"
    code, err = _train(capsys, root, run, *tiny_sets(steps=2))
    assert code == 2
    assert_one_line_error(err, str(run), "No space left on device", "--out")
    assert not (run / "last").exists()
    assert not [p for p in run.iterdir() if p.name.startswith(".last")]
