"""Position information for attention models, which otherwise see a set, not a
sequence: the sinusoidal encoding of Vaswani et al. (2017, "Attention Is All You
Need", section 3.5) and a learned embedding of positions (GPT, BERT).

Both add a ``(T, D)`` table to the input ``x (N, T, D)``: rows ``offset ..
offset + T - 1`` of a table with ``max_len`` rows.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_float, check_shape
from ..backend import get_array_module
from .base import Layer

__all__ = ["PositionalEncoding", "LearnedPositionalEmbedding", "sinusoidal_table"]


def sinusoidal_table(max_len, D):
    """The sinusoidal table ``P (max_len, D)`` in float64::

        P[pos, 2i]     = sin(pos / 10000 ** (2i / D))
        P[pos, 2i + 1] = cos(pos / 10000 ** (2i / D))

    (for odd ``D`` the last column is a sine).
    """
    pos = np.arange(max_len, dtype=np.float64)[:, None]  # (max_len, 1)
    inv_freq = 10000.0 ** (-np.arange(0, D, 2, dtype=np.float64) / D)  # (ceil(D/2),)
    angles = pos * inv_freq  # (max_len, ceil(D/2))
    table = np.empty((max_len, D))
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles[:, :D // 2])
    return table


def _check_positions(where, x, max_len, D, offset):
    check_shape(where, "x", x, ("N", "T", D))
    check_float(where, "x", x)
    T = x.shape[1]
    if offset < 0 or offset + T > max_len:
        raise ValueError(f"{where}: positions {offset}..{offset + T - 1} expected within the "
                         f"table's max_len={max_len} rows, got offset={offset} and T={T}")


class PositionalEncoding(Layer):
    """Adds the fixed sinusoidal table (:func:`sinusoidal_table`): no params.

    Parameters
    ----------
    max_len : int
        The longest sequence (plus offset) the layer accepts.
    D : int
        The model size.

    Shapes: ``forward(x (N, T, D), offset=0) -> x + P[offset:offset + T]``
    ``(N, T, D)`` in the dtype of ``x``; ``backward(dout (N, T, D))`` returns
    ``dout``. Caches nothing. ``table`` holds ``P`` in float64; its copy in the
    input's dtype and array module is made once per pair and kept.
    """

    def __init__(self, max_len, D):
        super().__init__()
        self.max_len, self.D = int(max_len), int(D)
        self.table = sinusoidal_table(self.max_len, self.D)  # (max_len, D) float64, NumPy
        self._cast = {}

    def _table_like(self, x):
        xp = get_array_module(x)
        key = (xp.__name__, x.dtype.str)
        table = self._cast.get(key)
        if table is None:
            table = self._cast[key] = xp.asarray(self.table.astype(x.dtype))
        return table

    def forward(self, x, offset=0):
        _check_positions("PositionalEncoding.forward", x, self.max_len, self.D, offset)
        return x + self._table_like(x)[offset:offset + x.shape[1]]

    def backward(self, dout):
        return dout

    def __repr__(self):
        return f"PositionalEncoding(max_len={self.max_len}, D={self.D})"


class LearnedPositionalEmbedding(Layer):
    """Adds a learned row per position: ``out[n, t] = x[n, t] + W[offset + t]``.

    Parameters
    ----------
    W : array, shape (max_len, D)
        Kept as ``params[0]``.

    Shapes: ``forward(x (N, T, D), offset=0) -> (N, T, D)``;
    ``backward(dout (N, T, D))`` writes ``dW[offset + t] = sum_n dout[n, t]``
    (zero for the rows not used) and returns ``dout``. Caches ``offset`` and ``T``.
    """

    param_names = ("W",)

    def __init__(self, W):
        super().__init__()
        check_shape("LearnedPositionalEmbedding", "W", W, ("max_len", "D"))
        self._init_params(W)
        self.span = None

    def forward(self, x, offset=0):
        (W,) = self.params
        _check_positions("LearnedPositionalEmbedding.forward", x, W.shape[0], W.shape[1],
                         offset)
        self.span = (offset, offset + x.shape[1])
        x = x.astype(W.dtype, copy=False)
        return x + W[offset:offset + x.shape[1]]

    def backward(self, dout):
        lo, hi = self.span
        dW = self.grads[0]
        dW[...] = 0
        dout.sum(axis=0, out=dW[lo:hi])
        return dout
