"""Loss layers: softmax and sigmoid cross entropy, for single steps and sequences.

Each loss's ``forward(x, t)`` returns the mean loss -- a Python float for NumPy
arrays, a 0-d array on the device for CuPy arrays, so that a training step never
waits for the GPU (``float(loss)`` reads it) -- and ``backward(dout=1)``
returns the gradient with respect to the scores ``x``. ``backward`` does not
mutate the cache, so it may be called again with the same result.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_float, check_ids, check_ndim, check_shape
from ..backend import get_array_module
from ..errors import ShapeError
from ..functions import sigmoid, softplus
from ..threads import parallel_rows
from ..cuda import softmax as softmax_cuda
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


# Rows of scores are processed in blocks of about this many elements, so that the
# max, subtract, exp and sum passes over a block run while it is in the cache.
_BLOCK_ELEMENTS = 1 << 18
# Fewer rows than this per thread are not worth a thread.
_MIN_ELEMENTS_PER_THREAD = 1 << 18
# Rows whose maximum is within +-_NO_SHIFT take exp(x) directly, without the
# pass that subtracts the maximum: their sum stays below V * e**60, far from
# float32's overflow at e**88 for any V below 1e11, and a score that underflows
# (x < -87) has a probability below e**-27 relative to its row's largest one.
_NO_SHIFT = 60.0


def _over_row_blocks(xp, M, C, fn):
    """Call ``fn(start, stop)`` over cache-sized blocks of the ``M`` rows of an
    ``(M, C)`` array, split across threads for NumPy (one call for CuPy: float16,
    which the kernels of :mod:`timelayers.cuda.softmax` do not take)."""
    if xp is not np:
        fn(0, M)
        return
    parallel_rows(fn, M, min_rows=max(1, _MIN_ELEMENTS_PER_THREAD // max(1, C)),
                  max_block=max(1, _BLOCK_ELEMENTS // max(1, C)))


class _SoftmaxCrossEntropy(Layer):
    """Fused softmax + cross entropy of scores ``x2d (M, C)`` and labels ``t1d (M,)``.

    The loss is the mean over the rows whose label is not ``ignore_label``. Caches
    ``e (M, C)`` (the unnormalised exponentials), ``1 / sum(e) (M,)``, the labels and
    the mask; CuPy arrays take :mod:`timelayers.cuda.softmax` and its cache instead.
    """

    ignore_label = None

    def __init__(self):
        super().__init__()
        self.cache = None

    def _forward2d(self, x2d, t1d):
        if softmax_cuda.takes(x2d):  # the same math in a few CUDA kernels, nothing read back
            loss, self.cache = softmax_cuda.forward(x2d, t1d, self.ignore_label)
            return loss
        xp = get_array_module(x2d)
        M, C = x2d.shape
        mask = None
        if self.ignore_label is not None:
            mask = t1d != self.ignore_label
            count = int(mask.sum())
            t1d = xp.where(mask, t1d, 0)
        else:
            count = M
        # Block of rows by block of rows (_over_row_blocks): the row maximum, e = exp(x - max)
        # into a new buffer (exp(x) when every maximum of the block is within +-_NO_SHIFT,
        # which saves a pass and changes nothing but rounding), and the row sums.
        e = xp.empty_like(x2d)  # exp(x - max), (M, C)
        s = xp.empty(M, dtype=x2d.dtype)  # row sums of e
        target = xp.empty(M, dtype=x2d.dtype)  # x[t] - max
        rows = xp.arange(M)

        def block(a, b):
            xb, eb = x2d[a:b], e[a:b]
            xmax = xb.max(axis=1, keepdims=True)  # (b - a, 1)
            if -_NO_SHIFT <= float(xmax.min()) and float(xmax.max()) <= _NO_SHIFT:
                xp.exp(xb, out=eb)  # no overflow, and no underflow that matters
                target[a:b] = xb[rows[:b - a], t1d[a:b]]
            else:
                xp.subtract(xb, xmax, out=eb)
                target[a:b] = eb[rows[:b - a], t1d[a:b]]
                xp.exp(eb, out=eb)
            eb.sum(axis=1, out=s[a:b])

        _over_row_blocks(xp, M, C, block)
        nll = xp.log(s) - target
        if mask is not None:
            nll *= mask
        self.cache = (e, 1.0 / s, t1d, mask, count)
        return float(nll.sum()) / count if count else 0.0

    def _backward2d(self, dout):
        if isinstance(self.cache, softmax_cuda.SoftmaxCache):
            return softmax_cuda.backward(self.cache, dout)
        e, inv_s, t1d, mask, count = self.cache
        xp = get_array_module(e)
        if count == 0:
            return xp.zeros_like(e)
        # One pass, dx = e * (scale / sum(e)) - scale * onehot(t) with scale = dout * mask
        # / count, in the forward's blocks (the formula: timelayers.cuda.softmax).
        weight = dout / count
        scale = weight * inv_s  # (M,)
        if mask is not None:
            scale = scale * mask
        scale = scale.astype(e.dtype, copy=False)[:, None]
        dx = xp.empty_like(e)

        def block(a, b):
            xp.multiply(e[a:b], scale[a:b], out=dx[a:b])

        _over_row_blocks(xp, e.shape[0], e.shape[1], block)
        rows = xp.arange(e.shape[0])
        step = xp.zeros(e.shape[0], dtype=e.dtype)
        step += weight
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
        loss = (softplus(x) - t * x).mean()
        loss = float(loss) if get_array_module(x) is np else loss
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
