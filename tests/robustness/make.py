"""Hostile and unusual files, generated at test time (no binary fixtures in the repo)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _paeth(left: np.ndarray, up: np.ndarray, upleft: np.ndarray) -> np.ndarray:
    p = left + up - upleft
    pa, pb, pc = abs(p - left), abs(p - up), abs(p - upleft)
    return np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))


def write_png16(path: Path, array: np.ndarray) -> Path:
    """A 16-bit grey/RGB/RGBA PNG (Pillow cannot write 16-bit colour). Rows cycle through all
    five PNG filters, so a reader's un-filtering is exercised too."""
    height, width, channels = array.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    bpp = 2 * channels
    rows = np.frombuffer(array.astype(">u2").tobytes(), np.uint8).reshape(height, -1).astype(int)
    lines = []
    for y in range(height):
        row = rows[y]
        up = rows[y - 1] if y else np.zeros_like(row)
        left = np.concatenate([np.zeros(bpp, int), row[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, int), up[:-bpp]])
        kind = y % 5
        predicted = [0, left, up, (left + up) // 2, _paeth(left, up, upleft)][kind]
        lines.append(bytes([kind]) + ((row - predicted) % 256).astype(np.uint8).tobytes())
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
                     + _chunk(b"IDAT", zlib.compress(b"".join(lines))) + _chunk(b"IEND", b""))
    return path


def write_png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` but holds almost no data (a bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
                     + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b""))
    return path


def write_eps(path: Path) -> Path:
    """A PostScript file (Pillow would hand it to Ghostscript), under any name."""
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n"
                     b"newpath 0 0 moveto 8 8 lineto stroke\nshowpage\n%%EOF\n")
    return path


def write_float_tiff(path: Path, array: np.ndarray) -> Path:
    """A 32-bit float TIFF (grey or RGB), NaN and inf allowed."""
    import tifffile

    tifffile.imwrite(path, np.asarray(array, np.float32))
    return path
