"""CLI smoke tests: fingerprint, defingerprint, fid, classify and experiment on tiny data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from fakeseg.cli import main
from fakeseg.io import write_image

SIZE = 32


def _write(folder: Path, n: int, seed: int, *, checker: float = 0.0, tint: float = 0.0,
           name: str = "img") -> Path:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    board = (((yy + xx) % 2) * 2 - 1)[:, :, None]
    for i in range(n):
        noise = ndimage.gaussian_filter(rng.random((SIZE, SIZE, 3)), (2, 2, 0))
        image = (noise - noise.mean()) * 3 + 0.5 + checker * board + np.array([tint, 0, -tint])
        write_image(folder / f"{i}_{name}.png", np.clip(image, 0, 1))
    return folder


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    _write(root / "data" / "real", 6, 0, name="g_real")
    _write(root / "data" / "fake", 6, 1, checker=0.15, name="g_fake")
    return root


def test_fingerprint_and_defingerprint(sets: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = sets / "fp"
    code = main(["fingerprint", "--real", str(sets / "data/real"), "--synthetic",
                 str(sets / "data/fake/*.png"), "--out", str(out), "--size", str(SIZE)])
    assert code == 0
    for name in ("fingerprint.png", "radial_spectra.png", "peaks.csv", "fingerprint.json"):
        assert (out / name).exists()
    printed = capsys.readouterr().out
    assert str(out / "fingerprint.png") in printed and "peak 1" in printed
    attacked = sets / "msa"
    assert main(["defingerprint", "--method", "msa", "--real", str(sets / "data/real"),
                 "--synthetic", str(sets / "data/fake"), "--out", str(attacked),
                 "--size", str(SIZE)]) == 0
    assert len(list((attacked / "images").glob("*.png"))) == 6
    assert json.loads((attacked / "attack.json").read_text())["method"] == "msa"
    assert "MSA: 6 image(s)" in capsys.readouterr().out


def test_fid_names_its_feature_space(sets: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = sets / "fid.json"
    assert main(["fid", str(sets / "data/real"), str(sets / "data/fake"), "--features",
                 "tiny_cnn", "--weights", "random", "--size", str(SIZE), "--out",
                 str(target)]) == 0
    result = json.loads(target.read_text())
    assert result["name"] == "FD[tiny_cnn, random]" and result["n_a"] == 6
    assert capsys.readouterr().out.startswith("FD[tiny_cnn, random] = ")


def test_classify_train_eval_predict(sets: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run, data = sets / "run", str(sets / "data")
    assert main(["classify", "train", data, "--out", str(run), "--backbone", "tiny_cnn",
                 "--backbone-weights", "random", "--epochs", "1", "--size", str(SIZE),
                 "--augment", "flip", "--val-fraction", "0.34"]) == 0
    assert "best checkpoint" in capsys.readouterr().out
    assert main(["classify", "eval", str(run), data, "--out", str(sets / "eval")]) == 0
    printed = capsys.readouterr()
    assert "metrics.json" in printed.out and "ROC AUC" in printed.out
    assert "used in training" in printed.err  # evaluated on its own training data
    assert (sets / "eval" / "metrics.md").exists()
    assert main(["classify", "predict", str(run), str(sets / "data/fake"), "--out",
                 str(sets / "pred")]) == 0
    rows = list(csv.reader((sets / "pred" / "predictions.csv").open()))
    assert rows[0] == ["image", "probability_synthetic"] and len(rows) == 7


def test_composition_experiment(sets: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = sets / "exp"
    folders = {
        "--a-real": _write(root / "a_real", 4, 10, tint=0.1),
        "--a-synthetic": _write(root / "a_syn", 4, 11, tint=0.1, checker=0.1),
        "--b-real": _write(root / "b_real", 4, 12, tint=-0.1),
        "--b-synthetic": _write(root / "b_syn", 4, 13, tint=-0.1, checker=0.1),
    }
    args = [item for flag, folder in folders.items() for item in (flag, str(folder))]
    assert main(["experiment", "composition", *args, "--out", str(root / "out"), "--seeds",
                 "2", "--names", "AUTH,VOID", "--backbone", "tiny_cnn", "--backbone-weights",
                 "random", "--epochs", "1", "--size", str(SIZE), "--augment", "none",
                 "--batch-size", "4", "--defingerprint", "msa"]) == 0
    table = (root / "out" / "results.md").read_text()
    assert "| AUTH (train) | VOID (train) |" in table
    for row in ("| – | real | real |", "| – | synthetic | real |",
                "| – | synthetic | synthetic |", "| MSA | synthetic | real |",
                "| MSA | synthetic | synthetic |"):
        assert row in table
    assert "| MSA | real | real |" not in table  # nothing synthetic to attack
    result = json.loads((root / "out" / "results.json").read_text())
    assert result["n_test"] == {"AUTH": 1, "VOID": 1}
    assert [len(r["runs"]) for r in result["rows"]] == [2, 2, 2, 2, 2]
    assert [a["class_name"] for a in result["attacks"]] == ["AUTH", "VOID"]
    attacked = result["rows"][3]
    assert attacked["defingerprint"] == "msa" and attacked["n_train"] == {"AUTH": 4, "VOID": 3}
    train_csv = (root / "out" / "synthetic_real_msa" / "seed0" / "train.csv").read_text()
    assert str(root / "out" / "defingerprint" / "msa" / "AUTH" / "images") in train_csv
    for attack in result["attacks"]:
        assert attack["n_attacked"] == 4 and attack["mean_psnr_db"] > 10  # changed, not erased
    assert "after MSA: balanced accuracy" in capsys.readouterr().out


def test_composition_at_original_size_batches_by_size(sets: Path) -> None:
    from fakeseg.workflows.composition import experiment_composition

    root = sets / "original"
    folders = [_write(root / "a_real", 4, 20, tint=0.1), _write(root / "a_syn", 3, 21),
               _write(root / "b_real", 4, 22, tint=-0.1), _write(root / "b_syn", 3, 23)]
    rng = np.random.default_rng(0)
    for i in range(3):  # larger images in class B's real pool: batches of mixed sizes
        write_image(folders[2] / f"big{i}.png", rng.random((40, 48, 3)))
    result = experiment_composition(*folders, root / "out", seeds=1,
                                    compositions=["real/real"], backbone="tiny_cnn",
                                    weights="random", epochs=1, batch_size=4, size="original",
                                    augment=("flip",), device="cpu", progress=False)
    row = result.row("real/real")
    assert row.image_size == "original" and len(row.runs) == 1
    assert row.balanced_accuracy.mean is not None
    assert "original sizes" in result.results_md.read_text()
    config = (root / "out" / "real_real" / "seed0" / "run" / "config.yaml").read_text()
    assert "fit: original" in config


def test_same_size_batches() -> None:
    import torch

    from fakeseg.data.labeled import SameSizeBatchSampler, balanced_sampler

    sizes = [(3, 32, 32)] * 5 + [(3, 40, 48)] * 4
    sampler = SameSizeBatchSampler(
        balanced_sampler([0] * 5 + [1] * 4, generator=torch.Generator().manual_seed(0)),
        sizes, 3)
    batches = list(sampler)
    assert len(batches) >= len(sampler) == 3
    assert sum(len(b) for b in batches) == 9
    assert all(len({sizes[i] for i in b}) == 1 and len(b) <= 3 for b in batches)


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "data" / "real").mkdir(parents=True)
    assert main(["classify", "train", str(tmp_path / "data"), "--out",
                 str(tmp_path / "run"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no synthetic/ or fake/ folder" in err
    assert main(["classify", "eval", str(tmp_path / "nope"), str(tmp_path / "data"),
                 "--out", str(tmp_path / "e"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fakeseg: error:" in err
    assert main(["fid", str(tmp_path / "data/real"), str(tmp_path / "data/real"),
                 "--weights", "random"]) == 2
    assert "no images found" in capsys.readouterr().err
