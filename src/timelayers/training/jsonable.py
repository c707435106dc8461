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
    """The reverse of :func:`to_jsonable` (arrays come back as NumPy arrays)."""
    if isinstance(value, dict):
        if set(value) == {"__ndarray__", "dtype"}:
            return np.asarray(value["__ndarray__"], dtype=np.dtype(value["dtype"]))
        return {k: from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_jsonable(v) for v in value]
    return value
