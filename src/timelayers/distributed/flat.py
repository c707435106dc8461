"""Arrays laid end to end in flat buffers, one per dtype, so that a collective
operation moves all of them in one call."""

from __future__ import annotations

import numpy as np

from ..backend import get_array_module

__all__ = ["FlatBuffer", "flat_buffers"]


class FlatBuffer:
    """Arrays of one dtype and one array module, and a 1-D buffer holding them all.

    Parameters
    ----------
    arrays : list of arrays of any shape and layout (C or Fortran order)
    """

    def __init__(self, arrays):
        self.arrays = list(arrays)
        xp = get_array_module(*self.arrays)
        self.spans = []
        start = 0
        for a in self.arrays:
            self.spans.append((start, start + a.size))
            start += a.size
        self.data = xp.empty(start, dtype=self.arrays[0].dtype)  # (total size,)

    def gather(self, scale=1.0):
        """Copy the arrays, times ``scale`` (in the same pass), into ``data``;
        returns ``data``."""
        xp = get_array_module(self.data)
        for a, (lo, hi) in zip(self.arrays, self.spans):
            if scale == 1.0:
                self.data[lo:hi].reshape(a.shape)[...] = a
            else:
                xp.multiply(a, self.data.dtype.type(scale), out=self.data[lo:hi].reshape(a.shape))
        return self.data

    def scatter(self) -> None:
        """Copy ``data`` back into the arrays, in place."""
        for a, (lo, hi) in zip(self.arrays, self.spans):
            a[...] = self.data[lo:hi].reshape(a.shape)


def flat_buffers(arrays) -> list:
    """One :class:`FlatBuffer` per dtype of ``arrays``, the arrays in their order."""
    by_dtype = {}
    for a in arrays:
        by_dtype.setdefault(np.dtype(a.dtype), []).append(a)
    return [FlatBuffer(group) for group in by_dtype.values()]
