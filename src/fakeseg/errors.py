"""User-facing errors: one line that names the file and the fix."""

from __future__ import annotations

import re
from pathlib import Path

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def printable(text: object) -> str:
    """``text`` with control characters escaped (a newline becomes ``\\n``), so that a file
    name can never split or forge a message line."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(text))


class FakesegError(Exception):
    """An error the CLI prints as one line (no traceback unless --debug)."""

    def __str__(self) -> str:
        return printable(super().__str__())


class ImageReadError(FakesegError):
    """An image file that cannot be read, with the reason and the fix."""

    def __init__(self, path: str | Path, reason: str, fix: str) -> None:
        self.path = Path(path)
        self.detail = f"{reason}; {fix}"  # the message without the path
        super().__init__(f"{printable(path)}: {self.detail}")


class FolderInUseError(FakesegError):
    """An output folder that another fakeseg process holds locked."""


class DataError(FakesegError):
    """A dataset layout problem (missing folders, unpaired files, size mismatch)."""


class CheckpointError(FakesegError):
    """A checkpoint that is missing, corrupt or of the wrong kind."""
