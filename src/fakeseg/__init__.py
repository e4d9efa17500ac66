"""fakeseg: show where and why synthetic images look unreal."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fakeseg")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+local"

from fakeseg.errors import FakesegError

__all__ = ["FakesegError", "__version__"]
