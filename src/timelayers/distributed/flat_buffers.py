"""Arrays laid end to end in flat buffers, one per dtype, so that one operation
(a collective, a scaling) covers all of them in one call.

A :class:`FlatBuffer` either copies its arrays in and out (:meth:`FlatBuffer.gather`,
:meth:`FlatBuffer.scatter`), or, after :meth:`FlatBuffer.alias`, *is* their memory:
the arrays are replaced by views of the buffer and the copies vanish
(:func:`flatten_grads` does that to a model's gradients).
"""

from __future__ import annotations

import numpy as np

from ..backend import get_array_module, is_fortran_only

__all__ = ["FlatBuffer", "flat_buffers", "flatten_grads"]


class FlatBuffer:
    """Arrays of one dtype and one array module, and a 1-D buffer ``data`` holding them all.

    Parameters
    ----------
    arrays : list of arrays of any shape and layout (C or Fortran order)
    allocate : callable ``(size, dtype) -> 1-D array``, optional
        Memory for ``data`` (default: a new array of the arrays' module), e.g. shared
        memory (:class:`~timelayers.distributed.collectives.SharedMemoryCollectives`).

    ``data (total size,)``: ``arrays[i]`` lies at ``spans[i] = (start, stop)``; after
    :meth:`alias` (``aliased`` True), ``arrays`` are views of ``data``.
    """

    def __init__(self, arrays, allocate=None):
        self.arrays = list(arrays)
        xp = get_array_module(*self.arrays)
        self.spans = []
        start = 0
        for a in self.arrays:
            self.spans.append((start, start + a.size))
            start += a.size
        dtype = self.arrays[0].dtype
        self.data = allocate(start, dtype) if allocate else xp.empty(start, dtype=dtype)  # (total,)
        self.aliased = False

    def view(self, i):
        """Array ``i``'s place in ``data``: its shape, and Fortran order if the
        array is Fortran-ordered (and not also C-ordered)."""
        a, (lo, hi) = self.arrays[i], self.spans[i]
        order = "F" if is_fortran_only(a) else "C"
        return self.data[lo:hi].reshape(a.shape, order=order)

    def gather(self, scale=1.0):
        """Copy the arrays, times ``scale`` (in the same pass), into ``data``;
        returns ``data``. Once aliased, nothing is copied and ``data`` is scaled
        in place."""
        xp = get_array_module(self.data)
        if self.aliased:
            if scale != 1.0:
                self.data *= self.data.dtype.type(scale)
            return self.data
        for i, a in enumerate(self.arrays):
            if scale == 1.0:
                self.view(i)[...] = a
            else:
                xp.multiply(a, self.data.dtype.type(scale), out=self.view(i))
        return self.data

    def scatter(self) -> None:
        """Copy ``data`` back into the arrays, in place (nothing to do once aliased)."""
        if self.aliased:
            return
        for i, a in enumerate(self.arrays):
            a[...] = self.view(i)

    def alias(self) -> dict:
        """Copy the arrays' values into ``data`` and put views of ``data`` in their
        place in ``arrays``. Returns ``{id(old array): (old array, its view)}``
        for the owner of the old arrays to replace them by."""
        if self.aliased:
            return {}
        self.gather()
        views = [self.view(i) for i in range(len(self.arrays))]
        replaced = {id(a): (a, view) for a, view in zip(self.arrays, views)}
        self.arrays, self.aliased = views, True
        return replaced


def flat_buffers(arrays, allocate=None) -> list:
    """One :class:`FlatBuffer` per dtype of ``arrays``, the arrays in their order
    (``allocate``: see :class:`FlatBuffer`)."""
    by_dtype = {}
    for a in arrays:
        by_dtype.setdefault(np.dtype(a.dtype), []).append(a)
    return [FlatBuffer(group, allocate) for group in by_dtype.values()]


def flatten_grads(model, allocate=None) -> list:
    """Lay ``model``'s gradients (``model.grads``: each array once, tied ones left
    out) end to end in one flat buffer per dtype, and make every layer's
    gradient array a view of its place there (values and layout kept). A
    backward then writes straight into the buffers, so an operation over all
    the gradients (a collective, a scaling) needs no copy in or out. Returns
    the :class:`FlatBuffer` list, aliased.

    The views stay valid while the model's arrays stay where they are: after
    ``to_gpu`` or ``to_cpu`` the gradients are separate arrays again (call it
    again). ``allocate`` ``(size, dtype) -> 1-D array`` gives the buffers'
    memory (default: new arrays; data parallel on one machine passes shared
    memory)."""
    buffers = flat_buffers(model.grads, allocate)
    replaced = {}
    for buf in buffers:
        replaced.update(buf.alias())
    model.replace_arrays(lambda a: replaced[id(a)][1] if id(a) in replaced else a)
    return buffers
