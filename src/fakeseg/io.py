"""The one image reader, plus atomic writes.

Every image that enters fakeseg goes through :func:`read_image`: it accepts PNG, JPEG, TIFF,
WebP and BMP in 8 or 16 bit, grayscale, RGB or RGBA; honours EXIF orientation; refuses
decompression bombs (the limit can be raised); and turns every failure into one line that
names the file and the fix.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import json
import os
import shutil
import stat
import struct
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps

from fakeseg.errors import FakesegError, FolderInUseError, ImageReadError, printable

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"}
)
#: the only Pillow decoders a file may reach, whatever its bytes claim (an EPS named .png
#: must never get to the Ghostscript plugin)
IMAGE_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "TIFF", "WEBP", "BMP")
DEFAULT_MAX_PIXELS = 100_000_000
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma: the one grey of an RGB image
_max_pixels = DEFAULT_MAX_PIXELS
#: what Pillow's decoders raise on malformed data, while identifying or decoding
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError,
                  struct.error, ZeroDivisionError)
#: EXIF orientation → the array operation that shows the image upright (as ImageOps does)
_ORIENT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1), 8: lambda a: np.rot90(a, 1),
}
_SWAP_16 = {";16B": ";16L", ";16L": ";16B", ";16N": ";16B" if sys.byteorder == "little" else ";16L"}


def set_max_pixels(limit: int | None) -> None:
    """Set the decompression-bomb limit in pixels (None restores the default)."""
    global _max_pixels
    _max_pixels = DEFAULT_MAX_PIXELS if limit is None else int(limit)
    if _max_pixels <= 0:
        raise FakesegError(f"--max-pixels must be positive, got {limit}")


def get_max_pixels() -> int:
    return _max_pixels


def is_image_file(path: Path) -> bool:
    """A regular file with an image extension; dotfiles (our temps, macOS ``._x``) are not."""
    return (not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS
            and path.is_file())


def _access_error(path: Path, exc: OSError) -> ImageReadError:
    """An OSError from stat/open as one line with its real cause (permission, loop, ...)."""
    if exc.errno in (errno.EACCES, errno.EPERM):
        return ImageReadError(path, "permission denied", "make the file readable (chmod +r)")
    if exc.errno == errno.ENOENT:
        reason = "broken symbolic link" if path.is_symlink() else "no such file"
        return ImageReadError(path, reason, "check the path")
    if exc.errno == errno.ELOOP:
        return ImageReadError(path, "symbolic link loop", "point the link at a real file")
    return ImageReadError(path, f"cannot open ({exc.strerror or exc})", "check the path")


@contextlib.contextmanager
def _open(path: Path) -> Iterator[ImageFile.ImageFile]:
    """The image at ``path``, identified and size-checked but not yet decoded.

    Only the decoders of :data:`IMAGE_FORMATS` are tried. The pixel count comes from the
    header, before any decoding, so the bomb check needs no process-wide Pillow setting.
    """
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        allowed = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise ImageReadError(path, f"unknown image extension '{path.suffix}'",
                             f"use one of {allowed}")
    try:
        info = path.stat()
    except OSError as exc:
        raise _access_error(path, exc) from exc
    if stat.S_ISDIR(info.st_mode):
        raise ImageReadError(path, "is a folder, not an image", "pass an image file")
    if not stat.S_ISREG(info.st_mode):
        raise ImageReadError(path, "not a regular file (a FIFO, socket or device)",
                             "pass an image file")
    if info.st_size == 0:
        raise ImageReadError(path, "file is empty (0 bytes)", "re-export or remove it")
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise _access_error(path, exc) from exc
    with handle:
        image = _identify(path, handle)
        width, height = image.size
        if width * height > _max_pixels:
            raise ImageReadError(
                path,
                f"{width}x{height} = {width * height:,} pixels exceeds the limit of "
                f"{_max_pixels:,} (decompression-bomb guard)",
                "raise it with --max-pixels if you trust this file",
            )
        yield image


def _identify(path: Path, handle: BinaryIO) -> ImageFile.ImageFile:
    """Pillow's own identification loop (``Image.open``), restricted to our formats and
    without its global ``MAX_IMAGE_PIXELS`` check (:func:`_open` applies ours)."""
    Image.init()
    prefix = handle.read(16)
    for name in IMAGE_FORMATS:
        factory, accept = Image.OPEN[name]
        accepted = accept(prefix) if accept is not None else True
        if not accepted or isinstance(accepted, str):  # a str: "support not installed"
            continue
        handle.seek(0)
        try:
            return factory(handle, str(path))
        except _DECODE_ERRORS:
            continue
    raise ImageReadError(path, "not a readable image (corrupt, or not PNG, JPEG, TIFF, WebP or "
                               "BMP inside)", "re-export or remove it")


def _decode(path: Path, image: Image.Image) -> None:
    try:
        image.load()
    except _DECODE_ERRORS as exc:
        raise ImageReadError(path, f"truncated or corrupt image ({exc})",
                             "re-export or remove it") from exc


def _orientation(image: Image.Image) -> int:
    try:  # a broken EXIF block must not lose a good image
        return int(image.getexif().get(0x0112, 1))
    except Exception:
        return 1


def _deep_colour(path: Path, image: ImageFile.ImageFile) -> np.ndarray | None:
    """16-bit RGB(A) as uint16 (H, W, C), or None for any other image.

    Pillow has no 16-bit colour mode: it keeps the high byte of each sample. Decoding the
    same data a second time with the byte order swapped yields the low byte, and the two make
    the full 16-bit value (the decoders do the decompression and PNG filtering, in C).
    """
    if image.mode not in ("RGB", "RGBA") or len(image.tile) == 0:
        return None
    rawmodes = {tile.args if isinstance(tile.args, str) else (tile.args or ("",))[0]
                for tile in image.tile}
    if len(rawmodes) != 1:
        return None
    rawmode = str(rawmodes.pop())
    suffix = rawmode[-4:]
    if suffix not in _SWAP_16:
        return None
    swapped = rawmode[:-4] + _SWAP_16[suffix]
    try:  # does Pillow unpack the swapped layout (RGB;16B, RGBA;16L, RGBX;16N, ...)?
        Image.frombytes(image.mode, (1, 1), bytes(16), "raw", swapped)
    except ValueError:
        from fakeseg.progress import warn

        warn(f"fakeseg: warning: {printable(path)}: 16-bit colour stored as '{rawmode}' is "
             "read at 8-bit precision; convert it to a 16-bit PNG for full precision")
        return None

    def with_rawmode(args: Any) -> Any:
        return swapped if isinstance(args, str) else (swapped, *args[1:])

    with _open(path) as low:
        low.tile = [tile._replace(args=with_rawmode(tile.args)) for tile in low.tile]
        _decode(path, low)
        low_bytes = np.asarray(low, dtype=np.uint16)
    _decode(path, image)
    return (np.asarray(image, dtype=np.uint16) << 8) | low_bytes


def _to_native_array(image: Image.Image, path: Path) -> np.ndarray:
    """The decoded samples at their stored depth: uint8, uint16, or float32 in [0, 1]."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(image, dtype=np.uint16)
    if mode == "I":
        array = np.asarray(image, dtype=np.int64)
        if array.max(initial=0) > 255:
            return np.clip(array, 0, 65535).astype(np.uint16)
        return np.clip(array, 0, 255).astype(np.uint8)
    if mode == "F":
        array = np.asarray(image, dtype=np.float32)
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        if bad:
            raise ImageReadError(path, f"{bad:,} pixel(s) are NaN or infinite",
                                 "replace them (e.g. with 0) and re-export")
        top = float(array.max(initial=0))
        return np.clip(array / (top if top > 1.0 else 1.0), 0.0, 1.0)
    if mode in ("1", "L", "P", "LA", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV"):
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    raise ImageReadError(path, f"unsupported pixel mode '{mode}'", "convert it to 8-bit RGB")


#: full scale of integer samples, by dtype name (NumPy's and torch's alike): the one rule by
#: which every reader turns samples into [0, 1]
FULL_SCALE: dict[str, float] = {"uint8": 255.0, "uint16": 65535.0}


def pixels_to_float(array: np.ndarray) -> np.ndarray:
    """uint8 / uint16 samples (or float already in [0, 1]) as float32 in [0, 1]."""
    scale = FULL_SCALE.get(array.dtype.name)
    if scale is not None:
        return array.astype(np.float32) / scale
    return array.astype(np.float32, copy=False)


def read_pixels(path: str | Path) -> np.ndarray:
    """Read an image as RGB (H, W, 3) at its stored depth: uint8 for 8-bit files, uint16 for
    16-bit ones, float32 in [0, 1] for float TIFFs. Same checks as :func:`read_image`, which
    is this converted with :func:`pixels_to_float`; streaming training keeps images in this
    compact form until a crop is taken."""
    path = Path(path)
    with _open(path) as image:
        deep = _deep_colour(path, image)
        if deep is not None:
            array = np.ascontiguousarray(deep[:, :, :3])
        else:
            _decode(path, image)
            array = _to_native_array(image, path)
        orientation = _orientation(image)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ImageReadError(path, f"unexpected array shape {array.shape}", "save it as RGB")
    array = _ORIENT.get(orientation, lambda a: a)(array)
    if min(array.shape[:2]) < 2:
        raise ImageReadError(
            path, f"image is {array.shape[1]}x{array.shape[0]}, too small", "use at least 2x2"
        )
    return np.ascontiguousarray(array)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as float32 RGB in [0, 1], shape (H, W, 3).

    Grayscale is repeated to three channels, alpha is dropped (the colour is kept as stored),
    16-bit data (grayscale or colour) keeps its full precision, and NaN/inf pixels of float
    TIFFs are an error.
    """
    return pixels_to_float(read_pixels(path))


def read_size(path: str | Path) -> tuple[int, int]:
    """(width, height) after EXIF orientation, without decoding the pixels where possible."""
    path = Path(path)
    with _open(path) as image:
        orientation = _orientation(image)
        width, height = image.size
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def read_label_map(path: str | Path) -> np.ndarray:
    """Read an integer class-id map (single channel) as int64 (H, W).

    A grey+alpha (LA/PA) file keeps its first channel: the alpha is not a class.
    """
    path = Path(path)
    with _open(path) as opened:
        _decode(path, opened)
        image: Image.Image = opened
        if image.mode in ("RGB", "RGBA"):
            raise ImageReadError(
                path, "label map is colour, expected one channel of integer class ids",
                "save it as a grayscale/palette PNG of class ids",
            )
        if image.mode in ("LA", "PA", "La"):
            image = image.getchannel(0)
        if image.mode == "F":
            raise ImageReadError(path, "label map holds floating-point values, expected "
                                       "integer class ids", "save it as an 8/16-bit PNG")
        return np.asarray(image, dtype=np.int64)


def read_mask(path: str | Path, *, invert: bool = False) -> np.ndarray:
    """Read a binary mask (0/1, 0/255 or 0/65535) as bool (H, W); ``invert`` flips it.

    Up to 5 % of pixels may sit between the two levels (JPEG or resampling edges); more
    than that means the file is not a mask.
    """
    path = Path(path)
    with _open(path) as opened:
        _decode(path, opened)
        image: Image.Image = opened
        if image.mode not in ("I;16", "I;16B", "I;16L", "I", "F", "L", "1"):
            image = image.convert("L")
        array = np.asarray(image, dtype=np.float64)
    if not np.isfinite(array).all():
        raise ImageReadError(path, "mask holds NaN or infinite values",
                             "save it as a 0/255 PNG")
    top = float(array.max(initial=0.0))
    if top > 0:
        scaled = array / top
        between = np.mean((scaled > 0.1) & (scaled < 0.9))
        if between > 0.05:
            raise ImageReadError(
                path, f"{between:.0%} of pixels are neither 0 nor {top:g}: not a binary mask",
                "threshold it to 0/255 (or 0/1) first",
            )
    mask = array > top / 2.0 if top > 0 else np.zeros(array.shape, dtype=bool)
    return ~mask if invert else mask


def to_uint8(image: np.ndarray, *, overwrite: bool = False) -> np.ndarray:
    """[0, 1] floats → uint8 (rounded). ``overwrite``: a float array is used as the scratch
    space (same result, no temporaries; its values are lost)."""
    if overwrite and isinstance(image, np.ndarray) and image.dtype.kind == "f":
        np.clip(image, 0.0, 1.0, out=image)
        image *= 255.0
        image += 0.5
        return image.astype(np.uint8)
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


@contextlib.contextmanager
def atomic_path(path: str | Path, *, temp_dir: Path | None = None) -> Iterator[Path]:
    """Yield a temporary path; rename it into place only on success.

    The temp sits next to ``path``, or in ``temp_dir`` (the folder :func:`folder_lock` yields,
    on the same file system) so that a killed run's temps are found without a scan.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix,
                                    dir=temp_dir or path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)  # mkstemp makes 0600; outputs are meant to be shared
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_image(path: str | Path, image: np.ndarray, *, temp_dir: Path | None = None,
                **save_kwargs: Any) -> Path:
    """Write an image atomically. Float arrays in [0, 1] become 8-bit; uint16 stays 16-bit."""
    path = Path(path)
    array = np.asarray(image)
    if array.dtype != np.uint8 and array.dtype != np.uint16:
        array = to_uint8(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    pil = Image.fromarray(array)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise FakesegError(f"{path}: unknown output extension; use .png or .jpg")
    with atomic_path(path, temp_dir=temp_dir) as tmp:
        pil.save(tmp, format=fmt, **save_kwargs)
    return path


def write_bytes(path: str | Path, data: bytes, *, temp_dir: Path | None = None) -> Path:
    with atomic_path(path, temp_dir=temp_dir) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str, *, temp_dir: Path | None = None) -> Path:
    return write_bytes(path, text.encode("utf-8"), temp_dir=temp_dir)


