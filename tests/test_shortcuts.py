"""The shortcut check: labels readable from the image's frame or size, not its pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fakeseg.data.labeled import LabeledImage, load_labeled
from fakeseg.data.shortcuts import (
    crop_for_frame,
    edge_features,
    find_shortcuts,
    frame_width,
    unframe,
)
from fakeseg.detection.evaluate import evaluate_detection, save_detection_evaluation
from fakeseg.errors import FakesegError
from fakeseg.io import read_image, write_image
from tests.conftest import save_tiny_segmenter, smooth_image
from tests.test_detection import FAST, write_dataset

GENERATOR_COLOURS = [(1.0, 1.0, 0.0), (0.0, 1.0, 1.0), (1.0, 0.0, 0.0)]


def _framed(picture: np.ndarray, colour: tuple[float, float, float], width: int) -> np.ndarray:
    height, side = picture.shape[:2]
    out = np.empty((height + 2 * width, side + 2 * width, 3), np.float32)
    out[:] = colour
    out[width:width + height, width:width + side] = picture
    return out


def _write(root: Path, n: int, frame: int, fake_side: int = 40, seed: int = 0) -> Path:
    """n real and n synthetic images with the same kind of picture; optionally the ranking
    page's frames (grey for real, a colour per generator for synthetic)."""
    rng = np.random.default_rng(seed)
    for k in range(n):
        real, fake = smooth_image(rng, 40, 40), smooth_image(rng, fake_side, fake_side)
        if frame:
            real = _framed(real, (0.13, 0.13, 0.13), frame)
            fake = _framed(fake, GENERATOR_COLOURS[k % 3], frame)
        write_image(root / "real" / f"{k}_g{k % 3}_real.png", real)
        write_image(root / "fake" / f"{k}_g{k % 3}_fake.png", fake)
    return root


def test_frame_width_and_edge_features_read_only_the_border() -> None:
    rng = np.random.default_rng(0)
    picture = smooth_image(rng, 20, 30)
    assert frame_width(picture) == 0
    assert frame_width(_framed(picture, (1.0, 0.0, 0.0), 7)) == 7
    framed = _framed(picture, (0.2, 0.4, 0.6), 6)
    np.testing.assert_allclose(edge_features(framed), [0.2, 0.4, 0.6, 0, 0, 0], atol=1e-5)
    assert edge_features(np.zeros((2, 2, 3), np.float32)).shape == (6,)  # tiny: no crash


def test_a_coloured_frame_per_class_is_found_and_named(tmp_path: Path) -> None:
    items = load_labeled(_write(tmp_path / "framed", 12, frame=6))
    found = find_shortcuts(items)
    assert [s.cue for s in found] == ["edge colour"]
    assert found[0].balanced_accuracy >= 0.9
    message = found[0].message("DATA")
    assert message.startswith("DATA: the edge colour alone tells real from synthetic images")
    assert "(33, 33, 33)" in message and "uniform frame 6 against 6 px" in message
    assert "crop the frame off" in message


def test_the_same_pictures_without_frames_raise_nothing(tmp_path: Path) -> None:
    assert find_shortcuts(load_labeled(_write(tmp_path / "plain", 12, frame=0))) == []
    # too few images to judge: nothing is claimed
    assert find_shortcuts(load_labeled(_write(tmp_path / "few", 4, frame=6))) == []


def test_a_size_per_class_is_found(tmp_path: Path) -> None:
    found = find_shortcuts(load_labeled(_write(tmp_path / "sizes", 12, 0, fake_side=56)))
    assert [s.cue for s in found] == ["image size"]
    assert "median size 40×40 against 56×56" in found[0].message("DATA")
    assert "same sizes" in found[0].message("DATA")


def test_an_unreadable_file_is_left_to_the_loaders(tmp_path: Path) -> None:
    root = _write(tmp_path / "framed", 12, frame=6)
    (root / "fake" / "broken.png").write_bytes(b"not an image")
    items = [*load_labeled(root), LabeledImage(root / "missing.png", 1)]
    assert [s.cue for s in find_shortcuts(items, sample=100)] == ["edge colour"]


def test_detection_evaluation_records_and_prints_the_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_tiny_segmenter(tmp_path / "seg")
    data = _write(tmp_path / "framed", 12, frame=8)
    result = evaluate_detection(tmp_path / "seg", data, scorer="heatmap", device="cpu",
                                progress=False)
    assert len(result.shortcuts) == 1 and "edge colour alone" in result.shortcuts[0]
    assert "edge colour alone" in capsys.readouterr().err
    save_detection_evaluation(result, tmp_path / "eval")
    assert "- **warning**: " + result.shortcuts[0] in (tmp_path / "eval" / "metrics.md").read_text()
    listed = evaluate_detection(tmp_path / "seg", load_labeled(data), scorer="heatmap",
                                device="cpu", progress=False)  # a list names no folder
    assert listed.shortcuts[0].startswith("the given images: the edge colour alone")


