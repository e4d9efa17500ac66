"""The one image reader: formats, bit depths, EXIF, bombs, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fakeseg.errors import ImageReadError
from fakeseg.io import (
    expand_inputs,
    list_images,
    read_image,
    read_label_map,
    read_mask,
    read_size,
    set_max_pixels,
    write_image,
    write_json,
)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif", ".webp", ".bmp"])
def test_formats_read_as_float_rgb(tmp_path: Path, ext: str) -> None:
    data = (np.arange(16 * 24 * 3) % 256).astype(np.uint8).reshape(16, 24, 3)
    path = tmp_path / f"a{ext}"
    Image.fromarray(data).save(path)
    image = read_image(path)
    assert image.shape == (16, 24, 3) and image.dtype == np.float32
    assert image.min() >= 0.0 and image.max() <= 1.0
    if ext in (".png", ".tif", ".bmp"):
        np.testing.assert_allclose(image, data / 255.0, atol=1e-6)


def test_grayscale_rgba_and_16bit(tmp_path: Path) -> None:
    gray = np.full((8, 8), 128, np.uint8)
    Image.fromarray(gray).save(tmp_path / "g.png")
    assert np.allclose(read_image(tmp_path / "g.png"), 128 / 255)
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert np.allclose(read_image(tmp_path / "a.png")[..., 0], 200 / 255)
    deep = np.full((8, 8), 40000, np.uint16)
    Image.fromarray(deep).save(tmp_path / "d.png")
    np.testing.assert_allclose(read_image(tmp_path / "d.png"), 40000 / 65535, rtol=1e-6)


def test_exif_orientation_is_honoured(tmp_path: Path) -> None:
    data = np.zeros((10, 20, 3), np.uint8)
    image = Image.fromarray(data)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    image.save(tmp_path / "r.jpg", exif=exif)
    assert read_image(tmp_path / "r.jpg").shape == (20, 10, 3)


def test_bad_files_give_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    (tmp_path / "x.gif").write_bytes(b"GIF89a")
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 77).save(good)
    (tmp_path / "trunc.png").write_bytes(good.read_bytes()[:60])
    cases = {"empty.png": "0 bytes", "junk.png": "not a readable image",
             "x.gif": "unknown image extension", "trunc.png": "corrupt",
             "missing.png": "no such file"}
    for name, expected in cases.items():
        with pytest.raises(ImageReadError) as info:
            read_image(tmp_path / name)
        message = str(info.value)
        assert name in message and expected in message and "\n" not in message


def test_decompression_bomb_limit_can_be_raised(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(tmp_path / "big.png")
    try:
        set_max_pixels(5000)
        with pytest.raises(ImageReadError, match="--max-pixels"):
            read_image(tmp_path / "big.png")
        set_max_pixels(20000)
        assert read_image(tmp_path / "big.png").shape == (100, 100, 3)
    finally:
        set_max_pixels(None)


def test_masks_accept_0_1_and_0_255_and_invert(tmp_path: Path) -> None:
    mask = np.zeros((8, 8), np.uint8)
    mask[:4] = 1
    Image.fromarray(mask).save(tmp_path / "m01.png")
    Image.fromarray(mask * 255).save(tmp_path / "m255.png")
    for name in ("m01.png", "m255.png"):
        assert read_mask(tmp_path / name).sum() == 32
    assert read_mask(tmp_path / "m255.png", invert=True)[:4].sum() == 0
    noisy = (np.random.default_rng(0).random((8, 8)) * 255).astype(np.uint8)
    Image.fromarray(noisy).save(tmp_path / "grey.png")
    with pytest.raises(ImageReadError, match="not a binary mask"):
        read_mask(tmp_path / "grey.png")


def test_atomic_writes_leave_no_temp_files(tmp_path: Path) -> None:
    write_image(tmp_path / "o.png", np.zeros((4, 4, 3), np.float32))
    write_json(tmp_path / "o.json", {"a": np.float32(1.5), "p": tmp_path})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.json", "o.png"]


def test_listing_and_globs(tmp_path: Path) -> None:
    from fakeseg.errors import FakesegError

    with pytest.raises(FakesegError, match="no images found"):
        list_images(tmp_path)
    for i in range(3):
        write_image(tmp_path / f"{i}.png", np.zeros((4, 4, 3), np.float32))
    assert len(list_images(tmp_path)) == 3
    assert len(expand_inputs([str(tmp_path / "*.png"), str(tmp_path / "0.png")])) == 3
    with pytest.raises(FakesegError, match="matches no image"):
        expand_inputs([str(tmp_path / "*.tif")])


def test_16bit_colour_png_and_tiff_keep_full_precision(tmp_path: Path) -> None:
    import tifffile

    from tests.robustness.make import write_png16

    rng = np.random.default_rng(0)
    for channels in (3, 4):
        data = rng.integers(0, 65536, (9, 11, channels)).astype(np.uint16)
        image = read_image(write_png16(tmp_path / f"c{channels}.png", data))
        np.testing.assert_array_equal(np.round(image * 65535).astype(np.uint16), data[..., :3])
    data = rng.integers(0, 65536, (9, 11, 3)).astype(np.uint16)
    for name, options in {"le": {"byteorder": "<"}, "be": {"byteorder": ">"},
                          "zip": {"compression": "zlib"}}.items():
        tifffile.imwrite(tmp_path / f"{name}.tif", data, **options)
        image = read_image(tmp_path / f"{name}.tif")
        np.testing.assert_array_equal(np.round(image * 65535).astype(np.uint16), data)
    extra = rng.integers(0, 65536, (9, 11, 4)).astype(np.uint16)  # RGB + an unnamed sample
    tifffile.imwrite(tmp_path / "x.tif", extra, photometric="rgb", extrasamples=[0])
    image = read_image(tmp_path / "x.tif")
    np.testing.assert_array_equal(np.round(image * 65535).astype(np.uint16), extra[..., :3])


def test_exif_orientations_match_pillow(tmp_path: Path) -> None:
    from PIL import ImageOps

    data = (np.arange(6 * 4 * 3) * 3 % 256).astype(np.uint8).reshape(6, 4, 3)
    for orientation in range(1, 9):
        image = Image.fromarray(data)
        exif = image.getexif()
        exif[0x0112] = orientation
        path = tmp_path / f"o{orientation}.png"
        image.save(path, exif=exif)
        expected = np.asarray(ImageOps.exif_transpose(Image.open(path)))
        np.testing.assert_array_equal(np.round(read_image(path) * 255), expected)
        assert read_size(path) == (expected.shape[1], expected.shape[0])


def test_only_allowed_decoders_and_header_bomb_check(tmp_path: Path) -> None:
    from tests.robustness.make import write_eps, write_png_header_only

    with pytest.raises(ImageReadError, match="not a readable image"):
        read_image(write_eps(tmp_path / "ghost.png"))
    limit = Image.MAX_IMAGE_PIXELS
    bomb = write_png_header_only(tmp_path / "bomb.png", 20_000, 10_000)  # 200 Mpx
    with pytest.raises(ImageReadError, match="decompression-bomb"):
        read_image(bomb)
    try:
        set_max_pixels(300_000_000)  # above Pillow's own hard limit: ours decides
        assert read_size(bomb) == (20_000, 10_000)
        with pytest.raises(ImageReadError, match="corrupt"):
            read_image(bomb)
    finally:
        set_max_pixels(None)
    assert limit == Image.MAX_IMAGE_PIXELS  # never touched


def test_non_finite_float_images_are_refused(tmp_path: Path) -> None:
    from tests.robustness.make import write_float_tiff

    good = np.full((6, 6), 0.25, np.float32)
    np.testing.assert_allclose(read_image(write_float_tiff(tmp_path / "ok.tif", good)), 0.25)
    for value in (np.nan, np.inf, -np.inf):
        bad = good.copy()
        bad[2, 3] = value
        with pytest.raises(ImageReadError, match="NaN or infinite") as info:
            read_image(write_float_tiff(tmp_path / "bad.tif", bad))
        assert "bad.tif" in str(info.value)


def test_label_maps_with_alpha_and_access_errors(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import fakeseg.io

    labels = np.zeros((5, 7, 2), np.uint8)
    labels[:, 3:, 0], labels[..., 1] = 2, 255
    Image.fromarray(labels, "LA").save(tmp_path / "la.png")
    assert read_label_map(tmp_path / "la.png").tolist() == (labels[..., 0]).tolist()
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(good)

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(fakeseg.io, "open", denied, raising=False)
    with pytest.raises(ImageReadError, match=r"good\.png: permission denied"):
        read_image(good)
    monkeypatch.undo()
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")
    (tmp_path / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    os.mkfifo(tmp_path / "fifo.png")
    for name, reason in (("loop.png", "symbolic link loop"),
                         ("dangling.png", "broken symbolic link"),
                         ("fifo.png", "not a regular file")):
        with pytest.raises(ImageReadError, match=reason):
            read_image(tmp_path / name)


def test_control_characters_in_names_never_split_a_message(tmp_path: Path) -> None:
    path = tmp_path / "evil\nfakeseg: error: forged.png"
    path.write_bytes(b"junk")
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    message = str(info.value)
    assert "\n" not in message and "evil\\nfakeseg" in message


def test_integer_samples_scale_by_type_whatever_the_byte_order() -> None:
    """uint16 in big-endian order is still 16-bit: ÷ 65535, as in native order (it used to
    pass through unscaled in pixels_to_float and be refused by the array API)."""
    from fakeseg.io import pixels_to_float, to_rgb_float

    native = np.arange(0, 65536, 257, dtype=np.uint16).reshape(16, 16)
    swapped = native.astype(">u2")
    expected = native.astype(np.float32) / 65535.0
    np.testing.assert_array_equal(pixels_to_float(swapped), expected)
    np.testing.assert_array_equal(to_rgb_float(swapped), to_rgb_float(native))
    assert float(to_rgb_float(swapped).max()) == 1.0
