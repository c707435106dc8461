"""Time-distributed layers: the same operation at every step of ``(N, T, ...)`` input.

``TimeAffine`` is the seed's layer: one matrix product for all ``N * T`` rows.
"""

from __future__ import annotations

from .._checks import check_ndim, check_shape
from ..backend import get_array_module
from .base import Layer
from .core import Dropout, Embedding

__all__ = ["TimeAffine", "TimeEmbedding", "TimeDropout"]


class TimeAffine(Layer):
    """``out[n, t] = x[n, t] @ W + b`` for every time step, as one matrix product.

    Parameters
    ----------
    W : array, shape (D, H)
    b : array, shape (H,)
        Kept as ``params`` (the very arrays passed in).

    Shapes: ``x (N, T, D) -> out (N, T, H)``. Caches ``x``. ``backward(dout)``
    takes ``dout (N, T, H)``, writes ``dW = x2d.T @ dout2d`` and
    ``db = dout2d.sum(0)`` into ``grads`` and returns ``dx = dout @ W.T``.
    """

    param_names = ("W", "b")

    def __init__(self, W, b):
        super().__init__()
        self._init_params(W, b)
        self.x = None

    def forward(self, x):
        W, b = self.params
        check_shape("TimeAffine.forward", "x", x, ("N", "T", W.shape[0]))
        x = x.astype(W.dtype, copy=False)
        N, T, D = x.shape
        self.x = x
        out = x.reshape(N * T, D) @ W  # (N*T, H)
        out += b
        return out.reshape(N, T, -1)

    def backward(self, dout):
        W, _ = self.params
        xp = get_array_module(W)
        N, T, D = self.x.shape
        check_shape("TimeAffine.backward", "dout", dout, (N, T, W.shape[1]))
        dout2d = dout.reshape(N * T, -1)
        xp.matmul(self.x.reshape(N * T, D).T, dout2d, out=self.grads[0])
        dout2d.sum(axis=0, out=self.grads[1])
        return (dout2d @ W.T).reshape(N, T, D)


class TimeEmbedding(Embedding):
    """:class:`Embedding` over sequences: ``xs (N, T)`` integer ids ->
    ``out (N, T, D)``. ``W (V, D)``. Backward scatter-adds into ``dW``."""

    def forward(self, xs):
        check_ndim("TimeEmbedding.forward", "xs", xs, 2)
        return super().forward(xs)


class TimeDropout(Dropout):
    """Inverted :class:`Dropout` over ``xs (N, T, D)`` (one mask element per
    element, as in the book)."""

    def forward(self, xs):
        check_ndim("TimeDropout.forward", "xs", xs, 3)
        return super().forward(xs)
