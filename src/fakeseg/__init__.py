"""fakeseg: show where and why synthetic images look unreal.

The main verbs are available here and imported on first use, so ``import fakeseg`` stays
fast: ``fakeseg.load``, ``train``, ``predict``, ``evaluate``, ``fingerprint``, ``featdiff``,
``report`` (see :mod:`fakeseg.api`).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("fakeseg")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+local"

from fakeseg.errors import FakesegError

_VERBS = frozenset({"load", "train", "train_masked", "predict", "evaluate", "evaluate_masks",
                    "fingerprint", "featdiff", "report"})


def __getattr__(name: str) -> Any:
    if name in _VERBS:
        from fakeseg import api

        return getattr(api, name)
    raise AttributeError(f"module 'fakeseg' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted([*globals(), *_VERBS])


__all__ = ["FakesegError", "__version__", "evaluate", "evaluate_masks", "featdiff", "fingerprint",
           "load", "predict", "report", "train", "train_masked"]
