"""Hostile and unusual image files (§1, §5): through ``data check`` (one problem line per bad
file, the rest still checked) and the reader. See README.md for the case table."""

from __future__ import annotations

import inspect
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fakeseg.io
from fakeseg.errors import ImageReadError
from fakeseg.io import read_image, set_max_pixels, write_image
from tests.conftest import make_pairs
from tests.robustness.helpers import assert_problem_line, run_cli
from tests.robustness.make import (
    write_eps,
    write_float_tiff,
    write_png16,
    write_png_header_only,
)


@pytest.fixture
def pairs(tmp_path: Path) -> Path:
    return make_pairs(tmp_path / "pairs", n=3, size=(32, 32))


def _check(capsys: pytest.CaptureFixture[str], root: Path) -> tuple[int, str]:
    code, _, err = run_cli(capsys, "data", "check", str(root))
    return code, err


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_float_tiff_with_non_finite_pixels_is_named(pairs: Path, value: float,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    array = np.full((32, 32, 3), 0.5, np.float32)
    array[3, 4, 0] = value
    write_float_tiff(pairs / "synthetic" / "p9.tif", array[..., 0])
    write_image(pairs / "real" / "p9.png", np.full((32, 32, 3), 0.5, np.float32))
    code, err = _check(capsys, pairs)
    assert code == 1
    assert_problem_line(err, "p9.tif", "NaN or infinite")
    assert err.count("fakeseg: problem: ") == 1  # the other pairs were fine


def test_eps_named_png_never_reaches_ghostscript(pairs: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import EpsImagePlugin

    called: list[object] = []
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: called.append(a))
    write_eps(pairs / "synthetic" / "p0.jpg")
    code, err = _check(capsys, pairs)
    assert code == 1 and not called
    assert_problem_line(err, "p0.jpg", "not a readable image")


def test_16bit_colour_is_read_at_full_precision(tmp_path: Path) -> None:
    data = np.random.default_rng(1).integers(0, 65536, (12, 10, 3)).astype(np.uint16)
    image = read_image(write_png16(tmp_path / "deep.png", data))
    np.testing.assert_array_equal(np.round(image * 65535).astype(np.uint16), data)
    assert len(np.unique(image)) > 256  # not squeezed to 8 bit


def test_bomb_check_is_thread_safe_and_never_touches_pillow(tmp_path: Path) -> None:
    assert "MAX_IMAGE_PIXELS =" not in inspect.getsource(fakeseg.io)
    bomb = write_png_header_only(tmp_path / "bomb.png", 30_000, 30_000)
    good = write_image(tmp_path / "good.png", np.zeros((8, 8, 3), np.float32))
    before = Image.MAX_IMAGE_PIXELS
    results: list[str] = []

    def work(path: Path) -> None:
        for _ in range(20):
            try:
                read_image(path)
                results.append("ok")
            except ImageReadError as exc:
                results.append("bomb" if "decompression-bomb" in str(exc) else str(exc))

    threads = [threading.Thread(target=work, args=(p,)) for p in (bomb, good) * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(set(results)) == ["bomb", "ok"] and len(results) == 160
    assert before == Image.MAX_IMAGE_PIXELS
    set_max_pixels(None)


def test_la_label_map_is_a_label_not_a_size_mismatch(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    root = make_pairs(tmp_path / "pairs", n=3, size=(32, 32), labels=True)
    la = np.zeros((32, 32, 2), np.uint8)
    la[16:, :, 0], la[..., 1] = 1, 255
    Image.fromarray(la, "LA").save(root / "labels" / "p1.png")
    code, err = _check(capsys, root)
    assert code == 0, err


def test_permission_denied_is_reported_as_such(pairs: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    real_open = open

    def deny_p1(path: object, *args: object, **kwargs: object) -> object:
        if str(path).endswith("p1.png"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(fakeseg.io, "open", deny_p1, raising=False)
    code, err = _check(capsys, pairs)
    assert code == 1
    line = assert_problem_line(err, "p1.png", "permission denied")
    assert "corrupt" not in line and "No such file" not in line


def test_newline_in_a_file_name_stays_on_one_line(pairs: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    stem = "evil\nfakeseg: problem: forged"
    (pairs / "real" / f"{stem}.png").write_bytes(b"junk")
    (pairs / "synthetic" / f"{stem}.png").write_bytes(b"junk")
    code, err = _check(capsys, pairs)
    assert code == 1
    assert err.count("\n") == 2  # two bad files, two lines
    line = assert_problem_line(err, "evil\\nfakeseg: problem: forged.png: not a readable image")
    assert line.startswith(f"fakeseg: problem: {pairs}")


@pytest.mark.parametrize("case", ["fifo", "loop", "dangling", "folder"])
def test_special_files_are_named(pairs: Path, case: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    import os

    target = pairs / "synthetic" / "p2.jpg"
    target.unlink()
    expected = {"fifo": "not a regular file", "loop": "symbolic link loop",
                "dangling": "broken symbolic link", "folder": ""}[case]
    if case == "fifo":
        os.mkfifo(target)
    elif case == "loop":
        target.symlink_to(target)
    elif case == "dangling":
        target.symlink_to(pairs / "nowhere.jpg")
    else:
        target.mkdir()
    code, err = _check(capsys, pairs)
    assert code == 1
    assert_problem_line(err, "p2", expected)