def write_csv(path: str | Path, columns: Sequence[str],
              rows: Iterable[Sequence[Any] | Mapping[str, Any]], *,
              temp_dir: Path | None = None) -> Path:
    """Atomically write a CSV with a header row, streaming the rows (an iterator is never
    held in memory). A row is a sequence in column order, or a mapping read by column name
    (None and missing keys → empty cells, other keys ignored)."""
    with (atomic_path(path, temp_dir=temp_dir) as tmp,
          open(tmp, "w", newline="", encoding="utf-8") as handle):
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            if isinstance(row, Mapping):
                row = [row.get(c) for c in columns]
            writer.writerow(["" if v is None else v for v in row])
    return Path(path)


def write_json(path: str | Path, payload: Any, *, temp_dir: Path | None = None) -> Path:
    return write_text(path, json.dumps(payload, indent=2, sort_keys=False, default=_json_default)
                      + "\n", temp_dir=temp_dir)


def write_npy(path: str | Path, array: np.ndarray, *, temp_dir: Path | None = None) -> Path:
    with atomic_path(path, temp_dir=temp_dir) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)
    return Path(path)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def list_images(source: str | Path, *, recursive: bool = False) -> list[Path]:
    """Image files in a folder (sorted), or the file itself. Raises on an empty folder."""
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise FakesegError(f"{source}: no such file or folder; check the path")
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in source.glob(pattern) if is_image_file(p))
    if not files:
        raise FakesegError(
            f"{source}: no images found (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}); "
            "point at a folder that holds images"
        )
    return files


