"""Fault injection for the crash tests: kill this process at a named point.

``FAKESEG_TEST_KILL_AT=POINT`` (or ``POINT:N``, the N-th time the point is reached) makes
:func:`kill_point` send SIGKILL to the process, so tests can prove that nothing is lost or
mixed when a run dies there. Without the variable it does nothing.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV_VAR = "FAKESEG_TEST_KILL_AT"
_reached: Counter[str] = Counter()


def kill_point(name: str) -> None:
    """SIGKILL this process if ``FAKESEG_TEST_KILL_AT`` names this point (and count)."""
    wanted = os.environ.get(ENV_VAR)
    if not wanted:
        return
    point, _, count = wanted.partition(":")
    if point != name:
        return
    _reached[name] += 1
    if _reached[name] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
