"""The report's only door to files: paths from result files are confined to their result folder.

A result file (``results.jsonl``, ``featdiff.json`` …) names other files. Those names are data,
so a shared report must never embed or link a file because a result file said so: a path is
used only if it resolves (symlinks followed) inside the result folder being reported. Anything
else — an absolute path elsewhere, ``../`` escaping the folder, a symlink pointing out — is
refused with a logged warning, and the page shows a placeholder instead.
"""

from __future__ import annotations

import base64
import io as _io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from PIL import Image

from fakeseg.progress import warn
from fakeseg.reporting import templates as T

#: the formats fakeseg writes its pictures in; anything else is not opened
EMBED_FORMATS = ("PNG", "JPEG")
#: photos (overlays) are embedded at their own resolution up to this width
FULL_MAX_PX = 2048


def report_warning(message: str) -> None:
    """One warning line on stderr (file names with newlines stay on one line)."""
    warn(f"fakeseg: warning: report: {message}")


def inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` resolves (symlinks followed) to a location inside ``folder``."""
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # a symlink loop
        return False


@dataclass(frozen=True)
class Located:
    """A path named by a result file: usable (``path``) or why not (``problem``)."""

    path: Path | None
    problem: str = ""


def locate(value: Any, folder: Path) -> Located:
    """The file a result file names, confined to ``folder``.

    Accepts both forms predict has written: absolute paths, and paths relative to its output
    folder. A missing file is looked up by name inside ``folder`` (the folder was moved).
    """
    if not isinstance(value, str) or not value or "\x00" in value:
        return Located(None, "no file recorded")
    recorded = Path(value)
    candidates = [recorded if recorded.is_absolute() else folder / recorded]
    if recorded.name and recorded.name not in (".", ".."):
        candidates.append(folder / recorded.name)
    refused = False
    for candidate in candidates:
        try:
            exists = candidate.is_file()
        except OSError:
            exists = False
        if not exists:
            continue
        if inside(candidate, folder):
            return Located(candidate)
        refused = True
    if refused:
        report_warning(f"{folder} names {value!r}, outside that result folder: not embedded")
        return Located(None, "file outside the result folder: not embedded")
    return Located(None, "file not found")


def read_text(path: Path, folder: Path) -> str:
    """The text of a result file of ``folder``; a symlink pointing out of it is refused, so a
    shared report never shows another file's content."""
    if not inside(path, folder):
        raise ValueError(f"{path.name} points outside the result folder; not read")
    return path.read_text(encoding="utf-8")


def read_json(path: Path, folder: Path) -> Any:
    return json.loads(read_text(path, folder))


def data_uri(image: Image.Image, fmt: str = "png") -> str:
    buffer = _io.BytesIO()
    if fmt == "jpeg":
        image.convert("RGB").save(buffer, format="JPEG", quality=88, optimize=True)
    else:
        image.save(buffer, format="PNG", optimize=True)
    return f"data:image/{fmt};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def plot_uri(draw: Callable[[Any], None], size: tuple[float, float]) -> str:
    """A matplotlib figure drawn by ``draw(fig)``, as a PNG data URI."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    draw(fig)
    buffer = _io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class Embedder:
    """Turns files inside the reported folders into data URIs and links for one report."""

    def __init__(self, report_path: Path, display_px: int) -> None:
        self.base = report_path.resolve().parent
        self.display_px = display_px
        self._count = 0

    def next_id(self, prefix: str = "fig") -> str:
        """A page-unique element id."""
        self._count += 1
        return f"{prefix}-{self._count}"

    def href(self, path: Path) -> str:
        """A relative, URL-quoted link from the report to ``path``."""
        try:
            rel = os.path.relpath(path.resolve(), self.base)
        except ValueError:  # another drive on Windows: no relative path exists
            rel = path.name
        return quote(Path(rel).as_posix())

    @staticmethod
    def load(path: Path, max_width: int = FULL_MAX_PX) -> Image.Image:
        """A PNG/JPEG file as RGB(A), downscaled only if wider than ``max_width``."""
        with Image.open(path, formats=EMBED_FORMATS) as opened:
            image = opened.convert("RGBA" if "A" in opened.getbands() else "RGB")
        if image.width <= max_width:
            return image
        height = max(1, round(image.height * max_width / image.width))
        return image.resize((max_width, height), Image.Resampling.LANCZOS)

    def embed(self, image: Image.Image, source: Path | None, caption: str = "", *,
              photo: bool = False, alt: str = "", original_width: int | None = None) -> str:
        """An embedded figure; ``source`` (inside a result folder) is linked as "file"."""
        width = original_width or image.width
        note = ("" if width == image.width else f"embedded at {image.width} of {width} px"
                if width > image.width else f"enlarged from {width} px")
        return T.figure(data_uri(image, "jpeg" if photo else "png"), caption,
                        fig_id=self.next_id(), href=self.href(source) if source else None,
                        alt=alt or (source.name if source else ""), full_note=note)

    def figure(self, path: Path, folder: Path, caption: str = "", *, photo: bool = False) -> str:
        """A figure file of ``folder``, embedded at full resolution (up to FULL_MAX_PX)."""
        if not inside(path, folder):
            report_warning(f"{path} points outside {folder}: not embedded")
            return T.warn_box(f"{path.name}: outside the result folder, not embedded")
        try:
            with Image.open(path, formats=EMBED_FORMATS) as opened:
                width = opened.width
            image = self.load(path)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            report_warning(f"could not read {path}: {exc}")
            return T.warn_box(f"{path.name}: not a readable PNG/JPEG ({type(exc).__name__})")
        return self.embed(image, path, caption, photo=photo, original_width=width)