@pytest.mark.slow  # fits a detector on every cell
def test_a_detection_benchmark_carries_the_warning(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from fakeseg.detection.benchmark import benchmark_detection
    from fakeseg.io import read_image

    data = write_dataset(tmp_path / "data", n=6)
    for path in data.glob("*/*.png"):  # the ranking page's frames, as in the shared sample
        colour = (0.13, 0.13, 0.13) if path.parent.name == "real" else (1.0, 1.0, 0.0)
        write_image(path, _framed(read_image(path), colour, 8))
    result = benchmark_detection(data, tmp_path / "bench", methods=["spectral"], seeds=1,
                                 options=FAST, bootstrap=20, progress=False)
    assert len(result.shortcuts) == 1 and "edge colour alone" in result.shortcuts[0]
    assert f"**Warning: {result.shortcuts[0]}.**" in (tmp_path / "bench" / "metrics.md").read_text()
    assert "edge colour alone" in capsys.readouterr().err


def test_classifier_training_warns_before_it_trains(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from fakeseg.config import ClassifierConfig
    from fakeseg.training.classification import ClassificationTask

    data = _write(tmp_path / "framed", 12, frame=6)
    ClassificationTask(ClassifierConfig(backbone="tiny_cnn", size=32), data).check_data()
    err = capsys.readouterr().err
    assert err.count("edge colour alone tells real from synthetic") == 1
    assert str(data.resolve()) in err
    ClassificationTask(ClassifierConfig(backbone="tiny_cnn", size=32),
                       _write(tmp_path / "plain", 12, frame=0)).check_data()
    assert capsys.readouterr().err == ""


def test_crop_for_frame_goes_past_the_jpeg_block_that_carries_the_frames_colour() -> None:
    assert [crop_for_frame(w, jpeg=False) for w in (0, 6, 50)] == [0, 6, 50]
    assert [crop_for_frame(w, jpeg=True) for w in (0, 6, 14, 48, 50, 62)] == [0, 20, 20, 68,
                                                                              68, 68]


def test_unframe_crops_each_frame_copies_the_rest_skips_bad_files_and_resumes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    data = _write(tmp_path / "framed", 12, frame=6)
    rng = np.random.default_rng(1)
    write_image(data / "real" / "plain_real.png", smooth_image(rng, 40, 40))
    jpeg = (_framed(smooth_image(rng, 64, 64), (1.0, 0.0, 0.0), 20) * 255).astype(np.uint8)
    Image.fromarray(jpeg).save(data / "fake" / "framed_fake.jpg", quality=75)
    (data / "fake" / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    result = unframe(data, out, progress=False)
    assert result.cropped["real/0_g0_real.png"] == 6 and result.cropped["fake/0_g0_fake.png"] == 6
    assert result.cropped["fake/framed_fake.jpg"] == 36  # frame 20 → past the 32-px block
    with Image.open(out / "fake" / "framed_fake.png") as image:
        assert image.size == (104 - 72, 104 - 72)
    np.testing.assert_array_equal(read_image(out / "fake" / "0_g0_fake.png"),
                                  read_image(data / "fake" / "0_g0_fake.png")[6:-6, 6:-6])
    assert result.copied == ["real/plain_real.png"]
    assert (out / "real" / "plain_real.png").read_bytes() == \
        (data / "real" / "plain_real.png").read_bytes()
    assert [s.input for s in result.skipped] == [str(data / "fake" / "broken.png")]
    assert "skipped " in capsys.readouterr().err
    assert result.shortcuts == []  # the copy no longer gives the label away
    assert "25 image(s) cropped (6–36 px off each side), 1 without a frame copied, 1 " \
           "unreadable skipped" in result.summary() and "none left" in result.summary()
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    unframe(data, out, progress=False)  # a rerun keeps every finished file
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamps
    again = unframe(data, out, border=3, progress=False)  # other settings: rewritten, not mixed
    assert set(again.cropped.values()) == {3}
    with Image.open(out / "real" / "0_g0_real.png") as image:
        assert image.size == (52 - 6, 52 - 6)


def test_data_shortcuts_and_unframe_commands(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from fakeseg.cli import main

    framed = _write(tmp_path / "framed", 12, frame=6)
    assert main(["data", "shortcuts", str(framed)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"fakeseg: problem: {framed}: the edge colour alone")
    assert main(["data", "unframe", str(framed), "--out", str(tmp_path / "out")]) == 0
    assert "shortcut check of the copy: none left" in capsys.readouterr().out
    assert main(["data", "shortcuts", str(tmp_path / "out")]) == 0
    assert "neither the edge colour nor the image size" in capsys.readouterr().out
    assert main(["data", "unframe", str(framed), "--out", str(framed / "inside")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith(
        "fakeseg: error:")]
    assert len(errors) == 1 and "--out must lie outside" in errors[0]


def test_unframe_keeps_what_readers_see_and_never_leaves_mixed_or_lossy_outputs(
        tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(2)
    data = tmp_path / "data"
    data.mkdir()
    framed = (_framed(smooth_image(rng, 60, 100), (0.8, 0.8, 0.8), 10) * 255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated by 90°: every fakeseg reader applies it
    Image.fromarray(framed).save(data / "turned.png", exif=exif)
    deep = (_framed(smooth_image(rng, 20, 20), (0.5, 0.5, 0.5), 6) * 65535).astype(np.uint16)
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(data / "deep.tif", deep, photometric="rgb")
    out = tmp_path / "out"
    result = unframe(data, out, progress=False)
    np.testing.assert_array_equal(read_image(out / "turned.png"),
                                  read_image(data / "turned.png")[10:-10, 10:-10])
    assert [s.input for s in result.skipped] == [str(data / "deep.tif")]
    assert "more than 8 bits" in result.skipped[0].reason and not (out / "deep.png").exists()
    # a rerun that crops nothing copies, and takes the earlier run's crop away
    unframe(data, out, border=0, progress=False)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "deep.tif", "turned.png"]
    assert (out / "turned.png").read_bytes() == (data / "turned.png").read_bytes()
    # two inputs that would share an output name: one line, nothing written
    write_image(data / "turned.jpg", smooth_image(rng, 30, 30))
    with pytest.raises(FakesegError, match=r"turned\.(png|jpg) and .*turned\.(png|jpg): both "
                                           r"would be written as turned\.png"):
        unframe(data, tmp_path / "other", progress=False)
    assert not (tmp_path / "other").exists()
