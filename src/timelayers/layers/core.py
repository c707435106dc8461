"""Core layers: MatMul, Affine, Sigmoid, ReLU, Softmax, Dropout, Embedding, EmbeddingDot.

Each keeps the layer contract of :mod:`timelayers.layers.base`.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_float, check_ids, check_ndim, check_shape
from ..backend import get_array_module, is_cupy_array
from ..cuda.random import keep_mask
from ..functions import sigmoid, softmax, softmax_backward
from .base import Layer

__all__ = ["MatMul", "Affine", "Sigmoid", "ReLU", "Softmax", "Dropout", "Embedding", "EmbeddingDot"]


def _as_param_dtype(x, param):
    """Cast ``x`` to the dtype of ``param`` (no copy when it already matches)."""
    return x.astype(param.dtype, copy=False)


def _scatter_rows(dW, idx, values):
    """``dW[...] = 0``, then ``dW[idx[k]] += values[k]`` for every ``k`` (repeated
    ids add up). ``idx (M,)`` integer, ``values (M, D)``.

    NumPy: the rows are sorted by id (stably), each id's rows summed with one
    ``add.reduceat`` and written once -- a third faster than ``add.at``, which
    adds row by row. CuPy: ``add.at`` (an atomic scatter-add on the GPU).
    """
    xp = get_array_module(dW)
    dW[...] = 0
    if idx.size == 0:
        return
    values = values.astype(dW.dtype, copy=False)
    if xp is not np:
        xp.add.at(dW, idx, values)
        return
    order = np.argsort(idx, kind="stable")
    ids = idx[order]
    first = np.empty(ids.size, dtype=bool)  # first row of each id's run
    first[0] = True
    np.not_equal(ids[1:], ids[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    dW[ids[starts]] = np.add.reduceat(values[order], starts, axis=0)


class MatMul(Layer):
    """``out = x @ W``.

    Parameters
    ----------
    W : array, shape (D, H)

    Shapes: ``x (N, D) -> out (N, H)``. Caches ``x``.
    """

    param_names = ("W",)

    def __init__(self, W):
        super().__init__()
        self._init_params(W)
        self.x = None

    def forward(self, x):
        (W,) = self.params
        check_shape("MatMul.forward", "x", x, ("N", W.shape[0]))
        x = _as_param_dtype(x, W)
        self.x = x
        return x @ W

    def backward(self, dout):
        (W,) = self.params
        xp = get_array_module(W)
        xp.matmul(self.x.T, dout, out=self.grads[0])
        return dout @ W.T


class Affine(Layer):
    """``out = x @ W + b``.

    Parameters
    ----------
    W : array, shape (D, H)
    b : array, shape (H,)

    Shapes: ``x (N, D) -> out (N, H)``. Caches ``x``.
    """

    param_names = ("W", "b")

    def __init__(self, W, b):
        super().__init__()
        self._init_params(W, b)
        self.x = None

    def forward(self, x):
        W, b = self.params
        check_shape("Affine.forward", "x", x, ("N", W.shape[0]))
        x = _as_param_dtype(x, W)
        self.x = x
        out = x @ W
        out += b
        return out

    def backward(self, dout):
        W, _ = self.params
        xp = get_array_module(W)
        xp.matmul(self.x.T, dout, out=self.grads[0])
        dout.sum(axis=0, out=self.grads[1])
        return dout @ W.T


class Sigmoid(Layer):
    """Elementwise logistic function. Any shape. Caches the output."""

    def __init__(self):
        super().__init__()
        self.out = None

    def forward(self, x):
        check_float("Sigmoid.forward", "x", x)
        self.out = sigmoid(x)
        return self.out

    def backward(self, dout):
        y = self.out
        return dout * y * (1 - y)


class ReLU(Layer):
    """Elementwise ``max(x, 0)``. Any shape. Caches the mask ``x > 0``."""

    def __init__(self):
        super().__init__()
        self.mask = None

    def forward(self, x):
        check_float("ReLU.forward", "x", x)
        self.mask = x > 0
        return x * self.mask

    def backward(self, dout):
        return dout * self.mask


class Softmax(Layer):
    """Softmax over the last axis. ``x (..., C) -> y (..., C)``. Caches ``y``."""

    def __init__(self):
        super().__init__()
        self.out = None

    def forward(self, x):
        check_float("Softmax.forward", "x", x)
        self.out = softmax(x)
        return self.out

    def backward(self, dout):
        return softmax_backward(self.out, dout)


class Dropout(Layer):
    """Inverted dropout, any input shape; the identity when ``train_flg`` is False.

    Parameters
    ----------
    dropout_ratio : float in [0, 1)
        Training zeroes each element with it, scaling the rest by ``1 / (1 - dropout_ratio)``.
    rng : numpy.random.Generator, optional
        Draws the masks; for CuPy inputs, their seed (masks drawn on the device by
        :mod:`timelayers.cuda.random`: a seed's masks are the same on any GPU, not on a
        CPU). Default ``numpy.random.default_rng()``, unseeded.

    Caches the scaled mask in ``mask`` (None when nothing is dropped).
    """

    def __init__(self, dropout_ratio=0.5, rng=None):
        super().__init__()
        if not 0.0 <= dropout_ratio < 1.0:
            raise ValueError(f"Dropout: argument 'dropout_ratio' expected a value in [0, 1), "
                             f"got {dropout_ratio!r}")
        self.dropout_ratio = float(dropout_ratio)
        self.rng = rng if rng is not None else np.random.default_rng()
        self.mask = None

    def forward(self, x):
        check_float(f"{type(self).__name__}.forward", "x", x)
        if not self.train_flg or self.dropout_ratio == 0.0:
            self.mask = None
            return x
        if is_cupy_array(x):
            seed = int(self.rng.integers(0, 2**63))
            self.mask = keep_mask(seed, x.shape, self.dropout_ratio, x.dtype)
            return x * self.mask
        keep = self.rng.random(x.shape, dtype=np.float32) >= self.dropout_ratio
        mask = keep.astype(x.dtype)
        mask *= 1.0 / (1.0 - self.dropout_ratio)
        self.mask = mask
        return x * self.mask

    def backward(self, dout):
        if self.mask is None:
            return dout
        return dout * self.mask


class Embedding(Layer):
    """Row lookup ``out = W[ids]``.

    Parameters
    ----------
    W : array, shape (V, D)

    Shapes: ``ids (...) integer -> out (..., D)``. Caches ``ids``.
    ``backward`` scatter-adds ``dout`` into the rows of ``dW`` (repeated ids add
    up) and returns None: ids have no gradient.
    """

    param_names = ("W",)

    def __init__(self, W):
        super().__init__()
        self._init_params(W)
        self.idx = None

    def forward(self, idx):
        (W,) = self.params
        check_ids(f"{type(self).__name__}.forward", "idx", idx, W.shape[0])
        self.idx = idx
        return W[idx]

    def backward(self, dout):
        (W,) = self.params
        _scatter_rows(self.grads[0], self.idx.reshape(-1), dout.reshape(-1, W.shape[1]))
        return None


class EmbeddingDot(Layer):
    """Dot products of hidden vectors with selected rows of ``W`` (the output side
    of word2vec with negative sampling).

    Parameters
    ----------
    W : array, shape (V, D)

    Shapes: ``h (N, D)``, ``idx (N,)`` or ``(N, K)`` integer ->
    ``out (N,)`` or ``(N, K)`` with ``out[n, k] = h[n] . W[idx[n, k]]``.
    Caches ``h``, ``idx`` and the gathered rows. ``backward`` returns ``dh (N, D)``.
    """

    param_names = ("W",)

    def __init__(self, W):
        super().__init__()
        self._init_params(W)
        self.cache = None

    def forward(self, h, idx):
        (W,) = self.params
        dims = check_shape("EmbeddingDot.forward", "h", h, ("N", W.shape[1]))
        check_ndim("EmbeddingDot.forward", "idx", idx, (1, 2))
        check_shape("EmbeddingDot.forward", "idx", idx, ("N",) + (None,) * (idx.ndim - 1), dims)
        check_ids("EmbeddingDot.forward", "idx", idx, W.shape[0])
        h = _as_param_dtype(h, W)
        target_W = W[idx]  # (N, D) or (N, K, D)
        if idx.ndim == 1:
            out = (target_W * h).sum(axis=1)
        else:
            out = (target_W @ h[:, :, None])[:, :, 0]  # (N, K)
        self.cache = (h, idx, target_W)
        return out

    def backward(self, dout):
        (W,) = self.params
        h, idx, target_W = self.cache
        if idx.ndim == 1:
            dh = dout[:, None] * target_W
            dtarget = dout[:, None] * h
        else:
            dh = (dout[:, None, :] @ target_W)[:, 0, :]  # (N, D)
            dtarget = dout[:, :, None] * h[:, None, :]  # (N, K, D)
        _scatter_rows(self.grads[0], idx.reshape(-1), dtarget.reshape(-1, W.shape[1]))
        return dh
