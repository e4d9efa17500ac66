"""Numbers for people: one formatter for every table cell, one mean ± sample std."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def fmt(value: Any, digits: int = 3) -> str:
    """A table cell: fixed digits, tiny values in scientific form, None or non-finite as –."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != 0 and abs(value) < 10 ** -digits:
            return f"{value:.2e}"
        return f"{value:.{digits}f}"
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)


def mean_std(values: Iterable[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof 1) of the values that are not None.

    No values: (None, None). One value: (value, None): a spread needs two samples.
    """
    finite = [float(v) for v in values if v is not None]
    if not finite:
        return None, None
    mean = sum(finite) / len(finite)
    if len(finite) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in finite) / (len(finite) - 1))


def fmt_mean_std(mean: float | None, std: float | None, digits: int = 3) -> str:
    """"0.873 ± 0.012" (just the mean when there is no spread; – when there is no mean)."""
    return fmt(mean, digits) + ("" if std is None or mean is None else f" ± {fmt(std, digits)}")
