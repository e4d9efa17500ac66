"""User-facing errors: one line that names the file and the fix."""

from __future__ import annotations

import re
from dataclasses import dataclass
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



@dataclass(frozen=True)
class Skipped:
    """An input left out of a computation (unreadable, too small, non-finite…) and why: the
    one record of a skipped input, in every result and every JSON file that lists them."""

    input: str  # a file's path, or a pair's stem
    reason: str  # without the input's name in front

    def __post_init__(self) -> None:
        prefix = f"{printable(self.input)}: "
        if self.reason.startswith(prefix):
            object.__setattr__(self, "reason", self.reason[len(prefix):])

    def __str__(self) -> str:
        return f"{printable(self.input)}: {self.reason}" if self.input else self.reason

    def to_json(self) -> dict[str, str]:
        return {"input": self.input, "reason": self.reason}

    @classmethod
    def from_json(cls, item: object) -> Skipped:
        """Back from :meth:`to_json`; also reads older files' shapes (a plain line, or a
        ``path`` / ``stem`` key instead of ``input``)."""
        if isinstance(item, dict):
            name = item.get("input", item.get("path", item.get("stem", "")))
            return cls(str(name), str(item.get("reason", "")))
        return cls("", str(item))
