"""The Python predict API (every input form) and ``fakeseg predict`` (files, resume, safety)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fakeseg.cli import main
from fakeseg.config import TrainConfig
from fakeseg.errors import FakesegError
from fakeseg.inference.localizer import HeatMap, Localizer
from fakeseg.inference.predict import output_names
from fakeseg.io import folder_lock, read_image, write_image
from fakeseg.training.segmentation import train
from tests.conftest import make_pairs, smooth_image
from tests.test_fakesegment import TINY


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("predict")
    pairs = make_pairs(root / "pairs")
    train(pairs, root / "run", TrainConfig(**{**TINY, "steps": 2}), progress=False)
    return root / "run"


@pytest.fixture(scope="module")
def model(run: Path) -> Localizer:
    return Localizer.load(run, device="cpu")


@pytest.fixture
def images(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    folder = tmp_path / "images"
    for i in range(3):
        write_image(folder / f"im{i}.png", smooth_image(rng, 48, 64))
    return folder


def test_every_input_form_gives_the_same_map(model: Localizer, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rgb8 = (smooth_image(rng, 40, 56) * 255).astype(np.uint8)
    rgba8 = np.dstack([rgb8, rng.integers(0, 256, (40, 56), dtype=np.uint8)])
    path = write_image(tmp_path / "x.png", rgb8)
    rgba_path = tmp_path / "x_rgba.png"
    Image.fromarray(rgba8, "RGBA").save(rgba_path)
    gray_path = write_image(tmp_path / "g.png", rgb8[:, :, 0])
    expected = model.predict(path).probability
    as_float = rgb8.astype(np.float32) / 255.0
    forms = {
        "uint8 HWC": rgb8, "uint16 HWC": rgb8.astype(np.uint16) * 257,
        "float32 HWC": as_float, "float64 HWC": as_float.astype(np.float64),
        "PIL RGB": Image.open(path), "PIL RGBA": Image.open(rgba_path),
        "RGBA array": rgba8, "RGBA file": rgba_path,
        "tensor CHW": torch.from_numpy(as_float).permute(2, 0, 1),
        "tensor BCHW": torch.from_numpy(as_float).permute(2, 0, 1)[None],
        "uint8 tensor CHW": torch.from_numpy(rgb8).permute(2, 0, 1),
        "str path": str(path),
    }
    for name, image in forms.items():
        got = model.predict(image).probability
        assert got.shape == expected.shape, name
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=name)
    bf16 = torch.from_numpy(as_float).permute(2, 0, 1).bfloat16()  # no NumPy twin: widened
    np.testing.assert_allclose(model.predict(bf16).probability,
                               model.predict(bf16.float()).probability, atol=1e-5)
    gray_expected = model.predict(gray_path).probability
    for image in (rgb8[:, :, 0], rgb8[:, :, :1], Image.open(gray_path),
                  torch.from_numpy(rgb8[:, :, 0])[None]):
        np.testing.assert_allclose(model.predict(image).probability, gray_expected, atol=1e-5)
    assert not np.allclose(gray_expected, expected, atol=1e-5)  # the forms are not all one


def test_bad_arrays_are_refused_with_one_line(model: Localizer) -> None:
    image = np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)
    with pytest.raises(FakesegError, match=r"divide by 255"):
        model.predict(image * 255)
    with pytest.raises(FakesegError, match="NaN"):
        model.predict(np.where(image > 0.5, np.nan, image))
    with pytest.raises(FakesegError, match="ambiguous"):
        model.predict((image * 255).astype(np.int64))
    with pytest.raises(FakesegError, match=r"transpose"):
        model.predict(image.transpose(2, 0, 1).copy())
    with pytest.raises(FakesegError, match="cannot read a list"):
        model.predict([1, 2, 3])


def test_predict_batch_matches_single_predictions_and_repr_is_short(model: Localizer) -> None:
    rng = np.random.default_rng(1)
    images = [smooth_image(rng, 32, 48), smooth_image(rng, 32, 48), smooth_image(rng, 40, 40)]
    heats = model.predict_batch(images, batch_size=2)
    assert len(heats) == 3 and heats[2].probability.shape == (40, 40)
    for heat, image in zip(heats, images, strict=True):
        np.testing.assert_allclose(heat.probability, model.predict(image).probability, atol=1e-5)
    text = repr(heats[0])
    assert text.startswith("HeatMap(48x32, score=") and "\n" not in text and len(text) < 100


def test_predict_writes_maps_masks_overlays_and_relative_paths(run: Path, images: Path,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "pred"
    assert main(["predict", str(run), str(images), "--out", str(out), "-q"]) == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    info = json.loads((out / "predict.json").read_text())
    assert info["complete"] is True and info["n_images"] == 3
    assert info["outputs"] == {"keys": ["heat_npy", "mask", "overlay"], "overlay_format": "jpg"}
    assert set(info["files"]) == {"NAME_heat.npy", "NAME_mask.png", "NAME_overlay.jpg"}
    for row in rows:
        for key in ("image", "heat_npy", "mask", "overlay"):
            assert not Path(row[key]).is_absolute() and (out / row[key]).is_file(), key
        assert "heat_png" not in row and not list(out.glob("*_heat.png"))  # not by default
        heat = np.load(out / row["heat_npy"])
        mask = np.asarray(Image.open(out / row["mask"]))
        assert set(np.unique(mask)) <= {0, 255}
        np.testing.assert_array_equal(mask == 255, heat >= info["threshold"])
        assert row["score"] == pytest.approx(float((heat >= info["threshold"]).mean()))
        overlay = Image.open(out / row["overlay"])
        assert overlay.format == "JPEG" and row["overlay"].endswith("_overlay.jpg")
        assert overlay.height == heat.shape[0] and overlay.width > heat.shape[1]  # bar
    csv_rows = (out / "results.csv").read_text().strip().splitlines()
    assert csv_rows[0].split(",")[:3] == ["image", "name", "score"] and len(csv_rows) == 4


def test_every_output_file_holds_exactly_what_is_computed(run: Path, images: Path,
                                                          tmp_path: Path) -> None:
    """The fast encodings change bytes, never pixels: the 16-bit map is the quantised map, the
    PNG overlay is annotated_overlay's array, and the JPEG overlay stays close to it."""
    from fakeseg.viz import annotated_overlay

    out, jpg = tmp_path / "all", tmp_path / "jpg"
    assert main(["predict", str(run), str(images), "--out", str(out), "-q", "--outputs",
                 "overlay,heat_png,mask,heat_npy", "--overlay-format", "png"]) == 0
    assert main(["predict", str(run), str(images), "--out", str(jpg), "-q",
                 "--outputs", "overlay"]) == 0
    info = json.loads((out / "predict.json").read_text())
    assert info["outputs"]["keys"] == ["heat_npy", "heat_png", "mask", "overlay"]
    for row, jpg_row in zip(_rows(out), _rows(jpg), strict=True):
        heat = np.load(out / row["heat_npy"])
        assert heat.dtype == np.float32
        stored = np.asarray(Image.open(out / row["heat_png"]))
        np.testing.assert_array_equal(stored,
                                      (np.clip(heat, 0, 1) * 65535 + 0.5).astype(np.uint16))
        image = read_image(out / row["image"])
        drawn = annotated_overlay(image, heat, info["threshold"])
        np.testing.assert_array_equal(np.asarray(Image.open(out / row["overlay"])), drawn)
        assert set(jpg_row) >= {"overlay"} and "heat_npy" not in jpg_row
        lossy = np.asarray(Image.open(jpg / jpg_row["overlay"])).astype(np.float64)
        assert np.abs(lossy - drawn).mean() < 3.0  # quality 90, no chroma subsampling


