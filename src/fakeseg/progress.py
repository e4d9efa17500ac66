"""Progress for long work: a live tqdm bar on a terminal, plain timed lines in a log.

Every long loop in fakeseg reports through :func:`progress_bar`. On a terminal it is an ordinary
tqdm bar. When stderr is a file or a pipe (a log, CI) it prints one plain line at the start,
then every 10 % of the work or every 30 s, whichever comes first, and at the end; each line has
the count, the rate and the ETA. :func:`set_quiet` (the CLI's ``--quiet``) silences both, and
:func:`say` prints a one-line status message under the same rule.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

from fakeseg.errors import printable

T = TypeVar("T")

LINE_EVERY_S = 30.0
LINE_EVERY_FRACTION = 0.10
LINE_FORMAT = "{desc}: {n_fmt}/{total_fmt} {unit} ({percentage:.0f}%) " \
              "[{elapsed} elapsed, ETA {remaining}, {rate_fmt}]{postfix}"
LINE_FORMAT_NO_TOTAL = "{desc}: {n_fmt} {unit} [{elapsed} elapsed, {rate_fmt}]{postfix}"

_quiet = False


def set_quiet(quiet: bool) -> None:
    """Silence all progress bars, progress lines and status messages (``--quiet``)."""
    global _quiet
    _quiet = bool(quiet)


def is_quiet() -> bool:
    return _quiet


def say(message: str) -> None:
    """One status line on stderr (e.g. "loading model…"), unless quiet."""
    if not _quiet:
        print(message, file=sys.stderr, flush=True)


class LineProgress(tqdm):
    """A tqdm whose display is a plain line, printed at the start, every 10 % or 30 s, at the end.

    tqdm still does the counting and the rate/ETA arithmetic; only the drawing differs.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._line_time = -float("inf")
        self._line_fraction = -1.0
        self._line_n = -1
        kwargs.update(mininterval=0.0, miniters=1, dynamic_ncols=False, leave=True)
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg == "":  # tqdm clearing the bar on close: nothing to clear in a log
            return True
        total = self.total or 0
        fraction = self.n / total if total else 0.0
        first = self._line_n < 0
        timed = time.time() - self._line_time >= LINE_EVERY_S and self.n != self._line_n
        stepped = bool(total) and fraction - self._line_fraction >= LINE_EVERY_FRACTION - 1e-9
        if first or timed or stepped:
            self._print_line()
        return True

    def close(self) -> None:
        if not self.disable and self.n != self._line_n:
            self._print_line()
        self.leave = False
        super().close()

    def _print_line(self) -> None:
        total = self.total or 0
        self._line_time, self._line_n = time.time(), self.n
        self._line_fraction = self.n / total if total else 0.0
        meter = self.format_dict
        meter["bar_format"] = LINE_FORMAT if total else LINE_FORMAT_NO_TOTAL
        _stderr_lines.write_line(self.format_meter(**meter).strip())


class _LineFile:
    """stderr for line progress: drops the bare carriage returns and newlines tqdm writes."""

    def write(self, text: str) -> None:
        if text.strip("\r\n"):
            sys.stderr.write(text)

    def write_line(self, line: str) -> None:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def flush(self) -> None:
        sys.stderr.flush()


_stderr_lines = _LineFile()


def progress_bar(iterable: Iterable[T] | None = None, *, total: int | None = None,
                 desc: str = "", unit: str = "it", enabled: bool = True,
                 initial: int = 0) -> tqdm:
    """A progress reporter over ``iterable`` (or updated by hand up to ``total``).

    ``enabled=False`` or :func:`set_quiet` gives a silent one with the same interface.
    """
    disable = not enabled or _quiet
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {"total": total, "desc": desc, "unit": unit, "initial": initial,
                              "disable": disable, "file": sys.stderr}
    if disable or sys.stderr.isatty():
        return tqdm(iterable, leave=False, **kwargs)
    kwargs["file"] = _stderr_lines
    return LineProgress(iterable, **kwargs)


def warn(message: str) -> None:
    """A one-line warning on stderr (a skipped input, say); printed even when quiet."""
    tqdm.write(printable(message), file=sys.stderr)
