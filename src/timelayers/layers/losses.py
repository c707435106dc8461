"""Loss layers: softmax and sigmoid cross entropy, for single steps and sequences.

Each loss's ``forward(x, t)`` returns a Python float and ``backward(dout=1)``
returns the gradient with respect to the scores ``x``. ``backward`` does not
mutate the cache, so it may be called again with the same result.
"""

from __future__ import annotations

from .._checks import check_float, check_ids, check_ndim, check_shape
from ..backend import get_array_module
from ..errors import ShapeError
from ..functions import sigmoid, softplus
from .base import Layer

__all__ = ["SoftmaxWithLoss", "SigmoidWithLoss", "TimeSoftmaxWithLoss", "TimeSigmoidWithLoss"]


def _labels(where, x, t, ignore_label=None):
    """Return integer labels of shape ``x.shape[:-1]`` from ``t`` given as integer
    labels or as one-hot vectors of the shape of ``x``."""
    if t.ndim == x.ndim:
        check_shape(where, "t", t, x.shape)
        return t.argmax(axis=-1)
    check_shape(where, "t", t, x.shape[:-1])
    check_ids(where, "t", t, x.shape[-1], ignore_label=ignore_label)
    return t


class _SoftmaxCrossEntropy(Layer):
    """Fused softmax + cross entropy over rows of ``x2d (M, C)``, averaged over the
    rows whose label is not ``ignore_label``.

    Forward makes three passes over the scores (max, ``exp(x - max)`` into a new
    buffer, row sums); the cache keeps the unnormalised exponentials ``e``, the
    row reciprocals ``1 / sum(e)``, the labels and the mask. Backward makes one
    pass: ``dx = e * (scale / sum(e)) - scale * onehot(t)``, where ``scale`` is
    ``dout * mask / count``.
    """

    ignore_label = None

    def __init__(self):
        super().__init__()
        self.cache = None

    def _forward2d(self, x2d, t1d):
        xp = get_array_module(x2d)
        M = x2d.shape[0]
        rows = xp.arange(M)
        mask = None
        if self.ignore_label is not None:
            mask = t1d != self.ignore_label
            count = int(mask.sum())
            t1d = xp.where(mask, t1d, 0)
        else:
            count = M
        xmax = x2d.max(axis=1, keepdims=True)  # (M, 1)
        e = xp.subtract(x2d, xmax)
        target = e[rows, t1d]  # x[t] - max, (M,)
        xp.exp(e, out=e)
        s = e.sum(axis=1)  # (M,)
        nll = xp.log(s) - target
        if mask is not None:
            nll *= mask
        loss = float(nll.sum()) / count if count else 0.0
        self.cache = (e, 1.0 / s, t1d, mask, count)
        return loss

    def _backward2d(self, dout):
        e, inv_s, t1d, mask, count = self.cache
        xp = get_array_module(e)
        if count == 0:
            return xp.zeros_like(e)
        scale = (dout / count) * inv_s  # (M,)
        if mask is not None:
            scale = scale * mask
        dx = e * scale[:, None]
        rows = xp.arange(e.shape[0])
        step = xp.full(e.shape[0], dout / count, dtype=e.dtype)
        if mask is not None:
            step *= mask
        dx[rows, t1d] -= step
        return dx


class SoftmaxWithLoss(_SoftmaxCrossEntropy):
    """Softmax followed by the mean cross entropy.

    Shapes: scores ``x (N, C)``; targets ``t (N,)`` integer labels or ``(N, C)``
    one-hot. ``forward`` returns the mean loss; ``backward`` returns ``dx (N, C)``.
    """

    def forward(self, x, t):
        where = "SoftmaxWithLoss.forward"
        check_ndim(where, "x", x, 2)
        check_float(where, "x", x)
        t = _labels(where, x, t)
        return self._forward2d(x, t)

    def backward(self, dout=1):
        return self._backward2d(dout)


class TimeSoftmaxWithLoss(_SoftmaxCrossEntropy):
    """Softmax cross entropy at every time step, averaged over the labels that count.

    Parameters
    ----------
    ignore_label : int, default -1
        Targets equal to it contribute neither loss nor gradient. When every label
        of a batch is ignored, the loss is 0 and the gradient is zero.

    Shapes: scores ``xs (N, T, V)``; targets ``ts (N, T)`` integer or ``(N, T, V)``
    one-hot. ``backward`` returns ``dxs (N, T, V)``.
    """

    def __init__(self, ignore_label=-1):
        super().__init__()
        self.ignore_label = ignore_label
        self.shape = None

    def forward(self, xs, ts):
        where = "TimeSoftmaxWithLoss.forward"
        check_ndim(where, "xs", xs, 3)
        check_float(where, "xs", xs)
        if ts.ndim == 3:
            check_shape(where, "ts", ts, xs.shape)
            ts = ts.argmax(axis=-1)
        check_shape(where, "ts", ts, xs.shape[:2])
        check_ids(where, "ts", ts, xs.shape[2], ignore_label=self.ignore_label)
        N, T, V = xs.shape
        self.shape = xs.shape
        return self._forward2d(xs.reshape(N * T, V), ts.reshape(N * T))

    def backward(self, dout=1):
        return self._backward2d(dout).reshape(self.shape)


class SigmoidWithLoss(Layer):
    """Sigmoid followed by the mean binary cross entropy.

    Shapes: scores ``x`` and 0/1 targets ``t`` of the same shape (any shape, e.g.
    ``(N,)`` or ``(N, K)``). The loss ``mean(softplus(x) - t * x)`` is computed
    without ``log(0)``. ``backward`` returns ``dx = (sigmoid(x) - t) * dout / x.size``.
    """

    def __init__(self):
        super().__init__()
        self.cache = None

    def forward(self, x, t):
        where = f"{type(self).__name__}.forward"
        check_float(where, "x", x)
        check_shape(where, "t", t, x.shape)
        self._check_extra(where, x)
        t = t.astype(x.dtype, copy=False)
        loss = float((softplus(x) - t * x).mean())
        self.cache = (sigmoid(x), t)
        return loss

    def _check_extra(self, where, x):
        pass

    def backward(self, dout=1):
        y, t = self.cache
        return (y - t) * (dout / y.size)


class TimeSigmoidWithLoss(SigmoidWithLoss):
    """:class:`SigmoidWithLoss` over sequences: ``xs (N, T)``, ``ts (N, T)``, mean
    over all ``N * T`` elements."""

    def _check_extra(self, where, x):
        if x.ndim != 2:
            raise ShapeError(f"{where}: argument 'xs' expected 2 dimensions (N, T), "
                             f"got shape {tuple(x.shape)}")