#: an input with this suffix is a list of image paths, one per line
PATH_LIST_SUFFIX = ".txt"


def read_path_list(path: str | Path) -> list[Path]:
    """The image paths a text file lists, one per line, relative to the file's own folder.

    Blank lines and lines starting with ``#`` are skipped. Listed files are not checked here:
    a missing or unreadable one fails when it is read, naming itself.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FakesegError(f"{path}: cannot read the list of image paths ({exc}); "
                           "pass a UTF-8 text file with one path per line") from exc
    lines = (line.strip() for line in text.splitlines())
    return [path.parent / line for line in lines if line and not line.startswith("#")]


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files, folders, globs or ``.txt`` lists of paths → a sorted, de-duplicated list of
    image files (listed paths are kept even when missing, see :func:`read_path_list`)."""
    import glob

    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.suffix.lower() == PATH_LIST_SUFFIX and path.is_file():
            found.extend(read_path_list(path))
            continue
        if path.exists():
            found.extend(list_images(path))
            continue
        matches = [Path(m) for m in sorted(glob.glob(item, recursive=True))]
        images = [m for m in matches if is_image_file(m)]
        if not images:
            raise FakesegError(f"{item}: matches no image file; check the path or glob")
        found.extend(images)
    return sorted(dict.fromkeys(p.resolve() for p in found))