def test_outputs_are_checked_and_a_rerun_with_more_outputs_completes_the_rows(
        run: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pred"
    assert main(["predict", str(run), str(images), "--out", str(out), "-q",
                 "--outputs", "heat,mask"]) == 2
    assert "heat_npy,heat_png,mask,overlay" in capsys.readouterr().err
    assert main(["predict", str(run), str(images), "--out", str(out), "-q",
                 "--outputs", "mask"]) == 0
    assert not list(out.glob("*_heat.npy"))
    assert main(["predict", str(run), str(images), "--out", str(out), "-q",
                 "--outputs", "mask,heat_npy"]) == 0
    rows = _rows(out)
    assert len(rows) == 3 and all((out / r["heat_npy"]).is_file() for r in rows)
    info = json.loads((out / "predict.json").read_text())
    assert info["n_resumed"] == 0 and info["n_images"] == 3  # every row lacked its .npy


def _rows(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_output_names_never_collide(tmp_path: Path) -> None:
    paths = [tmp_path / p for p in ("A/x.png", "B/x.png", "C/x__1.png", "D/x.png", "D/x.jpg",
                                    "D/x_jpg.png")]
    names = output_names(paths)
    assert len(set(names.values())) == len(paths)
    assert names[tmp_path / "A/x.png"] == "A/x" and names[tmp_path / "D/x.jpg"] == "D/x_jpg"
    # names from an earlier run are kept; new inputs avoid them
    again = output_names([tmp_path / "D/x_jpg.png", tmp_path / "D/x.jpg"],
                         {tmp_path / "D/x_jpg.png": "D/x_jpg"})
    assert again[tmp_path / "D/x_jpg.png"] == "D/x_jpg" and again[tmp_path / "D/x.jpg"] != "D/x_jpg"


def test_same_stems_in_several_folders_give_one_set_of_files_each(run: Path,
                                                                  tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    for rel in ("A/x.png", "B/x.png", "C/x__1.png", "C/y.png", "C/y.jpg"):
        write_image(tmp_path / "in" / rel, smooth_image(rng, 32, 32))
    out = tmp_path / "pred"
    assert main(["predict", str(run), str(tmp_path / "in/A"), str(tmp_path / "in/B"),
                 str(tmp_path / "in/C"), "--out", str(out), "-q"]) == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and len({r["name"] for r in rows}) == 5
    assert len(list(out.rglob("*_heat.npy"))) == 5
    assert {(out / r["image"]).resolve() for r in rows} == {
        p.resolve() for p in (tmp_path / "in").rglob("*.*")}


def test_one_bad_file_never_stops_the_folder(run: Path, images: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    write_image(images / "tiny.png", np.zeros((5, 5, 3), np.float32))
    (images / "empty.png").write_bytes(b"")
    write_image(images / ".im0.png.abc.tmp.png", np.zeros((32, 32, 3), np.float32))  # a temp
    out = tmp_path / "pred"
    assert main(["predict", str(run), str(images), "--out", str(out), "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("fakeseg: skipped:") for line in err[:2])
    assert any("tiny.png" in line and "5x5" in line for line in err)
    assert any("empty.png" in line for line in err)
    assert len((out / "results.csv").read_text().strip().splitlines()) == 4  # header + 3
    info = json.loads((out / "predict.json").read_text())
    assert info["complete"] and len(info["skipped"]) == 2


def test_out_checks_and_lock(run: Path, images: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert main(["predict", str(run), str(images), "--out", str(a_file), "-q"]) == 2
    assert "existing file" in capsys.readouterr().err
    assert main(["predict", str(run), str(images), "--out", str(images), "-q"]) == 2
    assert "input folder" in capsys.readouterr().err
    out = tmp_path / "pred"
    out.mkdir()
    with folder_lock(out, "predict"):
        assert main(["predict", str(run), str(images), "--out", str(out), "-q"]) == 2
        err = capsys.readouterr().err
        assert f"PID {os.getpid()}" in err and err.count("\n") == 1
    assert main(["predict", str(run), str(images), "--out", str(out), "-q"]) == 0
    capsys.readouterr()
    assert main(["predict", str(run), str(images), "--out", str(out), "--threshold", "0.9",
                 "-q"]) == 2
    assert "another model or threshold" in capsys.readouterr().err
    (out / "predict.json").write_text("{}")  # rows whose model nobody can tell: never mixed in
    assert main(["predict", str(run), str(images), "--out", str(out), "-q"]) == 2
    assert "unrecorded model" in capsys.readouterr().err


@pytest.mark.slow  # a subprocess or several trainings: big by nature
def test_killed_predict_resumes_with_one_row_and_one_set_of_files_per_image(
        run: Path, images: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    for i in range(3, 7):
        write_image(images / f"im{i}.png", smooth_image(rng, 48, 64))
    out = tmp_path / "pred"
    command = [sys.executable, "-m", "fakeseg", "predict", str(run), str(images), "--out",
               str(out), "--batch-size", "2", "-q"]
    env = {**os.environ, "FAKESEG_TEST_KILL_AT": "predict_row:3"}
    killed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9
    assert not json.loads((out / "predict.json").read_text())["complete"]
    assert not (out / "results.csv").exists()
    assert len((out / "results.jsonl").read_text().splitlines()) == 3
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "3 done by an earlier run" in resumed.stdout
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["name"] for r in rows) == [f"im{i}" for i in range(7)]
    assert len(list(out.glob("*_heat.npy"))) == 7 and not list(out.glob(".*tmp*"))
    assert len((out / "results.csv").read_text().strip().splitlines()) == 8
    fresh = tmp_path / "fresh"
    assert main(["predict", str(run), str(images), "--out", str(fresh), "-q"]) == 0
    for row in rows:  # resumed maps equal an uninterrupted run's (up to float32 rounding:
        # with several threads a batch's make-up moves the last bits)
        np.testing.assert_allclose(np.load(out / row["heat_npy"]),
                                   np.load(fresh / row["heat_npy"]), rtol=0, atol=1e-6)


def test_non_finite_output_is_an_error_never_a_score(model: Localizer) -> None:
    net = copy.deepcopy(model.net)
    with torch.no_grad():
        next(p for p in net.parameters() if p.requires_grad).fill_(float("nan"))
    broken = Localizer(net, dict(model.meta), device="cpu")
    with pytest.raises(FakesegError, match="NaN or infinite probabilities"):
        broken.predict(np.zeros((32, 32, 3), np.float32))
    assert isinstance(model.predict(np.full((32, 32, 3), 0.5, np.float32)), HeatMap)


def test_python_m_fakeseg_runs() -> None:
    done = subprocess.run([sys.executable, "-m", "fakeseg", "--version"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("fakeseg ")


def test_read_image_and_api_agree_on_16_bit_gray(model: Localizer, tmp_path: Path) -> None:
    gray16 = (np.random.default_rng(5).random((32, 40)) * 65535).astype(np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(gray16).save(path)
    np.testing.assert_allclose(read_image(path)[:, :, 0], gray16 / 65535.0, atol=1e-6)
    np.testing.assert_allclose(model.predict(gray16).probability,
                               model.predict(path).probability, atol=1e-5)


def test_smooth_sigma_replaces_the_models_smoothing_and_is_part_of_a_runs_identity(
        model: Localizer, run: Path, images: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert model.smooth_sigma == TrainConfig.smooth_sigma > 0
    image = torch.from_numpy(read_image(images / "im0.png")).permute(2, 0, 1)[None]
    with torch.no_grad():
        raw = torch.sigmoid(model.net.eval().forward_any_size(image))
    assert (model.predict_tensor(image) - raw).abs().max() > 1e-4  # the default smooths
    out = tmp_path / "pred"
    assert main(["predict", str(run), str(images), "--out", str(out), "--smooth-sigma", "0",
                 "-q"]) == 0
    row = next(r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())
               if r["name"] == "im0")
    np.testing.assert_allclose(np.load(out / row["heat_npy"]), raw[0, 0].numpy(), atol=1e-5)
    assert main(["predict", str(run), str(images), "--out", str(out), "-q"]) == 2
    assert "smooth_sigma differ" in capsys.readouterr().err
    assert main(["predict", str(run), str(images), "--out", str(tmp_path / "bad"),
                 "--smooth-sigma", "-1", "-q"]) == 2
    assert "--smooth-sigma -1.0 must be a number ≥ 0" in capsys.readouterr().err


def test_flip_tta_averages_each_map_with_its_mirrors_and_is_part_of_a_runs_identity(
        model: Localizer, run: Path, images: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    image = torch.from_numpy(read_image(images / "im0.png")).permute(2, 0, 1)[None]
    plain = model.predict_tensor(image)
    mirror = model.predict_tensor(image.flip(-1)).flip(-1)
    assert (plain - mirror).abs().max() > 1e-5  # the model is not symmetric: the test can tell
    torch.testing.assert_close(model.predict_tensor(image, flip_tta=True), 0.5 * (plain + mirror))
    wide = torch.cat([image, image.flip(-1)], dim=-1)  # tiled: each window averaged alike
    torch.testing.assert_close(model.predict_tensor(wide, tile=64, overlap=32, flip_tta=True),
                               0.5 * (model.predict_tensor(wide, tile=64, overlap=32)
                                      + model.predict_tensor(wide.flip(-1), tile=64,
                                                             overlap=32).flip(-1)))
    out = tmp_path / "pred"
    assert main(["predict", str(run), str(images), "--out", str(out), "--flip-tta", "-q"]) == 0
    row = next(r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())
               if r["name"] == "im0")
    np.testing.assert_allclose(np.load(out / row["heat_npy"]),
                               0.5 * (plain + mirror)[0, 0].numpy(), atol=1e-6)
    assert main(["predict", str(run), str(images), "--out", str(out), "-q"]) == 2
    assert "flip_tta differ" in capsys.readouterr().err
