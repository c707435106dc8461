"""JSON for what a trainer saves: NumPy scalars and arrays (a generator's state
holds them) to JSON types and back."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["to_jsonable", "from_jsonable"]


def to_jsonable(value, nonfinite_to_none=False):
    """``value`` with NumPy scalars as Python numbers and arrays as
    ``{"__ndarray__": list, "dtype": str}``; NaN and infinities become None when
    ``nonfinite_to_none`` (strict JSON has no token for them)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v, nonfinite_to_none) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, nonfinite_to_none) for v in value]
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, np.generic):
        value = value.item()
    if nonfinite_to_none and isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def from_jsonable(value):
    """The reverse of :func:`to_jsonable` (arrays come back as NumPy arrays).

    Raises
    ------
    ValueError
        For an array whose dtype is not a plain number or bool type (a subarray
        dtype such as ``"(10000,10000)f8"`` would make each number of the list
        take 800 MB), or whose values do not fit it.
    """
    if isinstance(value, dict):
        if set(value) == {"__ndarray__", "dtype"}:
            return _array(value["__ndarray__"], value["dtype"])
        return {k: from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_jsonable(v) for v in value]
    return value


def _array(data, spec):
    """``data`` (a number, or nested lists of numbers, from JSON) as an array of
    the plain numeric dtype ``spec`` (``"<u4"``): one element a number of the
    JSON, so at most 8 bytes for each of its numbers."""
    try:
        dtype = np.dtype(spec) if isinstance(spec, str) else None
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.kind not in "biuf" or dtype.shape != () or dtype.itemsize > 8:
        raise ValueError(f"an array's dtype should be a plain number type such as '<u4', got "
                         f"{str(spec)[:60]!r}")
    if not isinstance(data, (list, int, float)):
        raise ValueError(f"an array's values should be numbers or lists, got "
                         f"{type(data).__name__}")
    try:
        return np.asarray(data, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"an array of dtype {dtype.str} cannot hold its values: "
                         f"{exc}") from None