LOCK_FILE = ".fakeseg.lock"
#: each lock holder's own folder of temporary files, inside the locked folder
TEMP_DIR = ".fakeseg-tmp"


def check_output_dir(path: str | Path, *, option: str = "--out") -> Path:
    """Create the output folder, or say in one line why it cannot be used (before heavy work)."""
    path = Path(path)
    try:  # exists() itself fails on a name that is too long
        if path.exists() and not path.is_dir():
            raise FakesegError(f"{path}: {option} is an existing file, not a folder; "
                               "pass a folder path")
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise FakesegError(f"{path}: cannot create the output folder ({reason}); "
                           f"choose another {option}") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise FakesegError(f"{path}: the output folder is not writable; "
                           f"fix its permissions or choose another {option}")
    return path


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str, *, share: str | None = None) -> Iterator[Path]:
    """Hold a lock on ``folder`` for this process (released even on kill -9).

    A second fakeseg process that writes into the same folder fails at once with a one-line
    error naming the holder's PID. With ``share`` (e.g. ``"shard-0-of-4"``) processes of
    different share names hold the folder together (the same share twice is refused, and a
    holder without a share excludes them all): the folder lock is taken shared and the
    share's own lock file ``.fakeseg.SHARE.lock`` exclusively.

    Yields the holder's own temp folder ``FOLDER/.fakeseg-tmp/SHARE`` (``main`` without a
    share), emptied when the lock is taken: atomic writes given it as ``temp_dir`` leave a
    killed run's temps there, so none is looked for in the folder itself. Temps written next
    to their targets are removed by one scan of the folder (:func:`remove_stale_temps`) only
    when an exclusive holder finds that the one before it was killed (its PID is still in the
    lock file; a clean release empties it).
    """
    folder = Path(folder)
    with contextlib.ExitStack() as stack:
        folder_fd = stack.enter_context(_locked_fd(
            folder, folder / LOCK_FILE, what, exclusive=share is None))
        own_fd = folder_fd if share is None else stack.enter_context(
            _locked_fd(folder, folder / f".fakeseg.{share}.lock", what, exclusive=True))
        killed = bool(os.pread(own_fd, 32, 0).strip())
        os.ftruncate(own_fd, 0)
        os.pwrite(own_fd, f"{os.getpid()}\n".encode(), 0)
        temp_root = folder / TEMP_DIR
        temp_dir = temp_root / (share or "main")
        if share is None:  # nobody else holds the folder: every holder's temps are stale
            shutil.rmtree(temp_root, ignore_errors=True)
            if killed:
                remove_stale_temps(folder)
        else:
            shutil.rmtree(temp_dir, ignore_errors=True)
        temp_dir.mkdir(parents=True)
        try:
            yield temp_dir
        finally:  # an exception unwinds every atomic write, so this too is a clean release
            shutil.rmtree(temp_dir, ignore_errors=True)
            with contextlib.suppress(OSError):
                temp_root.rmdir()  # only once no other share's temp folder is left
            os.ftruncate(own_fd, 0)  # the next holder need not scan


