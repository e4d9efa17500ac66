"""Numbers for people: one formatter for every table cell, one mean ± sample std, one rule
for "at or above the threshold"."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the CLI's help imports this module and must not load NumPy
    import numpy as np


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


def at_or_above(values: np.ndarray, threshold: float) -> np.ndarray:
    """``values >= threshold`` compared exactly, as in float64, whatever the map's dtype.

    NumPy would round ``threshold`` to a float32 map's dtype first (0.7 becomes 0.69999999), so
    a pixel of float32(0.7) would count as flagged at 0.7; here it does not. Float32 maps are
    compared against the nearest float32 at or above the threshold, without a float64 copy.
    """
    import numpy as np

    values = np.asarray(values)
    if values.dtype != np.float32:
        return values >= np.float64(threshold)
    return values >= np.float32(float32_cut(threshold))


def float32_cut(threshold: float) -> float:
    """The smallest float32 at or above ``threshold``: a float32 value is ``>= threshold``
    exactly when it is ``>=`` this one (for float32 tensors and arrays alike)."""
    import numpy as np

    low = np.float32(threshold)
    return float(low if np.float64(low) >= threshold else np.nextafter(low, np.float32(np.inf)))
