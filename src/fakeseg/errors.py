"""User-facing errors: one line that names the file and the fix."""

from __future__ import annotations

from pathlib import Path


class FakesegError(Exception):
    """An error the CLI prints as one line (no traceback unless --debug)."""


class ImageReadError(FakesegError):
    """An image file that cannot be read, with the reason and the fix."""

    def __init__(self, path: str | Path, reason: str, fix: str) -> None:
        self.path = Path(path)
        super().__init__(f"{path}: {reason}; {fix}")


class DataError(FakesegError):
    """A dataset layout problem (missing folders, unpaired files, size mismatch)."""


class CheckpointError(FakesegError):
    """A checkpoint that is missing, corrupt or of the wrong kind."""
