"""Which source (generator, renderer) an image came from, read from its file name."""

from __future__ import annotations

import re
from pathlib import Path

from fakeseg.errors import FakesegError


def check_source_pattern(pattern: str | None) -> str | None:
    """The pattern itself, or a one-line error when it is not a valid regular expression."""
    if pattern:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise FakesegError(f"source pattern '{pattern}' is not a valid regular expression "
                               f"({exc}); fix --source-pattern") from exc
    return pattern


def source_of(name: str | Path, pattern: str | None) -> str | None:
    """The ``pattern`` match on a file stem (its first group if it has one), or None."""
    if not pattern:
        return None
    match = re.search(pattern, Path(name).stem if isinstance(name, Path) else name)
    if match is None:
        return None
    return match.group(1) if match.groups() else match.group(0)
