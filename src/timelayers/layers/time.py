"""Time-distributed layers: the same operation at every step of ``(N, T, ...)`` input.

``TimeAffine`` makes one matrix product for all ``N * T`` rows.
"""

from __future__ import annotations

from .._checks import check_ndim, check_shape
from ..backend import get_array_module, is_fortran_only
from .base import Layer
from .core import Dropout, Embedding

__all__ = ["TimeAffine", "TimeEmbedding", "TimeDropout"]


class TimeAffine(Layer):
    """``out[n, t] = x[n, t] @ W + b`` for every time step, as one matrix product
    (the book's ``TimeAffine``, ch. 5).

    Parameters
    ----------
    W : array, shape (D, H)
    b : array, shape (H,)
        Kept as ``params`` (the very arrays passed in; read again at every forward,
        so they may change in place between calls).

    ``forward(x (N, T, D)) -> out (N, T, H)`` caches ``x1 (N*T, D+1)``, ``x`` with
    a column of ones (in evaluation mode ``x`` itself, and ``x1`` is made by a
    backward); ``backward(dout (N, T, H)) -> dx (N, T, D)`` writes ``dW`` and
    ``db`` into ``grads``.
    """

    param_names = ("W", "b")

    def __init__(self, W, b):
        super().__init__()
        self._init_params(W, b)
        self.x = None
        self.x1 = None
        self._Wb = None
        self._dWb = None
        self.shape = None

    def forward(self, x):
        W, b = self.params
        check_shape("TimeAffine.forward", "x", x, ("N", "T", W.shape[0]))
        xp = get_array_module(W)
        N, T, D = x.shape
        self.shape = x.shape
        self.x = x.reshape(N * T, D).astype(W.dtype, copy=False)
        # Wb is a copy of (D+1) * H elements at every forward: it pays when the rows
        # outnumber D + 1 (the bias pass it saves is larger) and a backward follows,
        # not for generation's one token at a time, nor in evaluation mode (where a
        # layer writes into no array it holds: see Model.replica).
        if N * T <= D + 1 or not self.train_flg:
            self.x1 = None
            out = xp.matmul(self.x, W)
            out += b
            return out.reshape(N, T, -1)  # (N, T, H)
        if self._Wb is None:
            # Wb and the dW buffer take W's memory order: a tied W that is the transpose
            # of an embedding (Fortran order) is then copied with contiguous reads and
            # writes, not transposed element by element at every call.
            self._Wb = xp.empty((D + 1, W.shape[1]), dtype=W.dtype,
                                order="F" if is_fortran_only(W) else "C")
        # The bias rides in the products: forward is x1 @ Wb with Wb = [W; b] (D+1, H),
        # and x1.T @ dout2d gives dW and db together, with no extra pass over (N*T, H).
        self.x1 = _with_ones(self.x, W.dtype)
        self._Wb[:D] = W  # W and b may have been updated in place since the last call
        self._Wb[D] = b
        return (self.x1 @ self._Wb).reshape(N, T, -1)  # (N, T, H)

    def backward(self, dout):
        W, _ = self.params
        xp = get_array_module(W)
        N, T, D = self.shape
        check_shape("TimeAffine.backward", "dout", dout, (N, T, W.shape[1]))
        dout2d = dout.reshape(N * T, -1)
        x1 = self.x1 if self.x1 is not None else _with_ones(self.x, W.dtype)
        if self._dWb is None:
            # computed as a C-ordered (H, D+1) product when W is in Fortran order, so
            # that its transpose has W's layout
            self._dWb = (xp.empty((W.shape[1], D + 1), dtype=W.dtype).T if is_fortran_only(W)
                         else xp.empty((D + 1, W.shape[1]), dtype=W.dtype))
        if self._dWb.flags.c_contiguous:
            xp.matmul(x1.T, dout2d, out=self._dWb)  # (D+1, H): dW stacked on db
        else:
            xp.matmul(dout2d.T, x1, out=self._dWb.T)  # the same, as (H, D+1)
        self.grads[0][...] = self._dWb[:D]
        self.grads[1][...] = self._dWb[D]
        return (dout2d @ W.T).reshape(N, T, D)


def _with_ones(x, dtype):
    """``[x, 1]``: ``x (M, D)`` with a column of ones, ``(M, D+1)`` in ``dtype``."""
    x1 = get_array_module(x).empty((x.shape[0], x.shape[1] + 1), dtype=dtype)
    x1[:, :-1] = x
    x1[:, -1] = 1
    return x1


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