@contextlib.contextmanager
def _locked_fd(folder: Path, lock_path: Path, what: str, *, exclusive: bool) -> Iterator[int]:
    """An open descriptor of ``lock_path`` holding a shared or exclusive flock."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise FakesegError(f"{folder}: cannot lock the folder ({exc.strerror}); "
                           "check its permissions") from exc
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            who = f"PID {holder}" if holder else "shared by the shards of a split run"
            raise FolderInUseError(f"{folder}: in use by another fakeseg {what} ({who}); "
                                   "wait for it to finish or choose another --out") from None
        yield fd
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def remove_stale_temps(folder: str | Path) -> int:
    """Delete ``.NAME.*.tmp*`` files that :func:`atomic_path` left behind when killed.

    This walks the whole folder; :func:`folder_lock` calls it only after a killed holder.
    """
    removed = 0
    for path in Path(folder).rglob(".*.tmp*"):
        if path.is_file():
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed


#: what the Python API accepts as one image
ImageInput = Any  # str | Path | PIL.Image.Image | np.ndarray | torch.Tensor


def to_rgb_float(image: ImageInput, *, name: str = "image") -> np.ndarray:
    """Any accepted image form → float32 (H, W, 3) in [0, 1], exactly as :func:`read_image` gives.

    Accepts a path, a PIL image, a NumPy array (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) of
    uint8 (÷ 255), uint16 (÷ 65535), bool or float in [0, 1], or a torch tensor (C, H, W) or
    (1, C, H, W) of the same dtypes. Grayscale is repeated, alpha dropped. A float outside
    [0, 1] or a non-finite value is refused with one line: nothing is guessed.
    """
    if isinstance(image, (str, Path)):
        return read_image(image)
    if isinstance(image, Image.Image):
        return _pil_to_rgb_float(image, name)
    if type(image).__module__.startswith("torch"):
        tensor = image.detach().cpu()
        if str(tensor.dtype) == "torch.bfloat16":  # NumPy has no bfloat16
            tensor = tensor.float()
        if tensor.ndim == 4 and tensor.shape[0] == 1:
            tensor = tensor[0]
        if tensor.ndim == 3 and tensor.shape[0] in (1, 3, 4):
            tensor = tensor.permute(1, 2, 0)
        elif tensor.ndim != 2:
            raise FakesegError(f"{name}: a tensor of shape {tuple(image.shape)}; pass (C, H, W) "
                               "or (1, C, H, W) with C = 1, 3 or 4")
        return _array_to_rgb_float(tensor.numpy(), name)
    if isinstance(image, np.ndarray):
        return _array_to_rgb_float(image, name)
    raise FakesegError(f"{name}: cannot read a {type(image).__name__}; pass a path, a PIL "
                       "image, a NumPy array (H, W, 3) or a torch tensor (3, H, W)")


def _pil_to_rgb_float(image: Image.Image, name: str) -> np.ndarray:
    """As the reader does for a file: EXIF orientation, then the same mode conversion."""
    with contextlib.suppress(Exception):
        image = ImageOps.exif_transpose(image)
    return _array_to_rgb_float(pixels_to_float(_to_native_array(image, Path(name))), name)


def _array_to_rgb_float(array: np.ndarray, name: str) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        array = array[:, :, :3] if array.shape[2] != 1 else array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise FakesegError(f"{name}: an array of shape {array.shape}; NumPy images are "
                           "(H, W), (H, W, 3) or (H, W, 4) (transpose a (3, H, W) array)")
    if array.dtype.name in FULL_SCALE:
        result = pixels_to_float(array)
    elif array.dtype == np.bool_:
        result = array.astype(np.float32)
    elif np.issubdtype(array.dtype, np.floating):
        result = array.astype(np.float32)
        if not np.isfinite(result).all():
            raise FakesegError(f"{name}: contains NaN or infinite values; fix the image first")
        low, high = float(result.min(initial=0.0)), float(result.max(initial=0.0))
        if low < 0.0 or high > 1.0:
            hint = " (it looks like 0–255: divide by 255)" if high <= 255.0 and low >= 0 else ""
            raise FakesegError(f"{name}: float values span [{low:g}, {high:g}], expected [0, 1]"
                               f"{hint}")
    else:
        raise FakesegError(f"{name}: pixel type {array.dtype} is ambiguous; pass uint8, uint16 "
                           "or float in [0, 1]")
    if result.ndim == 2:
        result = np.repeat(result[:, :, None], 3, axis=2)
    return np.ascontiguousarray(result)
